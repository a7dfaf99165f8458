"""The HTTP API through TestClient (lifespan runs), on the hashing embedder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from indexer.catalog import Catalog
from indexer.service import SearchService
from tests.helpers import api_client, assert_error


@pytest.fixture
def client(built: SearchService, catalog: Catalog) -> Iterator[TestClient]:
    with api_client(create_app(catalog=catalog)) as test_client:
        yield test_client


def test_get_and_post_search_agree(client: TestClient) -> None:
    got = client.get("/search", params={"q": "Bake the bread", "k": 2})
    posted = client.post("/search", json={"query": "Bake the bread", "k": 2})
    assert got.status_code == posted.status_code == 200
    for response in (got, posted):
        body = response.json()
        assert set(body) == {"query", "mode", "results", "took_ms"}
        assert body["mode"] == "hybrid"
        assert body["results"][0]["text"] == "Bake the bread for 40 minutes."
        assert len(body["results"]) == 2
    assert got.json()["results"] == posted.json()["results"]


def test_mode_is_selectable(client: TestClient) -> None:
    got = client.get("/search", params={"q": "Düsseldorf", "mode": "bm25"}).json()
    posted = client.post("/search", json={"query": "Düsseldorf", "mode": "bm25"}).json()
    assert got == {**posted, "took_ms": got["took_ms"]}
    assert got["mode"] == "bm25" and len(got["results"]) == 1
    assert got["results"][0]["dense_score"] is None
    assert_error(client.get("/search", params={"q": "x", "mode": "magic"}), 422, "invalid_request")


def test_default_k(client: TestClient) -> None:
    assert len(client.get("/search", params={"q": "Rhein"}).json()["results"]) == 5


@pytest.mark.parametrize("query", ["", "   "])
def test_empty_query_is_422(client: TestClient, query: str) -> None:
    assert_error(client.get("/search", params={"q": query}), 422, "invalid_request")
    assert_error(client.post("/search", json={"query": query}), 422, "invalid_request")


@pytest.mark.parametrize("k", ["0", "-3", "101", "99999999999", "abc"])
def test_bad_k_is_422(client: TestClient, k: str) -> None:
    assert_error(client.get("/search", params={"q": "Rhein", "k": k}), 422, "invalid_request")


@pytest.mark.parametrize(
    "body", [{}, {"k": 3}, {"query": 5}, {"query": "x", "k": "many"}, [], "not json"]
)
def test_malformed_bodies_are_422(client: TestClient, body: object) -> None:
    error = assert_error(client.post("/search", json=body), 422, "invalid_request")
    assert error["details"]


def test_missing_q_is_422(client: TestClient) -> None:
    assert_error(client.get("/search"), 422, "invalid_request")


def test_unknown_route_and_method(client: TestClient) -> None:
    assert_error(client.get("/nope"), 404, "not_found")
    assert_error(client.delete("/search"), 405, "method_not_allowed")


def test_health_info_and_docs(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    info = client.get("/info").json()
    assert info["model"] == "hashing-256" and info["passages"] == 9
    assert client.get("/docs").status_code == 200
    schema = client.get("/openapi.json").json()
    result = schema["components"]["schemas"]["SearchHit"]["properties"]
    assert "cosine" in result["score"]["description"].lower()


def test_without_index_the_server_runs_and_explains(catalog: Catalog) -> None:
    with api_client(create_app(catalog=catalog)) as client:
        assert client.get("/health").status_code == 200
        error = assert_error(client.get("/search", params={"q": "Rhein"}), 404, "index_not_found")
        assert "findling index" in str(error["hint"])
        assert_error(client.get("/info"), 404, "index_not_found")
        assert client.get("/collections").json() == []


def test_unexpected_errors_keep_the_shape(
    built: SearchService, catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(catalog.service("default"), "search", boom)
    with api_client(create_app(catalog=catalog), raise_server_exceptions=False) as client:
        error = assert_error(client.get("/search", params={"q": "x"}), 500, "internal_error")
        assert "boom" not in str(error)


def test_collections_and_filters(
    client: TestClient, catalog: Catalog, corpus: Path, tmp_path: Path
) -> None:
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "n.txt").write_text("Die Mosel mündet in Koblenz in den Rhein.", encoding="utf-8")
    catalog.service("notes").build([notes])
    listed = {c["name"]: c for c in client.get("/collections").json()}
    assert set(listed) == {"default", "notes"} and listed["notes"]["passages"] == 1
    hit = client.get("/search", params={"q": "Mosel", "collection": "notes"}).json()["results"]
    assert [r["text"] for r in hit] == ["Die Mosel mündet in Koblenz in den Rhein."]
    english = client.get("/search", params={"q": "Rhein water", "filter": "lang=en"}).json()
    assert english["results"] and all(r["language"] == "en" for r in english["results"])
    posted = client.post(
        "/search?collection=default", json={"query": "Rhein", "filters": {"source": "*.md"}}
    ).json()
    assert all(r["source"].endswith(".md") for r in posted["results"])
    assert_error(
        client.get("/search", params={"q": "x", "filter": "nonsense"}), 422, "invalid_request"
    )
    assert_error(
        client.get("/search", params={"q": "x", "collection": "../etc"}), 422, "invalid_request"
    )
    assert_error(
        client.get("/search", params={"q": "x", "collection": "nope"}), 404, "index_not_found"
    )


def test_filters_with_operators(client: TestClient) -> None:
    where = {
        "$or": [{"lang": "de"}, {"source": {"$in": ["*.md"]}}],
        "modified": {"$gte": "2000-01-01"},
    }
    posted = client.post("/search", json={"query": "Rhein bread", "k": 10, "filters": where})
    assert posted.status_code == 200 and len(posted.json()["results"]) == 5
    none = client.post(
        "/search", json={"query": "Rhein", "filters": {"modified": {"$lt": "2000-01-01"}}}
    )
    assert none.json()["results"] == []
    got = client.get("/search", params=[("q", "Rhein"), ("filter", "lang!=de"), ("k", "10")])
    assert {r["language"] for r in got.json()["results"]} == {"en"}
    error = assert_error(
        client.post("/search", json={"query": "x", "filters": {"team": {"$like": "a"}}}),
        422,
        "invalid_request",
    )
    assert "unknown filter operator '$like'" in error["details"][0]["msg"]
    error = assert_error(
        client.get("/search", params={"q": "x", "filter": "modified>=last week"}),
        422,
        "invalid_request",
    )
    assert "compares ISO dates, not 'last week'" in error["message"]
