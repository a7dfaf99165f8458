"""The vector store of one segment: vectors and row numbers only, never text, never a model.

Small segments are searched exactly over a memory-mapped ``vectors.npy``. A segment with at
least ``ann_threshold`` vectors also gets an HNSW graph (FAISS), opened memory-mapped so that
opening costs nothing and the vectors are held once: the graph's own storage is the vectors.
A graph's links are built over fp16 copies of the vectors (see :func:`insert`); what it
stores, searches and scores with are the fp32 vectors.
With ``quantize="sq8"`` the graph holds 8-bit codes (a quarter of the memory) and the best
candidates are re-scored exactly from the fp32 vectors on disk.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from indexer.defaults import Quantize
from indexer.errors import IndexCorruptError, InvalidRequestError
from indexer.fsutil import mapped

# the graph's parameters, measured with `python -m bench.ann` (see defaults.py for when)
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 128
# a filter this selective is answered exactly from the allowed vectors: cheap, and a graph
# search that must skip most nodes loses recall
EXACT_FILTER_LIMIT = 20_000
# sq8: how many graph candidates per wanted hit are re-scored exactly
SQ8_RESCORE_FACTOR = 4

VECTORS = "vectors.npy"
GRAPH = "graph.faiss"


@dataclass(frozen=True)
class Hits:
    """Search results for one query, best first: parallel arrays of rows and scores."""

    rows: np.ndarray
    scores: np.ndarray


def kind_for(count: int, ann_threshold: int, quantize: Quantize = "none") -> str:
    """``flat`` (exact), ``hnsw32`` or ``hnsw32-sq8`` for a segment of ``count`` vectors."""
    if ann_threshold <= 0 or count < ann_threshold:
        return "flat"
    return f"hnsw{HNSW_M}" + ("-sq8" if quantize == "sq8" else "")


def write_store(
    folder: Path, vectors: np.ndarray, ann_threshold: int, quantize: Quantize = "none"
) -> tuple[str, list[str]]:
    """Write a segment's vectors into ``folder``; returns the store's kind and its files."""
    import faiss

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2:
        raise InvalidRequestError(f"vectors of shape {vectors.shape} are not a matrix")
    kind = kind_for(len(vectors), ann_threshold, quantize)
    if kind == "flat":
        np.save(folder / VECTORS, vectors, allow_pickle=False)
        return kind, [VECTORS]
    dimension = vectors.shape[1]
    graph: Any
    if quantize == "sq8":
        graph = faiss.IndexHNSWSQ(
            dimension,
            faiss.ScalarQuantizer.QT_8bit,  # type: ignore[arg-type]  # the stubs want an object
            HNSW_M,
            faiss.METRIC_INNER_PRODUCT,
        )
        graph.train(vectors)
        graph.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        graph.add(vectors)
    else:
        graph = faiss.IndexHNSWFlat(dimension, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        insert(graph, vectors)
    faiss.write_index(graph, str(folder / GRAPH))
    if quantize == "sq8":  # the exact vectors, for re-scoring; the graph holds only codes
        np.save(folder / VECTORS, vectors, allow_pickle=False)
        return kind, [GRAPH, VECTORS]
    return kind, [GRAPH]


def grow_store(folder: Path, graph_file: Path, vectors: np.ndarray) -> tuple[str, list[str]]:
    """Write a graph store into ``folder``: the fp32 HNSW graph at ``graph_file`` (read whole)
    with ``vectors`` inserted after its own, as rows ``graph.ntotal`` on; only they cost
    graph work. Returns the store's kind and its files, as :func:`write_store` does."""
    import faiss

    graph: Any = faiss.read_index(str(graph_file))
    insert(graph, np.ascontiguousarray(vectors, dtype=np.float32))
    faiss.write_index(graph, str(folder / GRAPH))
    return f"hnsw{HNSW_M}", [GRAPH]


def insert(graph: Any, vectors: np.ndarray, ef_construction: int = HNSW_EF_CONSTRUCTION) -> None:
    """Insert ``vectors`` into the fp32 HNSW graph ``graph`` (a FAISS IndexHNSWFlat) after its
    own, linking them over fp16 copies of all its vectors. An insertion is a graph search
    whose time goes to reading vectors; at half the bytes, growing a graph to a million
    hashing vectors in five steps took 322 s instead of 397 on two cores, and 22,059
    real-model vectors took a third less CPU (``bench.graphs``) for the same recall@10. The
    graph then stores the fp32 vectors and is searched with them as if built over them: the
    same file format, read by any version."""
    import faiss

    half: Any = faiss.IndexHNSWSQ(
        graph.d,
        faiss.ScalarQuantizer.QT_fp16,  # type: ignore[arg-type]  # the stubs want an object
        HNSW_M,  # (replaced with the graph's own next, its M included)
        faiss.METRIC_INNER_PRODUCT,
    )
    half.hnsw = graph.hnsw  # all of the graph (links, levels), copied: FAISS holds it by value
    half.hnsw.efConstruction = ef_construction
    if graph.ntotal:
        half.storage.add(_stored(graph))
        half.ntotal = graph.ntotal
    half.add(vectors)
    graph.hnsw = half.hnsw
    faiss.downcast_index(graph.storage).add(vectors)
    graph.ntotal = half.ntotal


def _stored(graph: Any) -> np.ndarray:
    """The fp32 vectors an IndexHNSWFlat stores, as a view (no copy)."""
    import faiss

    storage: Any = faiss.downcast_index(graph.storage)
    pointer = faiss.rev_swig_ptr(storage.get_xb(), storage.ntotal * storage.d)
    return np.asarray(pointer).reshape(storage.ntotal, storage.d)


class VectorStore:
    """Inner-product search over one segment's rows; exact or through an HNSW graph."""

    def __init__(self, kind: str, vectors: np.ndarray, graph: Any = None) -> None:
        self.kind = kind
        self._vectors = vectors
        self._graph = graph

    @classmethod
    def open(cls, folder: Path, kind: str) -> VectorStore:
        """Open what :func:`write_store` wrote, memory-mapped."""
        import faiss

        try:
            if kind == "flat":
                return cls(kind, mapped(folder / VECTORS))
            graph: Any = faiss.read_index(str(folder / GRAPH), faiss.IO_FLAG_MMAP_IFC)
            graph.hnsw.efSearch = HNSW_EF_SEARCH
            # sq8: the fp32 vectors beside the codes; else the graph's storage is the vectors
            # (a view, not a second copy in memory)
            vectors = mapped(folder / VECTORS) if kind.endswith("-sq8") else _stored(graph)
        except FileNotFoundError:
            raise  # pruned meanwhile: the reader reads CURRENT again
        except (OSError, ValueError, RuntimeError) as exc:
            if not (folder / (VECTORS if kind == "flat" else GRAPH)).exists():
                raise FileNotFoundError(folder) from exc  # FAISS says RuntimeError for it
            raise IndexCorruptError(
                f"cannot read the vectors in {folder} ({exc})", "run `findling verify`"
            ) from exc
        return cls(kind, vectors, graph)

    @property
    def dimension(self) -> int:
        return int(self._vectors.shape[1])

    def __len__(self) -> int:
        return int(self._vectors.shape[0])

    def vectors(self, rows: np.ndarray) -> np.ndarray:
        """The stored (exact, fp32) vectors of ``rows``, shape (len(rows), dimension)."""
        return np.asarray(self._vectors[np.asarray(rows, dtype=np.int64)], dtype=np.float32)

    def search(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None) -> Hits:
        """The ``k`` rows nearest to one query vector, best first, among the ``allowed`` rows
        (a boolean mask) if given. Scores are exact inner products."""
        query = np.ascontiguousarray(query, dtype=np.float32).reshape(-1)
        if query.shape[0] != self.dimension:
            raise InvalidRequestError(
                f"query has dimension {query.shape[0]}, the store holds {self.dimension}"
            )
        count = len(self) if allowed is None else int(allowed.sum())
        k = min(k, count)
        if k <= 0:
            return Hits(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32))
        if self._graph is None or (allowed is not None and count <= EXACT_FILTER_LIMIT):
            rows = None if allowed is None else np.flatnonzero(allowed)
            return _exact(self._vectors, query, k, rows)
        return self._graph_search(query, k, allowed)

    def _graph_search(self, query: np.ndarray, k: int, allowed: np.ndarray | None) -> Hits:
        import faiss

        wanted = k * SQ8_RESCORE_FACTOR if self.kind.endswith("-sq8") else k
        # faiss's type stubs lack SearchParametersHNSW
        params: Any = faiss.SearchParametersHNSW()  # type: ignore[attr-defined]
        params.efSearch = max(HNSW_EF_SEARCH, wanted)
        if allowed is not None:
            bits = np.packbits(allowed, bitorder="little")
            params.sel = faiss.IDSelectorBitmap(len(allowed), faiss.swig_ptr(bits))
        _, found = self._graph.search(query.reshape(1, -1), wanted, params=params)
        rows = found[0][found[0] >= 0]  # FAISS pads with -1 when fewer qualify
        # dense scores are exact inner products with the stored fp32 vectors
        return _exact(self._vectors, query, k, rows)


def _exact(vectors: np.ndarray, query: np.ndarray, k: int, rows: np.ndarray | None) -> Hits:
    """The ``k`` best of ``rows`` (all rows if None) by exact inner product, best first."""
    scores = (vectors if rows is None else vectors[rows]) @ query
    k = min(k, len(scores))
    top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
    # ties keep row order, so results are reproducible
    top = top[np.lexsort((top, -scores[top]))]
    chosen = top if rows is None else rows[top]
    return Hits(np.asarray(chosen, dtype=np.int64), np.asarray(scores[top], dtype=np.float32))
