"""Measured defaults shared by the settings (the edge) and the library, importing only typing.

Kept apart so that reading the settings, as `findling --help` does, loads no numpy or FAISS.
"""

from typing import Literal

Context = Literal["paragraph", "window", "none"]

# Measured with `python -m bench.ann` on 2 cores: exact search costs about 10 ms per query at
# 100,000 vectors and 107 ms at 1,000,000; HNSW32 answers 1,000,000 in 0.4 ms at recall@10 0.985
# (efSearch 128) with no training step, so it also suits indexes that grow by adding.
DEFAULT_ANN_THRESHOLD = 100_000

# What each sentence is embedded with (see storage.vector_recipe). Measured on XQuAD dev
# (paragraph MRR@10, onnx fp32, dense, mean of the four language pairs): the sentence alone 0.959;
# with its paragraph (cut into pieces of at most 1,200 characters) 0.967 at about 2x the embedding
# work of the sentence alone; with a window of one neighbour each side 0.968 at about 4x.
DEFAULT_CONTEXT: Context = "paragraph"
# a longer paragraph is cut, between sentences, into pieces of about equal length up to this
MAX_CONTEXT_PIECE_CHARS = 1200
# neighbours either side when the context is "window"
DEFAULT_CONTEXT_WINDOW = 1
