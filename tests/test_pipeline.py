"""Preparing documents in worker processes gives what preparing them in process gives."""

from __future__ import annotations

import pytest

from indexer.documents import make_document
from indexer.pipeline import prepare, prepared
from tests.helpers import ENGLISH, GERMAN


def test_workers_prepare_the_same_sentences_and_terms_in_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    documents = [
        make_document(f"d{i}", (GERMAN if i % 2 else ENGLISH) + f"\n\nNummer {i}.")
        for i in range(40)
    ]
    monkeypatch.setattr("indexer.pipeline.PARALLEL_CHARS", 0)
    monkeypatch.setattr("indexer.pipeline.CHUNK_CHARS", 500)  # many small tasks
    parallel = list(prepared(documents, workers=2))
    assert parallel == [prepare(d) for d in documents]
