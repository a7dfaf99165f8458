"""Which embedder the settings name: the one place that knows every backend."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from indexer.defaults import DEFAULT_MODEL
from indexer.model.embedder import (
    DefaultModelEmbedder,
    Embedder,
    HashingEmbedder,
    SentenceTransformerEmbedder,
)

if TYPE_CHECKING:
    from indexer.settings import Settings


def make_embedder(settings: Settings) -> Embedder:
    """Build the embedder the settings name; nothing heavy is loaded yet."""
    model = settings.model
    if model == "hashing" or model.startswith("hashing-"):
        dimension = int(model.partition("-")[2] or 256)
        return HashingEmbedder(dimension)
    backend = settings.backend
    if backend != "torch" and (model == DEFAULT_MODEL or Path(model).is_dir()):
        return _onnx_embedder(settings, backend)
    # a hub name has no local folder to export from; the torch backend resolves it
    if model == DEFAULT_MODEL:
        return DefaultModelEmbedder(settings.model_cache_dir, settings.batch_size)
    return SentenceTransformerEmbedder(model, batch_size=settings.batch_size)


def _onnx_embedder(settings: Settings, backend: str) -> Embedder:
    from indexer.model.convert import default_model_folder
    from indexer.model.onnx_backend import OnnxEmbedder

    model, cache_dir = settings.model, settings.model_cache_dir
    folder = (
        (lambda: default_model_folder(cache_dir))
        if model == DEFAULT_MODEL
        else (lambda: Path(model))
    )
    return OnnxEmbedder(model, folder, backend, settings.batch_size, settings.onnx_threads)
