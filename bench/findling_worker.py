"""findling's side of the benchmark, in a fresh process so load time and peak RSS are its own.

Run by ``bench.run`` as ``python -m bench.findling_worker JOB.json`` with ``FINDLING_BACKEND`` set.
"""

from __future__ import annotations

import time

_STARTED = time.perf_counter()  # load time counts findling's imports too

import functools  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from bench.common import emit, folder_mb, peak_rss_mb, query_latencies, read_job  # noqa: E402


class CountingEmbedder:
    """Passes everything through and counts the texts embedded for the index."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.texts = 0

    @property
    def name(self) -> str:
        return str(self.inner.name)

    @property
    def dimension(self) -> int:
        return int(self.inner.dimension)

    def load(self) -> None:
        self.inner.load()

    def embed_documents(self, texts: Sequence[str]) -> Any:
        self.texts += len(texts)
        return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> Any:
        return self.inner.embed_query(text)


def main() -> None:
    job = read_job()
    from indexer.catalog import Catalog
    from indexer.documents import read_documents, split_document
    from indexer.model.factory import make_embedder
    from indexer.options import SearchOptions
    from indexer.settings import Settings

    settings = Settings()
    embedder = CountingEmbedder(make_embedder(settings))
    embedder.load()
    load_s = time.perf_counter() - _STARTED

    corpus = Path(job["corpus_dir"])
    documents = read_documents([corpus]).documents
    sentences = [p.text for d in documents for p in split_document(d)]
    options = SearchOptions.from_settings(settings)
    embed_s, index_s, texts = [], [], 0
    for r in range(job["repeats"]):
        started = time.perf_counter()
        embedder.embed_documents(sentences)
        embed_s.append(time.perf_counter() - started)
        embedder.texts = 0
        last = r == job["repeats"] - 1
        # a fresh folder per build: an existing index would only re-embed changed files; the
        # last one goes where `findling search/serve --index-dir ROOT` look
        root = Path(job["index_root"] if last else f"{job['index_root']}-scratch-{r}")
        service = Catalog(root, embedder, options).service(settings.collection)
        started = time.perf_counter()
        service.build([corpus])
        index_s.append(time.perf_counter() - started)
        texts = embedder.texts

    service.load()
    queries = job["queries"]
    latency = {"embed_query": query_latencies(embedder.embed_query, queries, job["rounds"])}
    for mode in ("dense", "hybrid"):
        latency[mode] = query_latencies(
            functools.partial(service.search, k=5, mode=mode), queries, job["rounds"]
        )
    emit(
        {
            "backend": settings.backend,
            "model": embedder.name,
            "load_s": load_s,
            "sentences": len(sentences),
            "texts_embedded_per_build": texts,
            "embed_s": embed_s,
            "index_s": index_s,
            "latency_ms": latency,
            "peak_rss_mb": peak_rss_mb(),
            "index_root": job["index_root"],
            "index_mb": folder_mb(service.index_dir),
        }
    )


if __name__ == "__main__":
    main()
