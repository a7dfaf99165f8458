"""Sharded collections: a collection split into shards reads as one collection, on one machine
and shard by shard (the rounds the distributed server runs), with the same hits and scores as
the same documents unsharded; commits are one swap; pruning knows the shards."""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from indexer.cli import app
from indexer.documents import Document
from indexer.errors import DocumentNotFoundError, InvalidRequestError
from indexer.generations import CURRENT, current_name
from indexer.lexical import analyze
from indexer.manifest import read_manifest
from indexer.merging import MergePolicy
from indexer.model.embedder import HashingEmbedder
from indexer.options import SearchOptions
from indexer.scatter import CollectionStatistics, LocalShards, Proposal, ShardedService, ShardQuery
from indexer.service import SearchService
from indexer.settings import Settings
from indexer.shards import shard_of
from indexer.snapshot import SegmentCache, Snapshot
from tests.helpers import (
    WORDS_DE,
    WORDS_EN,
    assert_same_hits,
    assert_same_results,
    random_document,
    stored,
)

MERGES = MergePolicy(floor=5, per_tier=3, at_once=3)
FILTERS: list[dict[str, str]] = [{}, {"lang": "de"}, {"team": "a"}, {"source": "notes/0*"}]
# #17's filters with operators, and its paging, cut-off and grouping (see ranking.Selection)
OPERATOR_FILTERS: list[dict[str, Any]] = [
    {"team": {"$in": ["a"]}},
    {"$or": [{"lang": "de"}, {"title": {"$ne": "Titel 1"}}]},
    {"title": {"$nin": ["Titel 0", "Titel 2"]}, "lang": {"$ne": "en"}},
]
SELECTIONS: list[dict[str, Any]] = [
    {"offset": 3},
    {"group": "document"},
    {"group": "document", "offset": 2},
    {"min_score": 0.3},
]


def _options() -> SearchOptions:
    return SearchOptions(ann_threshold=0, write_merges=MERGES, build_merges=MERGES)


def _service(folder: Path) -> SearchService:
    return SearchService(folder, HashingEmbedder(128), _options())


def _scattered(folder: Path) -> ShardedService:
    """The collection searched shard by shard, as `findling serve --ray` does, in process."""
    return ShardedService(folder, HashingEmbedder(128), _options(), LocalShards(folder))


def _corpus(rng: random.Random, count: int = 90) -> dict[str, Document]:
    return {d.id: d for d in (random_document(rng, n) for n in range(count))}


def _grown_sharded(folder: Path, final: dict[str, Document], shards: int) -> SearchService:
    """``final`` in ``shards`` shards, reached through a first build, then adds, replacements
    and deletions (so that segments merge and deletion files exist in the shards)."""
    rng = random.Random(shards)
    service = _service(folder)
    ids = list(final)
    rng.shuffle(ids)
    service.build_documents([final[i] for i in ids[:10]], shards=shards)
    for begin in range(10, len(ids), 9):
        batch = [final[i] for i in ids[begin : begin + 9]]
        service.upsert([random_document(rng, int(d.id[4:]), version=1) for d in batch[:3]])
        service.upsert([random_document(rng, 700 + begin)])
        service.upsert(batch)
    service.delete([f"doc-{700 + b:03d}" for b in range(10, len(ids), 9)])
    gone = rng.sample(ids, 12)
    service.delete(gone)
    service.upsert([final[i] for i in gone])
    return service


@pytest.fixture(scope="module")
def once(tmp_path_factory: pytest.TempPathFactory) -> SearchService:
    service = _service(tmp_path_factory.mktemp("once") / "c")
    service.upsert(list(_corpus(random.Random(13)).values()))
    return service


@pytest.mark.parametrize("shards", [1, 2, 3])
def test_a_sharded_collection_answers_as_the_unsharded_one(
    tmp_path: Path, once: SearchService, shards: int
) -> None:
    """On one machine (all shards in one snapshot) and shard by shard (statistics, proposals
    and hits merged by the driver): the same hits and scores, 200 queries in every mode."""
    final = _corpus(random.Random(13))
    sharded = _grown_sharded(tmp_path / "c", final, shards)
    manifest = sharded.info()
    assert len(manifest.shards) == shards
    assert (manifest.documents, manifest.passages) == (once.info().documents, once.info().passages)
    assert any(s.deleted for s in manifest.segments)
    scattered = _scattered(tmp_path / "c")
    rng = random.Random(99)
    queries = [" ".join(rng.choices(WORDS_DE + WORDS_EN, k=rng.randint(1, 4))) for _ in range(200)]
    compared = 0
    for number, query in enumerate(queries):
        for mode in ("dense", "bm25", "hybrid"):
            filters = FILTERS[number % len(FILTERS)]
            assert_same_results(sharded, once, query, mode, filters)
            assert_same_results(scattered, once, query, mode, filters)
            compared += 1
    assert compared == 600


def test_shard_by_shard_is_one_machine_exactly(tmp_path: Path) -> None:
    """Addresses are the one-machine snapshot's, so even ties come in the same order."""
    sharded = _grown_sharded(tmp_path / "c", _corpus(random.Random(5), 60), 3)
    scattered = _scattered(tmp_path / "c")
    rng = random.Random(7)
    for _ in range(60):
        query = " ".join(rng.choices(WORDS_DE + WORDS_EN, k=rng.randint(1, 3)))
        for mode in ("dense", "bm25", "hybrid"):
            ours = scattered.search(query, k=10, mode=mode)
            theirs = sharded.search(query, k=10, mode=mode)
            assert [r.to_json() for r in ours.results] == [r.to_json() for r in theirs.results]
            assert ours.shards is not None and ours.shards.successful == 3
            assert theirs.shards is None


def test_operators_paging_and_groups_on_shards(tmp_path: Path, once: SearchService) -> None:
    """#17's search options on a sharded collection: on one machine the scores and ranks of
    the unsharded collection; shard by shard exactly the one-machine results."""
    sharded = _grown_sharded(tmp_path / "c", _corpus(random.Random(13)), 3)
    scattered = _scattered(tmp_path / "c")
    rng = random.Random(17)
    for number in range(60):
        query = " ".join(rng.choices(WORDS_DE + WORDS_EN, k=rng.randint(1, 4)))
        mode = ("dense", "bm25", "hybrid")[number % 3]
        filters = OPERATOR_FILTERS[number % len(OPERATOR_FILTERS)]
        for selection in SELECTIONS:
            assert_same_results(sharded, once, query, mode, filters, **selection)
            ours = scattered.search(query, k=5, mode=mode, filters=filters, **selection)
            theirs = sharded.search(query, k=5, mode=mode, filters=filters, **selection)
            assert [r.to_json() for r in ours.results] == [r.to_json() for r in theirs.results]


class _Counting(LocalShards):
    """In-process shards that count the hits rounds the driver needs, and can be told to send
    no passages with their proposals (every chosen passage then needs a hits round)."""

    def __init__(self, index_dir: Path, send_passages: bool = True) -> None:
        super().__init__(index_dir)
        self.send_passages = send_passages
        self.hits_rounds = 0

    def propose(self, requests: Mapping[str, ShardQuery]) -> tuple[dict[str, Proposal], list[str]]:
        answers, failed = super().propose(requests)
        if not self.send_passages:
            answers = {s: replace(p, passages={}) for s, p in answers.items()}
        return answers, failed

    def hits(self, requests: Any) -> Any:
        self.hits_rounds += 1
        return super().hits(requests)


def test_one_round_usually_and_passages_not_sent_are_read(tmp_path: Path) -> None:
    """A search is one round: the driver counts BM25's statistics from the shards' files and
    the shards send the passages it is likely to choose; a chosen passage a shard did not send
    is read in a second round, with the same results."""
    folder = tmp_path / "c"
    sharded = _grown_sharded(folder, _corpus(random.Random(11), 60), 3)
    sending = _Counting(folder)
    silent = _Counting(folder, send_passages=False)
    one_round = ShardedService(folder, HashingEmbedder(128), _options(), sending)
    two_rounds = ShardedService(folder, HashingEmbedder(128), _options(), silent)
    rng = random.Random(3)
    searches = 0
    for number in range(40):
        query = " ".join(rng.choices(WORDS_DE + WORDS_EN, k=rng.randint(1, 4)))
        for mode in ("dense", "bm25", "hybrid"):
            for selection in [{}, *SELECTIONS]:
                filters = FILTERS[number % len(FILTERS)]
                expected = sharded.search(query, 5, mode, filters, **selection).results
                for service in (one_round, two_rounds):
                    got = service.search(query, 5, mode, filters, **selection).results
                    assert [r.to_json() for r in got] == [r.to_json() for r in expected]
                searches += 1
    assert silent.hits_rounds > searches / 2  # (searches with no hit need no round)
    assert sending.hits_rounds <= searches // 20, f"{sending.hits_rounds} of {searches}"


def test_the_drivers_statistics_are_the_shards_sums(tmp_path: Path) -> None:
    """CollectionStatistics (read by the driver) equals the sum of what each shard's own
    snapshot counts, live sentences only (deletions and replacements included)."""
    folder = tmp_path / "c"
    sharded = _grown_sharded(folder, _corpus(random.Random(2), 50), 3)
    view = sharded.info()
    counts = CollectionStatistics(folder)
    snapshots = [
        Snapshot.open(
            folder / s.name,
            SegmentCache(),
            read_manifest(folder / s.name / f"{s.generation}.json"),
        )
        for s in view.shards
    ]
    rng = random.Random(4)
    for _ in range(30):
        terms = [*analyze(" ".join(rng.choices(WORDS_DE + WORDS_EN, k=4)), "de"), "unbekannt"]
        summed = [snapshot.statistics(terms) for snapshot in snapshots]
        total = counts.count(view, terms)
        assert total.rows == sum(s.rows for s in summed) == view.passages
        assert total.length == sum(s.length for s in summed)
        for term in terms:
            assert total.frequencies[term] == sum(s.frequencies[term] for s in summed)
        assert total.frequencies["unbekannt"] == 0


def test_documents_on_shards(tmp_path: Path, once: SearchService) -> None:
    """GET /documents and /documents/{id} (service.documents, .document) on one machine and
    shard by shard."""
    sharded = _grown_sharded(tmp_path / "c", _corpus(random.Random(13)), 3)
    scattered = _scattered(tmp_path / "c")
    everything = sharded.documents(0, 1000)
    assert everything.total == once.documents().total == 90
    assert sorted(d.id for d in everything.documents) == sorted(
        d.id for d in once.documents(0, 1000).documents
    )
    for offset, limit in [(0, 7), (5, 30), (29, 31), (44, 46), (85, 10), (90, 5), (0, 1000)]:
        assert scattered.documents(offset, limit) == sharded.documents(offset, limit)
    for doc_id in ("doc-001", "doc-042", "doc-089"):
        assert scattered.document(doc_id) == sharded.document(doc_id)
        # stored by a program: modified is when each collection stored it
        assert replace(sharded.document(doc_id), modified="") == replace(
            once.document(doc_id), modified=""
        )
    with pytest.raises(DocumentNotFoundError):
        scattered.document("doc-999")
    with pytest.raises(InvalidRequestError):
        scattered.documents(-1, 5)


@pytest.mark.parametrize("shards", [1, 3])
def test_more_like_this_shard_by_shard_as_on_one_machine(
    tmp_path: Path, once: SearchService, shards: int
) -> None:
    """similar() of documents, sentences and texts, with filters and selections: shard by shard
    (as `findling serve --ray` runs it) the same answer as the sharded collection on one
    machine, and the same hits and scores as the unsharded one; never the document itself."""
    sharded = _grown_sharded(tmp_path / "c", _corpus(random.Random(13)), shards)
    scattered = _scattered(tmp_path / "c")
    rng = random.Random(shards)
    sentence_ids = {
        hit.sentence_id
        for _ in range(20)
        for hit in sharded.search(" ".join(rng.choices(WORDS_DE + WORDS_EN, k=2)), k=5).results
    }
    likes: list[dict[str, Any]] = [{"document_id": f"doc-{n:03d}"} for n in range(0, 90, 3)]
    likes += [{"sentence_id": i} for i in sorted(sentence_ids)[:30]]
    likes += [{"text": " ".join(rng.choices(WORDS_DE + WORDS_EN, k=3))} for _ in range(20)]
    filters = FILTERS + OPERATOR_FILTERS
    for number, like in enumerate(likes):
        where = filters[number % len(filters)]
        selection = ({}, *SELECTIONS)[number % (len(SELECTIONS) + 1)]
        ours = scattered.similar(k=5, filters=where, **like, **selection)
        theirs = sharded.similar(k=5, filters=where, **like, **selection)
        assert (ours.query, ours.mode, ours.results) == (theirs.query, theirs.mode, theirs.results)
        assert ours.shards is not None and ours.shards.successful == shards
        if "document_id" in like:
            assert like["document_id"] not in {r.document_id for r in ours.results}
        if "sentence_id" not in like:  # sentence ids are the sharded collection's own
            expected = once.similar(k=5, filters=where, **like, **selection).results
            assert_same_hits(ours.results, expected, like, **selection)
    for missing in ({"document_id": "doc-999"}, {"sentence_id": 10**9}):
        with pytest.raises(DocumentNotFoundError):
            scattered.similar(**missing)
    with pytest.raises(InvalidRequestError, match="exactly one"):
        scattered.similar(document_id="doc-001", text="Rhein")


@pytest.mark.parametrize("shards", [1, 3])
def test_sentence_ids_are_unique_over_the_shards(tmp_path: Path, shards: int) -> None:
    """Each shard numbers its sentences from 0; a hit's sentence_id names one sentence of the
    whole collection all the same (one machine and shard by shard), and "more like this" of it
    starts from that sentence, leaving out its own document."""
    sharded = _grown_sharded(tmp_path / "c", _corpus(random.Random(13)), shards)
    scattered = _scattered(tmp_path / "c")
    where: dict[int, tuple[str, int, int]] = {}
    rng = random.Random(23)
    for _ in range(40):
        query = " ".join(rng.choices(WORDS_DE + WORDS_EN, k=rng.randint(1, 3)))
        ours = sharded.search(query, k=30, mode="hybrid").results
        theirs = scattered.search(query, k=30, mode="hybrid").results
        assert [r.sentence_id for r in ours] == [r.sentence_id for r in theirs]
        for hit in ours:
            place = (hit.document_id, hit.paragraph, hit.sentence)
            assert where.setdefault(hit.sentence_id, place) == place
    assert len(where) > 100
    snapshot = sharded._ready()
    for sentence_id, (document_id, paragraph, sentence) in list(where.items())[:40]:
        address = snapshot.find_sentence(sentence_id)
        assert address is not None
        found = snapshot.passage(address)
        assert (found.document_id, found.paragraph, found.sentence, found.sentence_id) == (
            document_id,
            paragraph,
            sentence,
            sentence_id,
        )
        assert document_id not in {
            r.document_id for r in sharded.similar(sentence_id=sentence_id).results
        }
    if shards == 1:  # one shard: the stored ids, as an unsharded collection has them
        stored = {int(i) for p in snapshot.parts for i in p.segment.ids}
        assert set(where) <= stored


def test_layout_routing_and_one_swap(tmp_path: Path) -> None:
    folder = tmp_path / "c"
    service = _grown_sharded(folder, _corpus(random.Random(3), 40), 3)
    top_name = current_name(folder)
    assert top_name.startswith("top-") and (folder / CURRENT).read_text().strip() == top_name
    top = read_manifest(folder / f"{top_name}.json")
    assert [s.name for s in top.shards] == ["shard-00", "shard-01", "shard-02"]
    assert top.segments == []  # the shards' own manifests name their segments
    for shard in top.shards:
        manifest = read_manifest(folder / shard.name / f"{shard.generation}.json")
        assert (manifest.documents, manifest.passages) == (shard.documents, shard.sentences)
        assert not (folder / shard.name / CURRENT).exists()  # only the top is ever current
    routed = {0: 0, 1: 0, 2: 0}
    for part in Snapshot.open(folder, SegmentCache()).parts:
        number = int(part.entry.name.split("/")[0].removeprefix("shard-"))
        for _, doc_id, *_ in part.segment.catalogue():
            assert shard_of(doc_id, 3) == number
            routed[number] += 1
    assert all(routed.values())  # 40 documents reach every shard
    assert service.verify() == []
    assert sum(s.terms for s in top.shards) > 0


def test_pruning_keeps_the_current_and_previous_generations_of_every_shard(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "c"
    service = _grown_sharded(folder, _corpus(random.Random(4), 40), 2)
    for shard in ("shard-00", "shard-01"):
        assert len(list((folder / shard).glob("gen-*.json"))) <= 2
    assert len(list(folder.glob("top-*.json"))) <= 2
    (folder / "shard-01" / "seg-99999999").mkdir()  # what a killed writer left
    service.upsert([random_document(random.Random(1), 900)])
    assert not (folder / "shard-01" / "seg-99999999").exists()
    # every segment on disk is one the current or the previous generation needs
    names = {e.name for e in service.info().segments}
    on_disk = {f"{p.parent.name}/{p.name}" for p in folder.glob("shard-*/seg-*")}
    assert names <= on_disk and len(on_disk - names) <= 3


def test_resharding_needs_a_rebuild_and_the_old_shards_go(tmp_path: Path) -> None:
    folder = tmp_path / "c"
    service = _grown_sharded(folder, _corpus(random.Random(6), 30), 3)
    before = {s.sentence.text for s in stored(folder)}
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("Ein Satz.", encoding="utf-8")
    with pytest.raises(InvalidRequestError, match="rebuild"):
        service.build([tmp_path / "docs"], shards=2)
    documents = list(_corpus(random.Random(6), 30).values())
    service.build_documents(documents, shards=2)
    assert [s.name for s in service.info().shards] == ["shard-00", "shard-01"]
    assert {s.sentence.text for s in stored(folder)} == before
    service.upsert([random_document(random.Random(2), 901)])  # the 3-shard generation ages out
    service.upsert([random_document(random.Random(2), 902)])
    assert not (folder / "shard-02").exists()
    service.build_documents(documents)  # a rebuild keeps the shard count unless told
    assert len(service.info().shards) == 2


def test_an_unsharded_collection_keeps_its_layout(tmp_path: Path) -> None:
    folder = tmp_path / "c"
    service = _service(folder)
    service.upsert([random_document(random.Random(1), n) for n in range(5)])
    assert current_name(folder).startswith("gen-")
    assert not list(folder.glob("shard-*"))
    data = json.loads((folder / f"{current_name(folder)}.json").read_text())
    assert "shards" not in data and data["segments"]


def test_verify_finds_damage_inside_a_shard(tmp_path: Path) -> None:
    folder = tmp_path / "c"
    service = _grown_sharded(folder, _corpus(random.Random(8), 20), 2)
    segment = next((folder / "shard-01").glob("seg-*"))
    vectors = segment / "vectors.npy"
    data = bytearray(vectors.read_bytes())
    data[-1] ^= 0xFF
    vectors.write_bytes(bytes(data))
    problems = service.verify()
    assert problems and "shard-01" in problems[0]


def test_the_cli_builds_and_searches_a_sharded_collection(
    hashing_env: Settings, corpus: Path
) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["index", str(corpus), "--shards", "2", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["documents"] == 2
    result = runner.invoke(app, ["search", "Rhein Fluss Europa", "-k", "1", "--json"])
    assert json.loads(result.stdout)["results"][0]["text"] == "Der Rhein ist ein Fluss in Europa."
    result = runner.invoke(app, ["info", "--json"])
    assert [s["name"] for s in json.loads(result.stdout)["shards"]] == ["shard-00", "shard-01"]
    again = runner.invoke(app, ["index", str(corpus), "--json"])  # keeps its shards
    assert json.loads(again.stdout)["unchanged"] == 2
    wrong = runner.invoke(app, ["index", str(corpus), "--shards", "3"])
    assert wrong.exit_code == 1 and "rebuild" in wrong.stderr
    assert np.isfinite(json.loads(result.stdout)["passages"])
