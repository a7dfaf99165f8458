"""The FAISS store: vectors and integer ids only, never text, never a model."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from indexer.errors import IndexCorruptError, InvalidRequestError

# the graph's parameters, measured with `python -m bench.ann` (see defaults.py for when)
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 128
# a filter this selective is answered exactly from the allowed vectors: cheap, and a graph
# search that must skip most nodes loses recall
EXACT_FILTER_LIMIT = 20_000


@dataclass(frozen=True)
class Hits:
    """Search results for one query, best first: parallel arrays of ids and scores."""

    ids: np.ndarray
    scores: np.ndarray


class VectorStore:
    """Inner-product search: exact (``flat``) or, for large indexes, approximate (``hnsw``)."""

    def __init__(self, index: Any) -> None:
        import faiss

        self._index = index
        graph: Any = getattr(faiss.downcast_index(index.index), "hnsw", None)
        # level 1 of the graph holds M links per node (level 0 holds 2M)
        self._kind = "flat" if graph is None else f"hnsw{graph.nb_neighbors(1)}"

    @classmethod
    def build(cls, vectors: np.ndarray, ids: np.ndarray, ann_threshold: int = 0) -> VectorStore:
        """Index ``vectors`` (n, d) under the int64 ``ids`` (n,).

        With ``ann_threshold`` > 0 and at least that many vectors, the store is an HNSW graph
        (approximate); otherwise it searches exactly.
        """
        import faiss

        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) != len(ids):
            raise InvalidRequestError(
                f"vectors of shape {vectors.shape} do not match {len(ids)} ids"
            )
        if cls.kind_for(len(vectors), ann_threshold) != "flat":
            graph = faiss.IndexHNSWFlat(vectors.shape[1], HNSW_M, faiss.METRIC_INNER_PRODUCT)
            graph.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
            graph.hnsw.efSearch = HNSW_EF_SEARCH
            index = faiss.IndexIDMap2(graph)
        else:
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

    def extended(self, vectors: np.ndarray, ids: np.ndarray) -> VectorStore:
        """A copy of this store with ``vectors`` added under ``ids``; this one is unchanged.

        Adding to a copy lets readers keep searching this store meanwhile, and spares an HNSW
        graph the full rebuild (minutes at a million vectors) when a few documents arrive.
        """
        import faiss

        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) != len(ids) or vectors.shape[1] != self.dimension:
            raise InvalidRequestError(
                f"vectors of shape {vectors.shape} do not fit {len(ids)} ids and dimension "
                f"{self.dimension}"
            )
        index = faiss.clone_index(self._index)
        if len(vectors):
            index.add_with_ids(vectors, np.ascontiguousarray(ids, dtype=np.int64))
        return VectorStore(index)

    def save(self, path: Path) -> None:
        import faiss

        faiss.write_index(self._index, str(path))

    @property
    def dimension(self) -> int:
        return int(self._index.d)

    @staticmethod
    def kind_for(count: int, ann_threshold: int) -> str:
        """The kind :meth:`build` makes for ``count`` vectors."""
        return f"hnsw{HNSW_M}" if ann_threshold > 0 and count >= ann_threshold else "flat"

    @property
    def kind(self) -> str:
        """``flat`` (exact) or ``hnsw<M>`` (approximate, M links per node)."""
        return self._kind

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
        approximate = self.kind != "flat"
        if approximate and allowed is not None and len(allowed) <= EXACT_FILTER_LIMIT:
            return self._search_subset(query[0], k, np.asarray(allowed, dtype=np.int64))
        # faiss's type stubs lack SearchParametersHNSW
        params: Any = faiss.SearchParametersHNSW() if approximate else faiss.SearchParameters()  # type: ignore[attr-defined]
        if approximate:
            params.efSearch = max(HNSW_EF_SEARCH, k)
        if allowed is not None:
            params.sel = faiss.IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64))
        scores, ids = self._index.search(query, k, params=params)
        keep = ids[0] >= 0  # FAISS pads with -1 when fewer than k vectors qualify
        return Hits(ids[0][keep], scores[0][keep])

    def _search_subset(self, query: np.ndarray, k: int, allowed: np.ndarray) -> Hits:
        """Exact search among ``allowed`` ids only (ids not in the store are ignored)."""
        ids = self._sorted_ids
        at = np.minimum(np.searchsorted(ids, allowed), len(ids) - 1)
        allowed = allowed[ids[at] == allowed]
        scores = self.vectors(allowed) @ query
        order = np.argsort(-scores, kind="stable")[:k]
        return Hits(allowed[order], scores[order].astype(np.float32))

    @cached_property
    def _sorted_ids(self) -> np.ndarray:
        # once per store (stores never change): a filter check then costs log n per id, not n
        import faiss

        return np.sort(faiss.vector_to_array(self._index.id_map))
