"""Segments: a collection grown in many small steps equals the same content built at once;
writes cost what they change; concurrent writes of one process are queued, not refused."""

from __future__ import annotations

import gc
import random
import threading
import weakref
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from indexer.documents import Document, make_document
from indexer.lexical import live_totals
from indexer.merging import MergePolicy
from indexer.model.embedder import HashingEmbedder
from indexer.options import SearchOptions
from indexer.service import SearchService
from indexer.snapshot import SegmentCache, Snapshot
from indexer.writer import GenerationWriter
from tests.helpers import WORDS_DE, WORDS_EN, assert_same_results, random_document, stored

# small tiers, so that this small collection merges many times while it grows
MERGES = MergePolicy(floor=5, per_tier=3, at_once=3)


def _service(folder: Path) -> SearchService:
    options = SearchOptions(ann_threshold=0, write_merges=MERGES, build_merges=MERGES)
    return SearchService(folder, HashingEmbedder(128), options)


def _grown(folder: Path, final: dict[str, Document], rng: random.Random) -> SearchService:
    """The same documents as ``final``, reached through adds, replacements and deletions."""
    service = _service(folder)
    ids = list(final)
    rng.shuffle(ids)
    for begin in range(0, len(ids), 7):
        batch = [final[i] for i in ids[begin : begin + 7]]
        # some documents arrive first in another version, and some that never stay
        service.upsert([random_document(rng, int(d.id[4:]), version=1) for d in batch[:2]])
        service.upsert([random_document(rng, 500 + begin)])
        service.upsert(batch)
        if begin % 3 == 0:
            service.delete([f"doc-{500 + begin:03d}"])
    gone = rng.sample(ids, 15)
    for doc_id in gone:  # deleted, then back as they were
        service.delete([doc_id])
    service.delete([f"doc-{500 + b:03d}" for b in range(0, len(ids), 7) if b % 3])
    service.upsert([final[i] for i in gone])
    # and the last word: one document replaced and put back, which leaves a deletion behind
    service.upsert([random_document(rng, int(ids[0][4:]), version=5)])
    service.upsert([final[ids[0]]])
    return service


def test_a_collection_grown_in_small_steps_equals_one_built_at_once(tmp_path: Path) -> None:
    rng = random.Random(13)
    final = {d.id: d for d in (random_document(rng, n) for n in range(90))}
    grown = _grown(tmp_path / "grown", final, rng)
    once = _service(tmp_path / "once")
    once.upsert(list(final.values()))
    manifest = grown.info()
    assert (manifest.documents, manifest.passages) == (once.info().documents, once.info().passages)
    assert len(manifest.segments) > 1 and any(s.deleted for s in manifest.segments)
    queries = [" ".join(rng.choices(WORDS_DE + WORDS_EN, k=rng.randint(1, 4))) for _ in range(200)]
    filters: list[dict[str, str]] = [{}, {"lang": "de"}, {"team": "a"}, {"source": "notes/0*"}]
    compared = 0
    for number, query in enumerate(queries):
        for mode in ("dense", "bm25", "hybrid"):
            chosen = filters[number % len(filters)]
            assert_same_results(grown, once, query, mode, chosen)
            compared += 1
    assert compared == 600


def _assert_opened_afresh(service: SearchService) -> None:
    patched = service._current()  # opened from the generation before it
    fresh = Snapshot.open(service.index_dir, SegmentCache())
    assert [p.entry for p in patched.parts] == [p.entry for p in fresh.parts]
    for a, b in zip(patched.parts, fresh.parts, strict=True):
        np.testing.assert_array_equal(a.deleted, b.deleted)
        np.testing.assert_array_equal(a.live, b.live)
        assert a.totals == b.totals == live_totals([(b.segment.postings, b.live)])
        assert a.entry.deleted_sentences == int((~b.live).sum())
        assert a.entry.deleted_documents == int(b.deleted.sum())


def test_a_generation_opened_from_the_last_one_equals_one_opened_afresh(tmp_path: Path) -> None:
    """A write opens the next generation from the one before, applying only the deletions it
    added (and counts the deleted sentences as it marks them): the same live sentences,
    counts and BM25 totals as opening the generation from nothing, after every write."""
    rng = random.Random(21)
    service = _service(tmp_path / "c")
    service.upsert([random_document(rng, n) for n in range(40)])
    alive = set(range(40))
    for step in range(30):
        number = rng.randrange(80)
        if step % 3 == 0 and alive:
            number = rng.choice(sorted(alive))
            service.delete([f"doc-{number:03d}"])
            alive.discard(number)
        else:  # a new document, or a new version of one
            service.upsert([random_document(rng, number, version=step)])
            alive.add(number)
        _assert_opened_afresh(service)
    service.optimize()
    _assert_opened_afresh(service)


def test_a_write_adds_a_segment_and_marks_deletions_without_rewriting(tmp_path: Path) -> None:
    service = _service(tmp_path / "c")
    rng = random.Random(2)
    service.upsert([random_document(rng, n) for n in range(20)])
    first = service.info().segments[0]
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "c" / first.name).iterdir()}
    service.upsert([random_document(rng, 3, version=2)])  # replaces one document
    after = service.info()
    assert [s.name for s in after.segments][:1] == [first.name]
    assert after.segments[0].deleted_documents == 1 and after.segments[0].deleted is not None
    # the old segment's files are untouched: a write costs what it changes
    assert before == {p.name: p.stat().st_mtime_ns for p in (tmp_path / "c" / first.name).iterdir()}


def test_optimize_merges_everything_and_forgets_deleted_sentences(tmp_path: Path) -> None:
    service = _service(tmp_path / "c")
    rng = random.Random(4)
    for n in range(12):
        service.upsert([random_document(rng, n)])
    service.delete(["doc-003", "doc-004"])
    before = service.search("Rhein Brücke", k=5).results
    summary = service.optimize()
    manifest = service.info()
    assert len(manifest.segments) == 1 and manifest.segments[0].deleted is None
    assert summary.documents == 10
    after = service.search("Rhein Brücke", k=5).results
    assert [(r.document_id, r.sentence, r.score) for r in after] == [
        (r.document_id, r.sentence, r.score) for r in before
    ]


def test_sentence_ids_stay_stable_across_merges(tmp_path: Path) -> None:
    service = _service(tmp_path / "c")
    rng = random.Random(6)
    service.upsert([random_document(rng, 0)])
    hit = service.search("Der", k=1).results[0]
    for n in range(1, 15):  # enough single writes for several merges
        service.upsert([random_document(rng, n)])
    assert len(service.info().segments) < 14
    same = [
        r
        for r in service.search(hit.text, k=20, mode="bm25").results
        if (r.document_id, r.start) == (hit.document_id, hit.start)
    ]
    assert same and same[0].text == hit.text


def test_concurrent_writes_of_one_process_are_queued_not_refused(tmp_path: Path) -> None:
    service = _service(tmp_path / "c")
    rng = random.Random(8)
    documents = [random_document(rng, n) for n in range(64)]
    service.upsert(documents[:1])
    errors: list[BaseException] = []
    summaries = []

    def write(mine: list[Document]) -> None:
        try:
            for document in mine:
                summaries.append(service.upsert([document]))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(documents[1 + i :: 8],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(summaries) == 63 and all(s.added == 1 for s in summaries)
    assert service.info().documents == 64
    # grouped: fewer generations than writes
    assert int(service.info().generation.split("-")[1]) < 64
    for document in documents[::9]:
        first = document.text.split(".")[0] + "."
        assert service.search(first, k=1, mode="bm25").results[0].document_id == document.id


def test_a_delete_of_an_unknown_document_fails_alone(tmp_path: Path) -> None:
    from indexer.errors import DocumentNotFoundError

    service = _service(tmp_path / "c")
    rng = random.Random(9)
    service.upsert([random_document(rng, 1)])
    with pytest.raises(DocumentNotFoundError):
        service.delete(["nope"])
    assert service.delete(["doc-001"]).removed == 1
    assert service.info().documents == 0
    assert service.search("Rhein", k=3).results == []
    assert np.isfinite(service.upsert([random_document(rng, 2)]).seconds)


def test_a_request_on_an_older_generation_reads_on_through_two_commits(tmp_path: Path) -> None:
    """A search that began before two quick commits still reads its segments' text: the
    switch to the newest generation used to close them under it (503s under load in CI)."""
    service = SearchService(tmp_path / "c", HashingEmbedder(64))
    service.upsert([make_document("a", "Der Rhein fließt durch Köln.")])
    in_flight = service._current()  # what a running request holds
    first = next(iter(in_flight.segment_names))
    for version in range(2):
        service.upsert([make_document("a", f"Der Rhein fließt durch Bonn {version}.")])
        service._current()  # the next request switches, forgetting older segments
    assert in_flight.passage(0).text == "Der Rhein fließt durch Köln."
    held = weakref.ref(in_flight.parts[0].segment)
    assert held() is not None and held().name == first  # type: ignore[union-attr]
    del in_flight
    gc.collect()
    assert held() is None  # freed once no request holds it


@pytest.mark.parametrize("limit", [10**6, 300])
def test_a_large_run_grows_one_graph(
    tmp_path: Path, limit: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One run writing several segments grows one graph segment (up to ``graph_sentences``,
    then starts the next): every vector at its own row, and the same hits and scores as the
    same documents written as one segment at once."""
    monkeypatch.setattr("indexer.service.EMBED_CHUNK_SENTENCES", 40)  # segments of ~100
    written: list[int] = []
    real_add = GenerationWriter.add

    def add(writer: GenerationWriter, *args: Any) -> None:
        written.append(len(args[1]))
        real_add(writer, *args)

    monkeypatch.setattr(GenerationWriter, "add", add)
    rng = random.Random(5)
    documents = [random_document(rng, n) for n in range(120)]
    options = SearchOptions(ann_threshold=50, segment_sentences=100, graph_sentences=limit)
    grown = SearchService(tmp_path / "grown", HashingEmbedder(64), options)
    grown.build_documents(documents)
    grown_in = list(written)
    once = SearchService(tmp_path / "once", HashingEmbedder(64), SearchOptions(ann_threshold=50))
    once.build_documents(documents)
    segments, passages = grown.info().segments, grown.info().passages
    assert passages > 500 and sum(s.sentences for s in segments) == passages
    assert len(grown_in) >= 5 and sum(grown_in) == passages  # written in several segments
    if limit > passages:
        assert [s.vector_index for s in segments] == ["hnsw32"]
    else:  # (a last small one gets no graph)
        assert len(segments) >= 2 and max(s.sentences for s in segments) <= limit
        assert segments[0].vector_index == "hnsw32" and segments[0].sentences > 200
    assert sorted(p.name for p in (tmp_path / "grown").iterdir() if p.name.startswith("seg-")) == [
        s.name for s in segments
    ]  # the segments grown from are gone
    vectors = {(s.sentence.doc_id, s.sentence.start): s.vector for s in stored(tmp_path / "once")}
    for row in stored(tmp_path / "grown"):
        np.testing.assert_array_equal(
            row.vector, vectors[(row.sentence.doc_id, row.sentence.start)]
        )
    assert grown.verify() == []
    queries = [" ".join(rng.choices(WORDS_DE + WORDS_EN, k=rng.randint(1, 3))) for _ in range(200)]
    for number, query in enumerate(queries):  # BM25 exactly: the postings were merged
        assert_same_results(grown, once, query, "bm25", ({}, {"lang": "de"})[number % 2])
    # a grown graph finds the nearest vectors as one built at once does (brute force as oracle;
    # HNSW is approximate either way)
    embedder = HashingEmbedder(64)
    for part in grown._current().parts:
        store = part.segment.store
        if store._graph is None:
            continue
        assert store._graph.ntotal == len(part.segment)  # (the vectors above are the graph's)
        every = store.vectors(np.arange(len(store)))
        found = 0
        for query in queries:
            vector = embedder.embed_query(query)
            exact = np.sort(every @ vector)[::-1][:10]
            got = store.search(vector, 10).scores
            found += int(np.isin(np.round(got, 5), np.round(exact, 5)).sum())
        assert found / (10 * len(queries)) >= 0.98
