"""txtai's side of the benchmark; runs with the separate venv's python (``.venv-bench``).

It imports nothing from findling: ``bench.run`` hands it the same sentences, queries and model
folder in a job file. Modes: ``full`` (load, index, query) and ``cold`` (load a saved index and
answer one query, for cold start).
"""

from __future__ import annotations

import sys
import time

_STARTED = time.perf_counter()

from pathlib import Path  # noqa: E402

from common import emit, folder_mb, peak_rss_mb, query_latencies, read_job  # noqa: E402


def _embeddings(folder: str) -> object:
    from txtai import Embeddings

    # e5 needs its prompts; txtai calls them instructions. Same model folder as findling.
    return Embeddings(
        path=folder,
        method="sentence-transformers",
        instructions={"query": "query: ", "data": "passage: "},
        content=False,
        backend="faiss",
    )


def main() -> None:
    job = read_job()
    saved = Path(job["work_dir"]) / "txtai-index"
    if sys.argv[2:] == ["cold"]:
        embeddings = _embeddings(job["model_folder"])
        embeddings.load(str(saved))
        embeddings.search(job["queries"][0], 5)
        emit({"cold_s": time.perf_counter() - _STARTED})
        return
    embeddings = _embeddings(job["model_folder"])
    # txtai loads its model on first use: embed one text so load time includes it
    embeddings.transform("warm up")
    load_s = time.perf_counter() - _STARTED
    sentences = job["sentences"]
    index_s = []
    for _ in range(job["repeats"]):
        started = time.perf_counter()
        embeddings.index([(i, text, None) for i, text in enumerate(sentences)])
        index_s.append(time.perf_counter() - started)
    embeddings.save(str(saved))
    queries = job["queries"]
    latency = {
        "embed_query": query_latencies(embeddings.transform, queries, job["rounds"]),
        "search": query_latencies(lambda q: embeddings.search(q, 5), queries, job["rounds"]),
    }
    from importlib.metadata import version

    emit(
        {
            "txtai": version("txtai"),
            "load_s": load_s,
            "sentences": len(sentences),
            "index_s": index_s,
            "latency_ms": latency,
            "peak_rss_mb": peak_rss_mb(),
            "index_mb": folder_mb(saved),
        }
    )


if __name__ == "__main__":
    main()
