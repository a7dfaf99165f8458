"""Paging (offset), a score cut-off (min_score) and results grouped by document, through the
library, the HTTP API and the CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.app import create_app
from indexer.catalog import Catalog
from indexer.cli import app
from indexer.documents import make_document
from indexer.errors import InvalidRequestError
from indexer.model.embedder import HashingEmbedder
from indexer.results import Hit
from indexer.service import SearchService
from indexer.settings import Settings
from tests.helpers import api_client, assert_error

WORDS = ["Rhein", "Fluss", "Brücke", "Stadt", "Hafen", "Schiff", "Markt", "Regen"]


@pytest.fixture
def many(index_dir: Path) -> SearchService:
    """8 documents of 3 paragraphs of 2 sentences."""
    service = SearchService(index_dir, HashingEmbedder(256))
    documents = []
    for n in range(8):
        paragraphs = [
            f"Der {WORDS[(n + p) % 8]} liegt am {WORDS[(n * p) % 8]}. Die Zahl ist {n}{p}."
            for p in range(3)
        ]
        documents.append(make_document(f"doc-{n}", "\n\n".join(paragraphs), language="de"))
    service.upsert(documents)
    return service


def _keys(hits: list[Hit]) -> list[tuple[str, int, int, float]]:
    return [(h.document_id, h.paragraph, h.sentence, h.score) for h in hits]


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_pages_follow_each_other(many: SearchService, mode: str) -> None:
    whole = many.search("Rhein Fluss Hafen", k=12, mode=mode).results
    pages = [many.search("Rhein Fluss Hafen", k=4, mode=mode, offset=o).results for o in (0, 4, 8)]
    assert _keys([h for page in pages for h in page]) == _keys(whole)
    assert [h.rank for h in pages[1]] == [5, 6, 7, 8][: len(pages[1])]
    assert many.search("Rhein", k=5, offset=1000).results == []


def test_min_score_cuts_off_weak_results(many: SearchService) -> None:
    whole = many.search("Rhein Fluss Hafen", k=24, mode="dense").results
    cut = whole[len(whole) // 2].score
    kept = many.search("Rhein Fluss Hafen", k=24, mode="dense", min_score=cut).results
    assert _keys(kept) == _keys([h for h in whole if h.score >= cut])
    assert all(h.score >= cut for h in kept) and len(kept) < len(whole)
    paged = many.search("Rhein Fluss Hafen", k=3, mode="dense", min_score=cut, offset=3).results
    assert _keys(paged) == _keys(kept[3:6])
    assert many.search("Rhein", min_score=2.0).results == []


def test_group_by_document_gives_each_documents_best_passages(many: SearchService) -> None:
    passages = many.search("Rhein Fluss Hafen", k=24, mode="dense").results
    grouped = many.search("Rhein Fluss Hafen", k=3, mode="dense", group="document").results
    documents = list(dict.fromkeys(h.document_id for h in passages))[:3]
    assert list(dict.fromkeys(h.document_id for h in grouped)) == documents
    for rank, document in enumerate(documents, start=1):
        mine = [h for h in grouped if h.document_id == document]
        # its best passages, best first, one per paragraph, at most 3; they share its rank
        assert _keys(mine) == _keys([h for h in passages if h.document_id == document][:3])
        assert {h.rank for h in mine} == {rank}
    # documents are pages too
    second = many.search("Rhein Fluss Hafen", k=3, mode="dense", group="document", offset=3)
    assert (
        list(dict.fromkeys(h.document_id for h in second.results))
        == list(dict.fromkeys(h.document_id for h in passages))[3:6]
    )
    assert {h.rank for h in second.results} == {4, 5, 6}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"offset": -1}, "offset must be between 0 and 1000"),
        ({"offset": 1001}, "offset must be between 0 and 1000"),
        ({"min_score": float("nan")}, "min_score must be a number"),
        ({"group": "sentence"}, "unknown group 'sentence'"),
    ],
)
def test_bad_paging_is_refused(many: SearchService, options: dict, message: str) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        many.search("Rhein", **options)


@pytest.fixture
def client(many: SearchService, index_root: Path) -> Iterator[TestClient]:
    catalog = Catalog(index_root, many.embedder, many.options)
    with api_client(create_app(catalog=catalog)) as test_client:
        yield test_client


def test_paging_over_http(client: TestClient, many: SearchService) -> None:
    expected = many.search("Rhein Hafen", k=3, offset=2, min_score=0.0, group="document")
    body: dict[str, str | int | float] = {
        "query": "Rhein Hafen",
        "k": 3,
        "offset": 2,
        "min_score": 0.0,
        "group": "document",
    }
    posted = client.post("/search", json=body).json()
    got = client.get("/search", params={**body, "q": body["query"]}).json()
    batch = client.post("/search/batch", json={"queries": [body]}).json()["responses"][0]
    for answer in (posted, got, batch):
        assert answer["results"] == [h.to_json() for h in expected.results]
    bads: list[dict[str, str | int]] = [
        {"offset": -1},
        {"offset": 1001},
        {"group": "x"},
        {"min_score": "high"},
    ]
    for bad in bads:
        assert_error(client.post("/search", json={"query": "x", **bad}), 422, "invalid_request")
        assert_error(client.get("/search", params={"q": "x", **bad}), 422, "invalid_request")


def test_paging_on_the_command_line(
    hashing_env: Settings, many: SearchService, monkeypatch: pytest.MonkeyPatch, index_root: Path
) -> None:
    expected = many.search("Rhein Hafen", k=2, offset=1, min_score=0.0, group="document")
    arguments = ["search", "Rhein Hafen", "-k", "2", "--offset", "1", "--min-score", "0"]
    result = CliRunner().invoke(app, [*arguments, "--group", "document", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["results"] == [h.to_json() for h in expected.results]
    result = CliRunner().invoke(app, ["search", "Rhein", "--group", "page"])
    assert result.exit_code == 1 and "unknown group 'page'" in result.stderr


def test_grouped_results_are_shown_under_their_document(
    hashing_env: Settings, many: SearchService
) -> None:
    result = CliRunner().invoke(app, ["search", "Rhein Hafen", "-k", "2", "--group", "document"])
    assert result.exit_code == 0, result.output
    heads = [line for line in result.stdout.splitlines() if line[:2] in ("1.", "2.")]
    assert [line.split()[1] for line in heads] == list(
        dict.fromkeys(
            h.document_id for h in many.search("Rhein Hafen", k=2, group="document").results
        )
    )
