"""Preparing documents for the index: sentences and their BM25 terms, in parallel.

Splitting (sentencex), language detection and analysis are pure-Python work on a chunk of documents
at a time. On a large run they go to worker processes, a bounded number of chunks ahead, while the
calling process embeds what is ready (the model uses the cores through its own threads), so the
two overlap. Small runs stay in process: starting workers costs more than it saves.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from indexer.documents import (
    Document,
    Sentence,
    language_cache,
    split_documents,
    use_language_cache,
    with_languages,
)
from indexer.lexical import analyze

# worth starting workers (about a second) above this many characters (about 8,000 sentences)
PARALLEL_CHARS = 1_000_000
# text per task: large enough to amortise the trip to a worker, and for language detection to
# walk many texts at once (see identifier.BatchIdentifier: 100 documents at a time cost half
# of 25 at a time)
CHUNK_CHARS = 200_000


@dataclass(frozen=True)
class Prepared:
    """A document, its sentences in order, and each sentence's BM25 terms."""

    document: Document
    sentences: list[Sentence]
    terms: list[list[str]]


def prepare(document: Document) -> Prepared:
    return prepare_all([document])[0]


def prepare_all(documents: Sequence[Document]) -> list[Prepared]:
    """Each document prepared (languages detected for all of them at once)."""
    documents = with_languages(documents)
    return [
        Prepared(document, sentences, [analyze(s.text, s.language) for s in sentences])
        for document, sentences in zip(documents, split_documents(documents), strict=True)
    ]


def prepared(documents: Sequence[Document], workers: int | None = None) -> Iterator[Prepared]:
    """Every document prepared, in order; in ``workers`` processes (default: one per core)
    when the run is large enough."""
    workers = workers or len(os.sched_getaffinity(0))
    chunks = _chunks(documents)
    if workers < 2 or sum(len(d.text) for d in documents) < PARALLEL_CHARS:
        for chunk in chunks:
            yield from prepare_all(chunk)
        return
    # fresh interpreters: forking a process that runs other threads (a progress bar, a
    # server) could hand a worker a lock some thread held
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        max_workers=workers,
        mp_context=context,
        initializer=_start_worker,
        initargs=(language_cache(),),
    ) as pool:
        pending: deque[Future[list[Prepared]]] = deque()
        ahead = 2 * workers  # bounded: results wait in memory until the caller takes them
        for chunk in chunks:
            pending.append(pool.submit(prepare_all, chunk))
            if len(pending) >= ahead:
                yield from pending.popleft().result()
        while pending:
            yield from pending.popleft().result()


def _start_worker(cache_dir: Path | None) -> None:
    # Ctrl-C reaches the whole process group; the parent reports it, the workers just stop
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if cache_dir is not None:  # the language model where the parent keeps it
        use_language_cache(cache_dir)


def _chunks(documents: Sequence[Document]) -> list[list[Document]]:
    chunks: list[list[Document]] = [[]]
    size = 0
    for document in documents:
        if size >= CHUNK_CHARS:
            chunks.append([])
            size = 0
        chunks[-1].append(document)
        size += len(document.text)
    return chunks
