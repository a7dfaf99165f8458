"""Each leg of a search on a built collection: ``python -m bench.legs --index DIR``.

The queries of ``bench.scale`` (four of its words at random, 200 queries), searched in process in
every mode (``dense``, ``bm25``, ``hybrid``) after one pass over them (a running server's pages are
in memory), p50/p95/p99 per mode. Build the collection first, e.g. the million sentences of
``bench.scale``::

    export FINDLING_MODEL=hashing-384 FINDLING_INDEX_DIR=/tmp/idx1m
    findling index /tmp/findling-scale/corpus-1000000
    python -m bench.legs --index /tmp/idx1m --out bench/legs-1m.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from bench.common import percentiles
from bench.scale import HASHING, ROOT, bench_queries


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.legs", description=__doc__)
    parser.add_argument("--index", required=True, help="FINDLING_INDEX_DIR of the collection")
    parser.add_argument("--model", default=HASHING)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--out", default=str(ROOT / "bench" / "legs-1m.json"))
    args = parser.parse_args()
    from indexer import open_index

    index = open_index(args.index, model=args.model)
    index.load()
    queries = bench_queries(args.queries)
    manifest = index.info()
    report: dict[str, Any] = {
        "index": args.index,
        "sentences": sum(s.sentences for s in manifest.segments),
        "segments": len(manifest.segments),
    }
    for mode in ("dense", "bm25", "hybrid"):
        for query in queries:
            index.search(query, k=5, mode=mode)
        samples = []
        for query in queries:
            started = time.perf_counter()
            index.search(query, k=5, mode=mode)
            samples.append((time.perf_counter() - started) * 1000)
        report[mode] = percentiles(samples)
        print(f"{mode:>7}: p50 {report[mode]['p50_ms']} ms, p95 {report[mode]['p95_ms']} ms")
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"JSON: {args.out}")


if __name__ == "__main__":
    main()
