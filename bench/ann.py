"""Approximate nearest neighbours for large indexes: ``python -m bench.ann --sizes 100000``.

Synthetic, L2-normalised 384-d vectors (a mixture of clusters, so neighbours mean something) are
indexed with exact inner product and FAISS HNSW / IVF-Flat / IVF-PQ options, and with findling's
own store (``VectorStore`` at its default threshold: exact below 100,000 vectors, HNSW32 from
there). Reported per option: recall@10 against exact search, p50/p95 single-query latency, build
time and bytes per vector (serialised index size / vectors).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from bench.common import percentiles
from indexer.defaults import ANN_THRESHOLD, Quantize
from indexer.store import VectorStore, write_store

DIMENSION = 384
K = 10


def vectors(n: int, seed: int, centres: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(centres), n)
    noisy = centres[picks] + rng.normal(0, 0.6 / np.sqrt(DIMENSION), (n, DIMENSION))
    data = noisy.astype(np.float32)
    faiss.normalize_L2(data)
    return data


def options(n: int) -> dict[str, Callable[[], Any]]:
    nlist = int(4 * np.sqrt(n))

    def hnsw(m: int) -> Any:
        index = faiss.IndexHNSWFlat(DIMENSION, m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
        return index

    def ivf(spec: str) -> Any:
        return faiss.index_factory(DIMENSION, spec.format(nlist=nlist), faiss.METRIC_INNER_PRODUCT)

    return {
        "Flat (exact)": lambda: faiss.IndexFlatIP(DIMENSION),
        "findling VectorStore": lambda: _FindlingStore(),
        "findling VectorStore sq8": lambda: _FindlingStore("sq8"),
        "HNSW32": lambda: hnsw(32),
        f"IVF{nlist},Flat": lambda: ivf("IVF{nlist},Flat"),
        f"IVF{nlist},SQ8": lambda: ivf("IVF{nlist},SQ8"),
        f"IVF{nlist},PQ48": lambda: ivf("IVF{nlist},PQ48"),
        f"IVF{nlist},PQ48 + refine": lambda: ivf("IVF{nlist},PQ48,RFlat"),
    }


class _FindlingStore:
    """findling's segment store behind the small FAISS surface ``measure`` uses."""

    is_trained = True

    def __init__(self, quantize: Quantize = "none") -> None:
        self.quantize: Quantize = quantize
        self.folder = Path(tempfile.mkdtemp(prefix="findling-ann-"))
        self.store: VectorStore | None = None

    def add(self, data: np.ndarray) -> None:
        kind, _ = write_store(self.folder, data, ANN_THRESHOLD, self.quantize)
        self.store = VectorStore.open(self.folder, kind)

    def search(self, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        assert self.store is not None
        hits = self.store.search(rows[0], k)
        return hits.scores[None, :], hits.rows[None, :]

    def nbytes(self) -> int:
        """Bytes on disk (the graph, and the fp32 vectors when the graph holds codes)."""
        return sum(p.stat().st_size for p in self.folder.iterdir())


def search_knobs(name: str) -> list[tuple[str, Callable[[Any], None]]]:
    if name.startswith("HNSW"):

        def ef_search(ef: int) -> Callable[[Any], None]:
            return lambda index: setattr(index.hnsw, "efSearch", ef)

        return [(f"efSearch={ef}", ef_search(ef)) for ef in (32, 64, 128)]
    if name.startswith("IVF"):

        def probe(nprobe: int) -> Callable[[Any], None]:
            def apply(index: Any) -> None:
                faiss.extract_index_ivf(index).nprobe = nprobe
                if "refine" in name:
                    index.k_factor = 4

            return apply

        return [(f"nprobe={p}", probe(p)) for p in (8, 32)]
    return [("", lambda index: None)]


def measure(n: int, queries: int, seed: int, skip: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (max(64, n // 500), DIMENSION)).astype(np.float32)
    faiss.normalize_L2(centres)
    data = vectors(n, seed + 1, centres)
    query = vectors(queries, seed + 2, centres)
    exact = faiss.IndexFlatIP(DIMENSION)
    exact.add(data)
    _, truth = exact.search(query, K)
    rows = []
    for name, make in options(n).items():
        if any(word in name for word in skip):
            continue
        index = make()
        started = time.perf_counter()
        if not index.is_trained:
            index.train(data[: min(n, 100_000)])
        index.add(data)
        build_s = time.perf_counter() - started
        size = (
            index.nbytes() if name.startswith("findling") else faiss.serialize_index(index).nbytes
        )
        knobs = search_knobs(name)
        if name.startswith("findling"):
            assert index.store is not None
            knobs = [(index.store.kind, lambda index: None)]
        for knob, apply in knobs:
            apply(index)
            latencies, found = [], []
            for row in query:
                started = time.perf_counter()
                _, ids = index.search(row[None, :], K)
                latencies.append((time.perf_counter() - started) * 1000)
                found.append(ids[0])
            recall = np.mean([len(set(f) & set(t)) / K for f, t in zip(found, truth, strict=True)])
            rows.append(
                {
                    "vectors": n,
                    "index": name,
                    "search": knob,
                    "recall@10": round(float(recall), 4),
                    **{k: v for k, v in percentiles(latencies).items() if k != "n"},
                    "build_s": round(build_s, 1),
                    "bytes_per_vector": round(size / n, 1),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ann", description=__doc__)
    parser.add_argument("--sizes", default="100000", help="comma-separated vector counts")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1, help="FAISS threads (1: per query)")
    parser.add_argument("--out", default=None, help="write all rows as JSON here")
    parser.add_argument("--skip", default="", help="comma-separated index names to leave out")
    args = parser.parse_args()
    faiss.omp_set_num_threads(args.threads)
    skip = tuple(w for w in args.skip.split(",") if w)
    rows = [r for n in args.sizes.split(",") for r in measure(int(n), args.queries, 6, skip)]
    print(f"\n{'vectors':>8} {'index':28} {'search':12} {'R@10':>6} {'p50 ms':>7} {'B/vec':>7}")
    for r in rows:
        print(
            f"{r['vectors']:>8} {r['index']:28} {r['search']:12} {r['recall@10']:>6} "
            f"{r['p50_ms']:>7} {r['bytes_per_vector']:>7}"
        )
    if args.out:
        with open(args.out, "w", encoding="utf-8") as out:
            json.dump(rows, out, indent=2)


if __name__ == "__main__":
    main()
