"""Load test of a real ``findling serve``: ``python -m bench.load`` (see README, Performance).

Indexes ``seeds/`` (or ``--corpus``) into a temporary index, starts ``findling serve`` on
loopback, and lets ``--clients`` concurrent clients search for ``--seconds`` with German and
English questions. Then reads ``/metrics`` and checks that the server counted every request the
clients made. Prints p50/p95/p99 latency, requests/s and errors; ``--out`` writes JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.common import free_port
from bench.run import ROOT, _load, _peak_rss, _wait_ready

QUESTIONS = [
    "Wie viele Zivilisten starben im August?",
    "Wie viel Geld gibt Großbritannien der Ukraine?",
    "Welche Waffen will die Ukraine einsetzen?",
    "Wer ist der britische Außenminister?",
    "How many civilians died in August?",
    "How much money does Britain give Ukraine?",
    "Which weapons does Ukraine want to use?",
    "Who is the British foreign secretary?",
    "What did Blinken say in Kyiv?",
    "Was sagte Blinken in Kiew?",
]


def main() -> None:
    args = _arguments()
    result = run(args.corpus, args.clients, args.seconds, args.backend)
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if result["errors"] or result["server_counted"] != result["n"]:
        raise SystemExit("load test failed: errors, or the server's count differs from ours")


def run(corpus: Path, clients: int, seconds: float, backend: str) -> dict[str, Any]:
    """Index ``corpus``, serve it, load it; latency percentiles, errors and the server's count."""
    findling = str(Path(sys.executable).parent / "findling")
    env = {**os.environ, "FINDLING_BACKEND": backend}
    with tempfile.TemporaryDirectory(prefix="findling-load-") as tmp:
        index = Path(tmp) / "index"
        subprocess.run(
            [findling, "index", str(corpus), "--index-dir", str(index)],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        port = free_port()
        server = subprocess.Popen(
            [
                findling,
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--index-dir",
                str(index),
            ],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            _wait_ready(base, server)
            before = _search_count(base)
            # the request cap is far above what fits in the time; the clock ends the run
            result = asyncio.run(_load(base, QUESTIONS, clients, 10**9, seconds))
            result.update(
                clients=clients,
                seconds=seconds,
                backend=backend,
                server_counted=_search_count(base) - before,
                server_peak_rss_mb=_peak_rss(server.pid),
            )
        finally:
            server.terminate()
            server.wait(timeout=30)
    return result


def _search_count(base: str) -> int:
    """Requests to /search the server has counted, read with the Prometheus parser."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{base}/metrics", timeout=30).text
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.endswith("_requests_total") and sample.labels.get("route") == "/search":
                total += sample.value
    return int(total)


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__)
    parser.add_argument("--corpus", type=Path, default=ROOT / "seeds")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--backend", default="onnx-int8")
    parser.add_argument("--out", default="")
    return parser.parse_args()


if __name__ == "__main__":
    main()
