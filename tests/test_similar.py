"""More like this: passages like a document, a sentence or a text, against brute force over the
stored vectors; through the library, POST /similar and `findling similar`."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.app import create_app
from indexer.catalog import Catalog
from indexer.cli import app
from indexer.documents import make_document
from indexer.errors import DocumentNotFoundError, InvalidRequestError
from indexer.model.embedder import HashingEmbedder
from indexer.results import Hit
from indexer.service import SearchService
from indexer.settings import Settings
from tests.helpers import Stored, api_client, assert_error, stored

WORDS = ["Rhein", "Fluss", "Brücke", "Stadt", "Hafen", "Schiff", "Markt", "Regen", "Sonne"]


class NoModel(HashingEmbedder):
    """An embedder that must not be asked: what is similar to stored vectors needs none."""

    def embed_query(self, text: str) -> np.ndarray:
        raise AssertionError("embedded a query")

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        raise AssertionError("embedded documents")


@pytest.fixture
def many(index_dir: Path) -> SearchService:
    service = SearchService(index_dir, HashingEmbedder(256))
    for begin in (0, 5):  # two segments
        service.upsert(
            [
                make_document(
                    f"doc-{n}",
                    "\n\n".join(
                        f"Der {WORDS[(n + p) % 9]} und der {WORDS[(n * p + 1) % 9]} sind hier."
                        for p in range(2)
                    ),
                    language="de",
                    metadata={"n": n},
                )
                for n in range(begin, begin + 5)
            ]
        )
    return service


def _brute_force(sentences: list[Stored], vector: np.ndarray, left_out: str) -> list[tuple]:
    """Every other document's paragraphs, each by its best sentence, best first."""
    best: dict[tuple[str, int], float] = {}
    for s in sentences:
        if s.sentence.doc_id != left_out:
            key = (s.sentence.doc_id, s.sentence.paragraph)
            best[key] = max(best.get(key, -9.0), float(s.vector @ vector))
    return sorted(((key, score) for key, score in best.items()), key=lambda x: -x[1])


def _found(hits: list[Hit]) -> list[tuple]:
    return [((h.document_id, h.paragraph), h.score) for h in hits]


def _same(found: list[tuple], expected: list[tuple]) -> None:
    assert [key for key, _ in found] == [key for key, _ in expected]
    np.testing.assert_allclose([s for _, s in found], [s for _, s in expected], atol=1e-5)


def test_like_a_document_is_the_mean_of_its_stored_vectors(
    many: SearchService, index_dir: Path
) -> None:
    sentences = stored(index_dir)
    mean = np.mean([s.vector for s in sentences if s.sentence.doc_id == "doc-3"], axis=0)
    expected = _brute_force(sentences, mean / np.linalg.norm(mean), "doc-3")
    reader = SearchService(index_dir, NoModel(256))  # nothing is embedded
    answer = reader.similar(document_id="doc-3", k=30)
    assert (answer.query, answer.mode) == ("doc-3", "dense")
    _same(_found(answer.results), expected)
    assert "doc-3" not in {h.document_id for h in answer.results}


def test_like_a_sentence_is_its_stored_vector(many: SearchService, index_dir: Path) -> None:
    sentences = stored(index_dir)
    chosen = next(s for s in sentences if s.sentence.doc_id == "doc-7")
    expected = _brute_force(sentences, chosen.vector / np.linalg.norm(chosen.vector), "doc-7")
    answer = SearchService(index_dir, NoModel(256)).similar(sentence_id=chosen.id, k=30)
    assert answer.query == str(chosen.id)
    _same(_found(answer.results), expected)


def test_like_a_text_embeds_it_as_a_question(many: SearchService, index_dir: Path) -> None:
    text = "Die Brücke über den Rhein"
    vector = many.embedder.embed_query(text)
    answer = many.similar(text=text, k=30)
    _same(_found(answer.results), _brute_force(stored(index_dir), vector, left_out=""))


def test_similar_takes_the_options_of_a_search(many: SearchService) -> None:
    whole = many.similar(document_id="doc-1", k=12).results
    paged = many.similar(document_id="doc-1", k=3, offset=3).results
    assert _found(paged) == _found(whole[3:6]) and [h.rank for h in paged] == [4, 5, 6]
    cut = whole[4].score
    assert _found(many.similar(document_id="doc-1", k=12, min_score=cut).results) == _found(
        [h for h in whole if h.score >= cut]
    )
    filtered = many.similar(document_id="doc-1", k=12, filters={"n": {"$gte": 5}}).results
    assert filtered and {h.metadata["n"] for h in filtered} <= {5, 6, 7, 8, 9}
    grouped = many.similar(document_id="doc-1", k=2, group="document").results
    assert len({h.document_id for h in grouped}) == 2 and len(grouped) <= 4


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        ({}, InvalidRequestError, "give exactly one of"),
        ({"document_id": "doc-1", "text": "Rhein"}, InvalidRequestError, "give exactly one of"),
        ({"document_id": "nope"}, DocumentNotFoundError, "no document 'nope'"),
        ({"sentence_id": 10**6}, DocumentNotFoundError, "no sentence 1000000"),
        ({"text": "  "}, InvalidRequestError, "the query is empty"),
    ],
)
def test_what_similar_refuses(
    many: SearchService, arguments: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        many.similar(**arguments)


def test_a_removed_documents_sentences_are_not_found(many: SearchService, index_dir: Path) -> None:
    gone = next(s for s in stored(index_dir) if s.sentence.doc_id == "doc-2")
    many.delete(["doc-2"])
    with pytest.raises(DocumentNotFoundError):
        many.similar(sentence_id=gone.id)


@pytest.fixture
def client(many: SearchService, index_root: Path) -> Iterator[TestClient]:
    catalog = Catalog(index_root, many.embedder, many.options)
    with api_client(create_app(catalog=catalog)) as test_client:
        yield test_client


def test_similar_over_http(client: TestClient, many: SearchService) -> None:
    sentence_id = many.search("Hafen", k=1).results[0].sentence_id
    bodies: list[dict[str, Any]] = [
        {"document_id": "doc-4", "k": 3, "filters": {"n": {"$ne": 0}}},
        {"text": "Ein Schiff im Hafen", "offset": 1, "group": "document"},
        {"sentence_id": sentence_id, "min_score": 0.0},
    ]
    for body in bodies:
        response = client.post("/similar", json=body)
        assert response.status_code == 200, response.text
        answer = response.json()
        options = {k: v for k, v in body.items() if k not in ("document_id", "text", "sentence_id")}
        target = {k: v for k, v in body.items() if k in ("document_id", "text", "sentence_id")}
        expected = many.similar(**target, **options)
        assert answer["results"] == [h.to_json() for h in expected.results]
        assert answer["mode"] == "dense" and answer["query"] == expected.query
    assert_error(client.post("/similar", json={"k": 3}), 422, "invalid_request")
    assert_error(client.post("/similar", json={"sentence_id": -1}), 422, "invalid_request")
    assert_error(client.post("/similar", json={"sentence_id": 2**63}), 422, "invalid_request")
    assert_error(client.post("/similar", json={"document_id": "x"}), 404, "document_not_found")


def test_findling_similar(hashing_env: Settings, many: SearchService) -> None:
    runner = CliRunner()
    sentence_id = many.search("Hafen", k=1).results[0].sentence_id
    cases: list[tuple[str, str, dict[str, Any]]] = [
        ("--document", "doc-4", {"document_id": "doc-4"}),
        ("--text", "Ein Schiff im Hafen", {"text": "Ein Schiff im Hafen"}),
        ("--sentence", str(sentence_id), {"sentence_id": sentence_id}),
    ]
    for option, value, target in cases:
        result = runner.invoke(app, ["similar", option, value, "-k", "3", "--json"])
        assert result.exit_code == 0, result.output
        expected = many.similar(**target, k=3)
        assert json.loads(result.stdout)["results"] == [h.to_json() for h in expected.results]
    shown = runner.invoke(app, ["similar", "--document", "doc-4", "-k", "1"])
    assert shown.exit_code == 0 and "dense" in shown.stdout
    refused = runner.invoke(app, ["similar", "-k", "3"])
    assert refused.exit_code == 1 and "give exactly one of" in refused.stderr
