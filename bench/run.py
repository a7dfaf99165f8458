"""findling's benchmark, side by side with txtai: ``python -m bench.run`` (see README, Performance).

Everything runs on this machine, offline, on loopback. For each findling backend a fresh worker
process loads the model, embeds and indexes a fixed corpus (XQuAD dev paragraphs in German and
English, split into sentences by findling's own splitter) and answers a fixed set of questions;
then cold ``findling search`` processes and a real ``findling serve`` under 1/8/32 concurrent HTTP
clients are timed. txtai indexes the same sentences with the same model folder in its own venv.
Results: a table on stdout and JSON in ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.common import free_port, percentiles

ROOT = Path(__file__).resolve().parent.parent
# the XQuAD dev files (not shipped): the team's shared folder beside the checkout, or --eval-dir
EVAL = ROOT.parent / "shared" / "eval"
TXTAI_PYTHON = ROOT / ".venv-bench" / "bin" / "python"
COLD_QUESTION = "Wie viele Zivilisten starben im August?"


def main() -> None:
    args = _arguments()
    report: dict[str, Any] = {"machine": _machine(), "settings": vars(args).copy()}
    with tempfile.TemporaryDirectory(prefix="findling-bench-") as tmp:
        work = Path(tmp)
        job = _job(args, work)
        report["corpus"] = {
            "paragraphs": job["paragraphs"],
            "sentences": len(job["sentences"]),
            "queries": len(job["queries"]),
        }
        report["findling"] = {}
        for backend in args.backends:
            report["findling"][backend] = _findling(backend, job, work, args)
        if args.txtai and Path(args.txtai_python).exists():
            report["txtai"] = _txtai(job, work, args)
    report["ratios"] = _ratios(report)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    _print_table(report)
    print(f"\nJSON: {args.out}")


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument(
        "--backends",
        default="onnx-int8,onnx-int8+none,torch",
        type=lambda s: s.split(","),
        help="findling variants: a backend, +RECIPE sets FINDLING_RECIPE (onnx-int8+window)",
    )
    parser.add_argument("--paragraphs", type=int, default=0, help="per language; 0 = all 120")
    parser.add_argument("--queries", type=int, default=100, help="German and English questions")
    parser.add_argument("--repeats", type=int, default=3, help="index builds (median)")
    parser.add_argument("--rounds", type=int, default=3, help="passes over the queries")
    parser.add_argument("--cold-runs", type=int, default=5)
    parser.add_argument("--http-seconds", type=float, default=20.0, help="cap per concurrency")
    parser.add_argument("--http-requests", type=int, default=300, help="cap per concurrency")
    parser.add_argument("--no-txtai", dest="txtai", action="store_false")
    parser.add_argument("--txtai-python", default=str(TXTAI_PYTHON))
    parser.add_argument("--out", default=str(ROOT / "bench" / "results.json"))
    parser.add_argument("--eval-dir", default=str(EVAL), help="folder of xquad-dev.{de,en}.json")
    return parser.parse_args()


def _machine() -> dict[str, Any]:
    cpu = "?"
    with open("/proc/cpuinfo", encoding="utf-8") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions: dict[str, str | None] = {}
    for package in ("findling", "onnxruntime", "torch", "sentence-transformers", "faiss-cpu"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": cpu,
        "python": platform.python_version(),
        "versions": versions,
    }


# -- the fixed workload ------------------------------------------------------------------------


def _job(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Write the corpus (one .txt per paragraph) and the job file the workers read."""
    from indexer.documents import read_documents, split_document

    corpus = work / "corpus"
    corpus.mkdir()
    questions = []
    paragraphs = 0
    for language in ("de", "en"):
        path = Path(args.eval_dir) / f"xquad-dev.{language}.json"
        data = json.loads(path.read_text(encoding="utf-8"))
        contexts = [p for article in data["data"] for p in article["paragraphs"]]
        if args.paragraphs:
            contexts = contexts[: args.paragraphs]
        for n, paragraph in enumerate(contexts):
            (corpus / f"{language}-{n:03d}.txt").write_text(paragraph["context"], "utf-8")
            questions += [qa["question"] for qa in paragraph["qas"]]
        paragraphs += len(contexts)
    documents = read_documents([corpus]).documents
    sentences = [p.text for d in documents for p in split_document(d)]
    random.Random(6).shuffle(questions)
    job = {
        "corpus_dir": str(corpus),
        "work_dir": str(work),
        "paragraphs": paragraphs,
        "sentences": sentences,
        "queries": questions[: args.queries],
        "repeats": args.repeats,
        "rounds": args.rounds,
        "model_folder": _model_folder(),
    }
    (work / "job.json").write_text(json.dumps(job), encoding="utf-8")
    return job


def _model_folder() -> str:
    from indexer.model.convert import default_model_folder
    from indexer.settings import Settings

    return str(default_model_folder(Settings().model_cache_dir))


def _env(variant: str) -> dict[str, str]:
    """Environment of a variant: a backend, optionally with a recipe (``onnx-int8+none``)."""
    backend, _, recipe = variant.partition("+")
    env = {**os.environ, "FINDLING_BACKEND": backend, "HF_HUB_OFFLINE": "1"}
    if recipe:
        env["FINDLING_RECIPE"] = recipe
    return env


def _worker(command: list[str], env: dict[str, str], cwd: Path) -> dict[str, Any]:
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd, check=False)
    if done.returncode:
        sys.stderr.write(done.stderr[-3000:])
        raise SystemExit(f"benchmark worker failed: {' '.join(command)}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


# -- findling ------------------------------------------------------------------------------------


def _findling(backend: str, job: dict[str, Any], work: Path, args: argparse.Namespace) -> Any:
    print(f"findling [{backend}]: load, index x{args.repeats}, queries ...", file=sys.stderr)
    root = work / f"findling-{backend}"
    job_file = work / f"job-{backend}.json"
    job_file.write_text(json.dumps({**job, "index_root": str(root)}), encoding="utf-8")
    raw = _worker(
        [sys.executable, "-m", "bench.findling_worker", str(job_file)], _env(backend), ROOT
    )
    sentences = raw["sentences"]
    result = {
        "load_s": round(raw["load_s"], 2),
        "sentences": sentences,
        "texts_embedded_per_build": raw["texts_embedded_per_build"],
        "index_s": _median(raw["index_s"]),
        "index_sentences_per_s": round(sentences / _median(raw["index_s"]), 1),
        "embed_sentences_per_s": round(sentences / _median(raw["embed_s"]), 1),
        "latency": {k: percentiles(v) for k, v in raw["latency_ms"].items()},
        "peak_rss_mb": raw["peak_rss_mb"],
        "index_mb": raw["index_mb"],
    }
    print(f"findling [{backend}]: cold search x{args.cold_runs} ...", file=sys.stderr)
    result["cold_search_s"] = _cold_search(backend, root, args.cold_runs)
    if backend == args.backends[0]:
        print(f"findling [{backend}]: HTTP at 1/8/32 clients ...", file=sys.stderr)
        result["http"] = _http(backend, root, job["queries"], args)
    return result


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def _cold_search(backend: str, root: Path, runs: int) -> dict[str, Any]:
    command = ["findling", "search", COLD_QUESTION, "--index-dir", str(root), "--json"]
    findling = Path(sys.executable).parent / "findling"
    command[0] = str(findling)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, capture_output=True, env=_env(backend), cwd=ROOT, check=True)
        times.append(time.perf_counter() - started)
    return {"median_s": _median(times), "runs_s": [round(t, 2) for t in times]}


def _http(backend: str, root: Path, queries: list[str], args: argparse.Namespace) -> Any:
    port = free_port()
    findling = str(Path(sys.executable).parent / "findling")
    command = [findling, "serve", "--host", "127.0.0.1", "--port", str(port)]
    server = subprocess.Popen(
        [*command, "--index-dir", str(root)],
        env=_env(backend),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        ready_s = _wait_ready(base, server)
        levels = {
            str(c): asyncio.run(_load(base, queries, c, args.http_requests, args.http_seconds))
            for c in (1, 8, 32)
        }
        return {"ready_s": ready_s, "server_peak_rss_mb": _peak_rss(server.pid), **levels}
    finally:
        server.terminate()
        server.wait(timeout=30)


def _wait_ready(base: str, server: subprocess.Popen[bytes]) -> float:
    import httpx

    started = time.perf_counter()
    while time.perf_counter() - started < 180:
        if server.poll() is not None:
            raise SystemExit("findling serve exited during start-up")
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                # the model loads in lifespan; one search makes sure it is warm
                httpx.get(f"{base}/search", params={"q": COLD_QUESTION}, timeout=60)
                return round(time.perf_counter() - started, 2)
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit("findling serve did not become ready in 180 s")


async def _load(
    base: str, queries: list[str], clients: int, requests: int, seconds: float
) -> dict[str, Any]:
    """``clients`` concurrent clients share ``requests`` searches, stopping after ``seconds``."""
    import httpx

    latencies: list[float] = []
    errors = 0
    counter = iter(range(requests))
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal errors
        for n in counter:
            if time.perf_counter() > deadline:
                return
            started = time.perf_counter()
            try:
                response = await http.get("/search", params={"q": queries[n % len(queries)]})
                if response.status_code != 200:
                    errors += 1
            except httpx.HTTPError:
                errors += 1
            latencies.append((time.perf_counter() - started) * 1000)

    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as http:
        started = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return {
        **percentiles(latencies),
        "errors": errors,
        "requests_per_s": round(len(latencies) / elapsed, 1),
    }


def _peak_rss(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


# -- txtai ---------------------------------------------------------------------------------------


def _txtai(job: dict[str, Any], work: Path, args: argparse.Namespace) -> dict[str, Any]:
    print(
        f"txtai: load, index x{args.repeats}, queries, cold x{args.cold_runs} ...", file=sys.stderr
    )
    worker = str(ROOT / "bench" / "txtai_worker.py")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    job_file = str(work / "job.json")
    raw = _worker([args.txtai_python, worker, job_file], env, ROOT)
    cold = []
    for _ in range(args.cold_runs):
        started = time.perf_counter()
        _worker([args.txtai_python, worker, job_file, "cold"], env, ROOT)
        cold.append(time.perf_counter() - started)
    sentences = raw["sentences"]
    return {
        "version": raw["txtai"],
        "load_s": round(raw["load_s"], 2),
        "sentences": sentences,
        "index_s": _median(raw["index_s"]),
        "index_sentences_per_s": round(sentences / _median(raw["index_s"]), 1),
        "latency": {k: percentiles(v) for k, v in raw["latency_ms"].items()},
        "peak_rss_mb": raw["peak_rss_mb"],
        "index_mb": raw["index_mb"],
        "cold_search_s": {"median_s": _median(cold), "runs_s": [round(t, 2) for t in cold]},
    }


def _ratios(report: dict[str, Any]) -> dict[str, Any]:
    """findling / txtai; above 1 means findling is better for every ratio."""
    txtai = report.get("txtai")
    if not txtai:
        return {}
    ratios = {}
    for backend, f in report["findling"].items():
        ratios[backend] = {
            # findling embeds two texts per sentence (sentence and window), txtai one
            "index_sentences_per_s_end_to_end": round(
                f["index_sentences_per_s"] / txtai["index_sentences_per_s"], 2
            ),
            "embed_sentences_per_s_same_work": round(
                f["embed_sentences_per_s"] / txtai["index_sentences_per_s"], 2
            ),
            "query_p50_lower_by_dense": round(
                txtai["latency"]["search"]["p50_ms"] / f["latency"]["dense"]["p50_ms"], 2
            ),
            "query_p50_lower_by_hybrid": round(
                txtai["latency"]["search"]["p50_ms"] / f["latency"]["hybrid"]["p50_ms"], 2
            ),
            "load_faster_by": round(txtai["load_s"] / f["load_s"], 2),
            "cold_search_faster_by": round(
                txtai["cold_search_s"]["median_s"] / f["cold_search_s"]["median_s"], 2
            ),
        }
    return ratios


# -- output --------------------------------------------------------------------------------------


def _print_table(report: dict[str, Any]) -> None:
    m = report["machine"]
    print(f"\n{m['cpu']}, {m['nproc']} cores, Python {m['python']}; {m['versions']}")
    c = report["corpus"]
    sizes = f"{c['paragraphs']} paragraphs, {c['sentences']} sentences; {c['queries']} queries"
    print(f"corpus: {sizes}")
    systems = {f"findling {b}": r for b, r in report["findling"].items()}
    if "txtai" in report:
        systems[f"txtai {report['txtai']['version']}"] = report["txtai"]
    rows = [
        ("load (imports+model) s", lambda r: r["load_s"]),
        ("index sentences/s (end to end)", lambda r: r["index_sentences_per_s"]),
        ("embed sentences/s (1 text each)", lambda r: r.get("embed_sentences_per_s", "-")),
        ("query p50 ms (dense / txtai search)", lambda r: _lat(r, "p50_ms")),
        ("query p95 ms", lambda r: _lat(r, "p95_ms")),
        ("query p99 ms", lambda r: _lat(r, "p99_ms")),
        ("hybrid query p50 ms", lambda r: r["latency"].get("hybrid", {}).get("p50_ms", "-")),
        ("embed query p50 ms", lambda r: r["latency"]["embed_query"]["p50_ms"]),
        ("peak RSS MB", lambda r: r["peak_rss_mb"]),
        ("index on disk MB", lambda r: r["index_mb"]),
        ("cold search s (median)", lambda r: r["cold_search_s"]["median_s"]),
    ]
    names = list(systems)
    print("\n" + " | ".join([f"{'':38}", *(f"{n:>18}" for n in names)]))
    for label, get in rows:
        print(" | ".join([f"{label:38}", *(f"{get(systems[n])!s:>18}" for n in names)]))
    for backend, r in report["findling"].items():
        for clients, h in r.get("http", {}).items():
            if isinstance(h, dict):
                print(
                    f"HTTP findling {backend}, {clients:>2} clients: p50 {h['p50_ms']} ms, "
                    f"p95 {h['p95_ms']} ms, p99 {h['p99_ms']} ms, {h['requests_per_s']} req/s, "
                    f"{h['errors']} errors ({h['n']} requests)"
                )
    for backend, ratio in report["ratios"].items():
        print(f"findling {backend} vs txtai: {ratio}")


def _lat(result: dict[str, Any], key: str) -> Any:
    latency = result["latency"]
    return (latency.get("dense") or latency.get("search") or {}).get(key, "-")


if __name__ == "__main__":
    main()
