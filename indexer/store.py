"""The FAISS store: vectors and integer ids only, never text, never a model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from indexer.errors import IndexCorruptError, InvalidRequestError


@dataclass(frozen=True)
class Hits:
    """Search results for one query, best first: parallel arrays of ids and scores."""

    ids: np.ndarray
    scores: np.ndarray


class VectorStore:
    """Exact inner-product search over L2-normalised vectors, so a score is a cosine."""

    def __init__(self, index: Any) -> None:
        self._index = index

    @classmethod
    def build(cls, vectors: np.ndarray, ids: np.ndarray) -> VectorStore:
        """Index ``vectors`` (n, d) under the int64 ``ids`` (n,)."""
        import faiss

        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) != len(ids):
            raise InvalidRequestError(
                f"vectors of shape {vectors.shape} do not match {len(ids)} ids"
            )
        index = faiss.IndexIDMap2(faiss.IndexFlatIP(vectors.shape[1]))
        if len(vectors):
            index.add_with_ids(vectors, np.ascontiguousarray(ids, dtype=np.int64))
        return cls(index)

    @classmethod
    def load(cls, path: Path) -> VectorStore:
        """Read a store written by :meth:`save` (FAISS's own format, no pickle)."""
        import faiss

        try:
            return cls(faiss.read_index(str(path)))
        except RuntimeError as exc:
            raise IndexCorruptError(
                f"cannot read the vector file {path} ({exc})", "rebuild with `findling index`"
            ) from exc

    def save(self, path: Path) -> None:
        import faiss

        faiss.write_index(self._index, str(path))

    @property
    def dimension(self) -> int:
        return int(self._index.d)

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        """The stored vectors of ``ids``, shape (len(ids), dimension)."""
        if len(ids) == 0:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.asarray(self._index.reconstruct_batch(np.asarray(ids, dtype=np.int64)))

    def search(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None) -> Hits:
        """The ``k`` nearest stored vectors to one query vector (fewer if the store is small),
        only among the ``allowed`` ids if given."""
        import faiss

        query = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
        if query.shape[1] != self.dimension:
            raise InvalidRequestError(
                f"query has dimension {query.shape[1]}, the store holds {self.dimension}"
            )
        k = min(k, len(self) if allowed is None else len(allowed))
        if k <= 0:
            return Hits(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32))
        params = None
        if allowed is not None:
            selector = faiss.IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64))
            params = faiss.SearchParameters()
            params.sel = selector
        scores, ids = self._index.search(query, k, params=params)
        keep = ids[0] >= 0  # FAISS pads with -1 when fewer than k vectors qualify
        return Hits(ids[0][keep], scores[0][keep])
