"""Ray against one machine on the same cores: ``python -m bench.ray`` (README, Running on a
cluster). Needs findling[ray].

1. Indexing: ``findling index`` and ``findling index --ray ADDRESS --shards 3`` of the same
   corpus (the XQuAD dev paragraphs, each a file, and synthetic German and English documents),
   each a fresh process timed end to end, against a Ray cluster started beforehand on this
   machine with as many CPUs as it has (starting the cluster is timed apart).
2. Queries: one sharded collection searched in one process and through shard replicas in Ray
   actors (the path of ``findling serve --ray``), the same German and English questions asked
   in turns: what Ray adds to a query is the difference of the medians. Then the same with the
   corpus indexed (on one machine) into one shard per core.
3. Ray's own memory: the resident memory of its processes (GCS, raylet, workers, agents) while
   the replicas serve.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.common import folder_mb, percentiles
from bench.run import EVAL, ROOT
from bench.synthetic import write_corpus

FINDLING = Path(sys.executable).with_name("findling")
QUESTIONS = [
    "Wie viele Zivilisten starben im August?",
    "Wer ist der britische Außenminister?",
    "Welche Waffen will die Ukraine einsetzen?",
    "Wann wurde die Universität gegründet?",
    "Wie heißt der Fluss, der durch die Stadt fließt?",
    "How many civilians died in August?",
    "Who is the British foreign secretary?",
    "Which weapons does Ukraine want to use?",
    "When was the university founded?",
    "What is the name of the river that flows through the city?",
]


def main() -> None:
    args = _arguments()
    os.environ.update(RAY_USAGE_STATS_ENABLED="0", RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0")
    with tempfile.TemporaryDirectory(prefix="findling-bench-ray-") as tmp:
        work = Path(tmp)
        corpus = _corpus(work / "corpus", args.synthetic)
        report: dict[str, Any] = {"machine": {"cpus": os.cpu_count()}, "corpus": corpus}
        report["one_machine"] = _index(work / "one", Path(corpus["folder"]), [])
        import ray

        started = time.perf_counter()
        ray.init(
            num_cpus=os.cpu_count(),
            object_store_memory=256 * 1024 * 1024,
            include_dashboard=False,
            namespace="findling",
            log_to_driver=False,
        )
        report["ray_start_seconds"] = round(time.perf_counter() - started, 1)
        try:
            address = ray.get_runtime_context().gcs_address
            ray_run = ["--ray", address, "--shards", str(args.shards)]
            report["ray"] = _index(work / "ray", Path(corpus["folder"]), ray_run)
            report["queries"] = _queries(work / "ray" / "default", args.rounds)
            report["ray_memory_mb"] = _ray_memory()
            if cores := os.cpu_count():
                # the same questions with one shard per core (no replica waits for a core)
                _index(work / "cores", Path(corpus["folder"]), ["--shards", str(cores)])
                report["queries_one_shard_per_core"] = _queries(
                    work / "cores" / "default", args.rounds
                )
        finally:
            ray.shutdown()
    one, on_ray = report["one_machine"], report["ray"]
    report["ratio_sentences_per_second"] = round(
        on_ray["sentences_per_second"] / one["sentences_per_second"], 3
    )
    print(json.dumps(report, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.ray", description=__doc__)
    parser.add_argument("--synthetic", type=int, default=6000, help="synthetic sentences")
    parser.add_argument("--shards", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=10, help="passes over the questions")
    parser.add_argument("--out", default=str(ROOT / "bench" / "ray.json"))
    return parser.parse_args()


def _corpus(folder: Path, synthetic: int) -> dict[str, Any]:
    """XQuAD dev paragraphs (German and English), one file each, and synthetic documents."""
    folder.mkdir(parents=True)
    paragraphs = 0
    for language in ("de", "en"):
        data = json.loads((EVAL / f"xquad-dev.{language}.json").read_text(encoding="utf-8"))
        for article in data["data"]:
            for paragraph in article["paragraphs"]:
                path = folder / f"xquad-{language}-{paragraphs:04d}.txt"
                path.write_text(paragraph["context"], encoding="utf-8")
                paragraphs += 1
    write_corpus(folder / "synthetic", synthetic)
    return {"folder": str(folder), "xquad_paragraphs": paragraphs, "mb": folder_mb(folder)}


def _index(root: Path, corpus: Path, more: list[str]) -> dict[str, Any]:
    """One `findling index` process, end to end (the default model, onnx-int8)."""
    env = {**os.environ, "FINDLING_INDEX_DIR": str(root)}
    command = [str(FINDLING), "index", str(corpus), "--json", *more]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - started
    summary = json.loads(done.stdout)
    return {
        "seconds": round(seconds, 1),
        "sentences": summary["passages"],
        "sentences_per_second": round(summary["passages"] / seconds, 1),
        "index_mb": folder_mb(root),
    }


def _queries(index_dir: Path, rounds: int) -> dict[str, Any]:
    """The same questions in one process and through Ray shard replicas (real model), asked
    in turns (each question in one process, then through Ray) so that both see the same
    state of the shared machine."""
    import ray

    from indexer.blas import answer_on_one_thread
    from indexer.catalog import create_service
    from indexer.distributed.serving import RayShards
    from indexer.model.factory import make_embedder
    from indexer.options import SearchOptions
    from indexer.scatter import ShardedService
    from indexer.settings import Settings

    answer_on_one_thread()  # as the driver of `findling serve --ray` does; both paths run here
    settings = Settings(index_dir=index_dir.parent)
    local = create_service(settings)
    local.load()
    served = ShardedService(
        index_dir,
        make_embedder(settings),
        SearchOptions.from_settings(settings),
        RayShards(ray, index_dir, 1),
    )
    served.load()
    results: dict[str, Any] = {"shards": len(served.view().shards)}
    services = {"one_process": local, "ray_replicas": served}
    for mode in ("hybrid", "dense", "bm25"):
        samples: dict[str, list[float]] = {name: [] for name in services}
        for question in QUESTIONS:  # warm-up
            for service in services.values():
                service.search(question, 5, mode)
        for _ in range(rounds):
            for question in QUESTIONS:
                for name, service in services.items():
                    started = time.perf_counter()
                    service.search(question, 5, mode)
                    samples[name].append((time.perf_counter() - started) * 1000)
        for name, times in samples.items():
            results[f"{name}_{mode}"] = percentiles(times)
        one, on_ray = results[f"one_process_{mode}"], results[f"ray_replicas_{mode}"]
        results[f"ray_adds_{mode}_p50_ms"] = round(on_ray["p50_ms"] - one["p50_ms"], 2)
    return results


def _ray_memory() -> dict[str, float]:
    """Resident memory of the processes of the Ray cluster this benchmark started (its
    children), by kind, in MB; the benchmark's own process, the driver, is left out."""
    import psutil

    kinds: dict[str, float] = defaultdict(float)
    for process in psutil.Process(os.getpid()).children(recursive=True):
        try:
            line = " ".join(process.cmdline())
            name = process.name()
            rss = process.memory_info().rss
        except psutil.Error:
            continue
        if "gcs_server" in name:
            kind = "gcs"
        elif name == "raylet" or "/raylet" in line:
            kind = "raylet"
        elif line.startswith("ray::") or name.startswith("ray::"):
            kind = "workers: " + (line or name).split()[0].removeprefix("ray::")
        elif "ray/" in line and ("dashboard" in line or "agent" in line or "monitor" in line):
            kind = "agents and monitors"
        else:
            continue
        kinds[kind] += rss / 1e6
    kinds["total"] = sum(kinds.values())
    return {kind: round(mb, 1) for kind, mb in sorted(kinds.items())}


if __name__ == "__main__":
    main()
