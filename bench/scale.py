"""How findling grows: ``python -m bench.scale`` (see README, "How findling grows").

For each size (sentences of synthetic German/English documents, 25 sentences each) it builds a
collection with ``findling index`` and measures, on this machine:

- indexing throughput without a model (the hashing embedder, 384 dimensions);
- cold ``findling search`` (a whole process, median of 5);
- ``findling serve``: resident memory after the first search, and single-document upserts
  (PUT, two sentences) and deletes over HTTP, one at a time (p50/p95);
- hybrid queries in process (p50), with the hashing embedder, and with the real model embedding
  each query (``--model-queries``: the query is embedded by multilingual-e5-small, the collection
  searched with that vector);
- with ``--optimized``, after the writes, ``findling optimize`` (all segments merged into one)
  and the queries and cold search again;
- with ``--sq8``, the same collection with 8-bit graph codes: memory and recall@10 of dense
  search against exact search.

``--real-model N`` builds N sentences with the real model and measures the same things.
Results go to ``--out`` (JSON) and a table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import free_port, percentiles
from bench.synthetic import write_corpus

ROOT = Path(__file__).resolve().parent.parent
FINDLING = str(Path(sys.executable).with_name("findling"))
HASHING = "hashing-384"
KEY = "bench-key"
QUESTIONS = [
    "Heute baubau feldhalheimdorf burgfeld",
    "The bridgeford hillmoor station",
    "Laut werkgangwerk baumannhausstein",
    "Our ridgevale millport harbour",
]


def main() -> None:
    args = _arguments()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"machine": _machine(), "sizes": {}}
    for size in args.sizes:
        report["sizes"][str(size)] = _measure(work, size, HASHING, args)
    if args.real_model:
        report["real_model"] = _measure(work, args.real_model, "multilingual-e5-small", args)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    _print(report)
    print(f"\nJSON: {args.out}")


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__)
    parser.add_argument(
        "--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[10_000, 100_000]
    )
    parser.add_argument("--real-model", type=int, default=0, help="sentences, 0 to skip")
    parser.add_argument("--model-queries", action="store_true", help="real-model query p50")
    parser.add_argument("--sq8", action="store_true", help="also build with FINDLING_QUANTIZE=sq8")
    parser.add_argument(
        "--optimized", action="store_true", help="then `findling optimize` and query again"
    )
    parser.add_argument("--writes", type=int, default=30, help="PUTs and DELETEs each")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--work", default="/tmp/findling-scale")
    parser.add_argument("--keep", action="store_true", help="keep the built collections")
    parser.add_argument("--out", default=str(ROOT / "bench" / "scale.json"))
    return parser.parse_args()


def _measure(work: Path, size: int, model: str, args: argparse.Namespace) -> dict[str, Any]:
    corpus = work / f"corpus-{size}"
    if not corpus.exists():
        write_corpus(corpus, size)
    result: dict[str, Any] = {"model": model, "sentences": size}
    root = work / f"index-{size}-{model}"
    result["index"] = _index(corpus, root, model, {})
    result["cold_search_s"] = _cold_search(root, model)
    result["in_process"] = _queries(root, model, args.queries, real_queries=False)
    if args.model_queries and model == HASHING:
        result["in_process_real_model_queries"] = _queries(
            root, model, args.queries, real_queries=True
        )
    result["serve"] = _serve(root, model, args.writes)
    result["vectors_mib"] = size * _dimension(model) * 4 / 2**20
    if args.optimized:
        result["optimized"] = _optimized(root, model, args)
    if args.sq8 and model == HASHING:
        sq8 = work / f"index-{size}-sq8"
        result["sq8"] = {"index": _index(corpus, sq8, model, {"FINDLING_QUANTIZE": "sq8"})}
        result["sq8"]["serve"] = _serve(sq8, model, 0)
        result["sq8"]["recall_at_10"] = _recall(sq8, root, args.queries)
        result["recall_at_10_fp32_graph"] = _recall(root, root, args.queries, exact_only=True)
        if not args.keep:
            shutil.rmtree(sq8, ignore_errors=True)
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    return result


def _env(root: Path, model: str, extra: dict[str, str]) -> dict[str, str]:
    return {**os.environ, "FINDLING_MODEL": model, "FINDLING_INDEX_DIR": str(root), **extra}


def _dimension(model: str) -> int:
    return 384


def _index(corpus: Path, root: Path, model: str, extra: dict[str, str]) -> dict[str, Any]:
    shutil.rmtree(root, ignore_errors=True)
    started = time.perf_counter()
    done = subprocess.run(
        [FINDLING, "index", str(corpus), "--json"],
        env=_env(root, model, extra),
        capture_output=True,
        text=True,
        check=True,
    )
    seconds = time.perf_counter() - started
    summary = json.loads(done.stdout)
    manifest = json.loads(
        subprocess.run(
            [FINDLING, "info", "--json"],
            env=_env(root, model, extra),
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    return {
        "seconds": round(seconds, 1),
        "sentences": summary["passages"],
        "sentences_per_s": round(summary["passages"] / seconds),
        "segments": [(s["name"], s["sentences"], s["vector_index"]) for s in manifest["segments"]],
    }


def _cold_search(root: Path, model: str) -> dict[str, Any]:
    """A whole ``findling search`` process, five questions, twice: the first pass as the
    collection is after indexing (on this machine the kernel has often evicted its files from
    the page cache by then, and each question reads other pages of the graphs from disk), the
    second with the files those questions read in the page cache, as on a machine that
    searched them recently."""
    passes = []
    for _ in range(2):
        samples = []
        for run in range(5):
            started = time.perf_counter()
            subprocess.run(
                [FINDLING, "search", QUESTIONS[run % len(QUESTIONS)], "--json"],
                env=_env(root, model, {}),
                capture_output=True,
                check=True,
            )
            samples.append(time.perf_counter() - started)
        passes.append(samples)
    first, warm = passes
    return {
        "median_s": round(statistics.median(first), 2),
        "runs_s": [round(s, 2) for s in first],
        "warm_median_s": round(statistics.median(warm), 2),
        "warm_runs_s": [round(s, 2) for s in warm],
    }


def bench_queries(count: int) -> list[str]:
    """The in-process queries: four of the QUESTIONS' words at random, the same every run."""
    rng = random.Random(1)
    words = [w for q in QUESTIONS for w in q.split()]
    return [" ".join(rng.sample(words, 4)) for _ in range(count)]


def _optimized(root: Path, model: str, args: argparse.Namespace) -> dict[str, Any]:
    """`findling optimize` (every segment merged into one, as a collection that is read far more
    than written would be), then the same queries again."""
    started = time.perf_counter()
    subprocess.run(
        [FINDLING, "optimize", "--json"],
        env=_env(root, model, {}),
        capture_output=True,
        text=True,
        check=True,
    )
    out: dict[str, Any] = {"seconds": round(time.perf_counter() - started, 1)}
    out["cold_search_s"] = _cold_search(root, model)
    out["in_process"] = _queries(root, model, args.queries, real_queries=False)
    if args.model_queries and model == HASHING:
        out["in_process_real_model_queries"] = _queries(
            root, model, args.queries, real_queries=True
        )
    return out


def _queries(root: Path, model: str, count: int, real_queries: bool) -> dict[str, Any]:
    """Hybrid searches in this process, after one pass over the same queries: a running
    server's pages are in memory; this machine's kernel (DAMON reclaim) evicts mapped pages
    it has not touched for a while, so a first pass measures the disk (24 vs 11 ms at 1M)."""
    code = f"""
import json, time, sys
sys.path.insert(0, {str(ROOT)!r})
from indexer import open_index
index = open_index({str(root)!r}, model={model!r})
if {real_queries!r}:
    from bench.scale import RealQueries
    index.embedder = RealQueries(index.embedder.name)
index.load()
from bench.scale import bench_queries
queries = bench_queries({count})
for q in queries:
    index.search(q, k=5, mode="hybrid")
samples = []
for q in queries:
    started = time.perf_counter()
    index.search(q, k=5, mode="hybrid")
    samples.append((time.perf_counter() - started) * 1000)
print(json.dumps(samples))
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ
    )
    return percentiles(json.loads(done.stdout.strip().splitlines()[-1]))


class RealQueries:
    """Embeds queries with the real model while naming itself as the collection's model, so a
    collection built without a model can be searched as it would be with one."""

    def __init__(self, name: str) -> None:
        from indexer.model.factory import make_embedder
        from indexer.settings import Settings

        self.name = name
        self.inner = make_embedder(Settings(model="multilingual-e5-small"))

    @property
    def dimension(self) -> int:
        return int(self.inner.dimension)

    def load(self) -> None:
        self.inner.load()

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError("queries only")

    def embed_query(self, text: str) -> np.ndarray:
        return np.asarray(self.inner.embed_query(text))


def _serve(root: Path, model: str, writes: int) -> dict[str, Any]:
    import httpx

    port = free_port()
    env = _env(root, model, {"FINDLING_API_KEY": KEY})
    process = subprocess.Popen(
        [FINDLING, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    result: dict[str, Any] = {}
    try:
        deadline = time.monotonic() + 600
        while True:
            try:
                if httpx.get(f"{url}/ready", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise SystemExit("findling serve did not become ready")
            time.sleep(0.5)
        with httpx.Client(timeout=600) as client:
            client.get(f"{url}/search", params={"q": QUESTIONS[0]}).raise_for_status()
            result["rss_after_first_search_mib"] = _rss(process.pid)
            headers = {"Authorization": f"Bearer {KEY}"}
            rng = random.Random(7)
            put, delete = [], []
            for i in range(writes):
                body = {"text": f"Neue Notiz {i} über {rng.random()}. Sie hat zwei Sätze {i}."}
                started = time.perf_counter()
                client.put(
                    f"{url}/documents/bench-{i}", json=body, headers=headers
                ).raise_for_status()
                put.append((time.perf_counter() - started) * 1000)
            for i in range(writes):
                started = time.perf_counter()
                client.delete(f"{url}/documents/bench-{i}", headers=headers).raise_for_status()
                delete.append((time.perf_counter() - started) * 1000)
            if writes:
                result["put_ms"] = percentiles(put)
                result["delete_ms"] = percentiles(delete)
            result["rss_after_writes_mib"] = _rss(process.pid)
            result["peak_rss_mib"] = _rss(process.pid, "VmHWM")
    finally:
        process.terminate()
        process.wait(timeout=60)
    return result


def _rss(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def _recall(candidate: Path, reference: Path, count: int, exact_only: bool = False) -> float:
    """Recall@10 of dense search on ``candidate`` against exact search over ``reference``'s
    vectors (both built from the same documents, so rows and ids agree)."""
    from indexer.snapshot import SegmentCache, Snapshot

    exact = Snapshot.open(reference / "default", SegmentCache())
    approx = Snapshot.open(candidate / "default", SegmentCache())
    vectors = np.concatenate(
        [p.segment.store.vectors(np.arange(len(p.segment))) for p in exact.parts]
    )
    ids = np.concatenate([np.asarray(p.segment.ids) for p in exact.parts])
    rng = np.random.default_rng(3)
    found = 0
    for row in rng.choice(len(vectors), count, replace=False):
        noise = rng.normal(0, 0.02, vectors.shape[1])
        query = (vectors[row] + noise).astype(np.float32)
        truth = set(ids[np.argsort(-(vectors @ query))[:10]].tolist())
        got = approx.dense(query, 10, None)
        parts, rows = got >> 40, got & ((1 << 40) - 1)
        got_ids = {int(approx.parts[p].segment.ids[r]) for p, r in zip(parts, rows, strict=True)}
        found += len(truth & got_ids)
    return round(found / (10 * count), 4)


def _machine() -> dict[str, Any]:
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in lines if "model name" in line), "?")
    return {"cpu": cpu, "cores": len(os.sched_getaffinity(0)), "python": sys.version.split()[0]}


def _print(report: dict[str, Any]) -> None:
    rows = list(report["sizes"].items())
    if "real_model" in report:
        rows.append(("real model", report["real_model"]))
    for name, r in rows:
        serve, cold = r["serve"], r["cold_search_s"]
        print(
            f"{name:>10}: index {r['index']['sentences_per_s']}/s, cold search "
            f"{cold['median_s']} s (warm {cold.get('warm_median_s')} s), "
            f"query p50 {r['in_process']['p50_ms']} ms, "
            f"PUT p50 {serve.get('put_ms', {}).get('p50_ms')} ms, DELETE p50 "
            f"{serve.get('delete_ms', {}).get('p50_ms')} ms, RSS "
            f"{serve['rss_after_first_search_mib']} MiB (vectors {r['vectors_mib']:.0f} MiB)"
        )
        if "optimized" in r:
            o = r["optimized"]
            print(
                f"{'':>10}  optimized in {o['seconds']} s: query p50 "
                f"{o['in_process']['p50_ms']} ms, cold search {o['cold_search_s']['median_s']} s"
            )


if __name__ == "__main__":
    main()
