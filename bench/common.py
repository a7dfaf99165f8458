"""Helpers shared by the benchmark workers: standard library only (txtai's venv runs them too)."""

from __future__ import annotations

import json
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


def percentiles(samples_ms: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99 (nearest rank) and mean of latencies in milliseconds."""
    ordered = sorted(samples_ms)
    if not ordered:
        return {"n": 0}

    def rank(p: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]

    return {
        "n": len(ordered),
        "p50_ms": round(rank(50), 2),
        "p95_ms": round(rank(95), 2),
        "p99_ms": round(rank(99), 2),
        "mean_ms": round(statistics.fmean(ordered), 2),
    }


def query_latencies(ask: Callable[[str], Any], queries: Sequence[str], rounds: int) -> list[float]:
    """Every query ``rounds`` times after a warm-up of ten; milliseconds per call."""
    for query in queries[:10]:
        ask(query)
    samples = []
    for _ in range(rounds):
        for query in queries:
            started = time.perf_counter()
            ask(query)
            samples.append((time.perf_counter() - started) * 1000)
    return samples


def peak_rss_mb() -> float:
    """This process's peak resident set size (Linux reports kilobytes)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def folder_mb(path: Path) -> float:
    total = sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())
    return round(total / 1e6, 2)


def read_job() -> dict[str, Any]:
    """A worker's job: the JSON file named by its first argument."""
    return json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))


def emit(result: dict[str, Any]) -> None:
    """A worker's answer: one JSON line on stdout (logs go to stderr)."""
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def threads() -> int:
    return len(os.sched_getaffinity(0))
