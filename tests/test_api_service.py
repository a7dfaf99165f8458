"""The HTTP service for programs and chatbots: writes, keys, batch, embeddings, limits, metrics."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from api.app import create_app
from indexer.catalog import Catalog
from indexer.service import SearchService
from indexer.settings import Settings
from tests.helpers import api_client, assert_error

WRITE_KEY, READ_KEY = "write-secret-123", "read-secret-456"


def _client(catalog: Catalog, **settings: object) -> TestClient:
    return api_client(create_app(Settings(model="hashing", **settings), catalog=catalog))  # type: ignore[arg-type]


@pytest.fixture
def writable(built: SearchService, catalog: Catalog) -> Iterator[TestClient]:
    with _client(catalog, api_key=WRITE_KEY) as client:
        yield client


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


DOC = {"text": "Die Elbe fließt durch Hamburg.", "metadata": {"team": "geo"}}


def test_writes_are_refused_without_a_configured_key(
    built: SearchService, catalog: Catalog
) -> None:
    with _client(catalog) as client:
        error = assert_error(client.put("/documents/elbe", json=DOC), 403, "writes_disabled")
        assert "FINDLING_API_KEY" in str(error["hint"])
        response = client.put("/documents/elbe", json=DOC, headers=_auth("anything"))
        assert_error(response, 403, "writes_disabled")


def test_writes_need_the_right_key(writable: TestClient) -> None:
    assert_error(writable.put("/documents/elbe", json=DOC), 401, "unauthorized")
    assert_error(
        writable.put("/documents/elbe", json=DOC, headers=_auth("wrong")), 401, "unauthorized"
    )
    assert_error(
        writable.delete("/documents/x", headers={"Authorization": "Basic abc"}), 401, "unauthorized"
    )
    done = writable.put("/documents/elbe", json=DOC, headers=_auth(WRITE_KEY))
    assert done.status_code == 200, done.text
    assert (done.json()["added"], done.json()["documents"]) == (1, 3)


def test_reads_with_and_without_a_read_key(built: SearchService, catalog: Catalog) -> None:
    with _client(catalog, api_key=WRITE_KEY, read_api_key=READ_KEY) as client:
        assert_error(client.get("/search", params={"q": "Rhein"}), 401, "unauthorized")
        assert_error(client.get("/info", headers=_auth("wrong")), 401, "unauthorized")
        assert (
            client.get("/search", params={"q": "Rhein"}, headers=_auth(READ_KEY)).status_code == 200
        )
        assert client.get("/info", headers=_auth(WRITE_KEY)).status_code == 200  # write key reads
        assert client.get("/health").status_code == 200  # probes stay open
    with _client(catalog) as open_reads:
        assert open_reads.get("/search", params={"q": "Rhein"}).status_code == 200


def test_keys_never_reach_the_log(writable: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="findling.access")
    writable.put("/documents/elbe", json=DOC, headers=_auth(WRITE_KEY))
    writable.put("/documents/elbe", json=DOC, headers=_auth("wrong-key-789"))
    lines = [r.getMessage() for r in caplog.records if r.name == "findling.access"]
    assert (
        len(lines) == 2
        and '"status": 200' in lines[0]
        and '"route": "/documents/{doc_id}"' in lines[0]
    )
    assert not any(WRITE_KEY in line or "wrong-key-789" in line for line in lines)


def test_document_lifecycle(writable: TestClient) -> None:
    headers = _auth(WRITE_KEY)
    put = writable.put("/documents/elbe", json=DOC, headers=headers).json()
    again = writable.put("/documents/elbe", json=DOC, headers=headers).json()
    assert (again["unchanged"], again["embedded"], again["generation"]) == (1, 0, put["generation"])
    changed = writable.put(
        "/documents/elbe", json={**DOC, "text": "Die Elbe mündet bei Cuxhaven."}, headers=headers
    ).json()
    assert (changed["updated"], changed["embedded"]) == (1, 1)
    hits = writable.get("/search", params={"q": "Elbe", "filter": "team=geo"}).json()["results"]
    assert [h["text"] for h in hits] == ["Die Elbe mündet bei Cuxhaven."]
    assert hits[0]["source"] == "elbe"
    batch = writable.post(
        "/documents",
        json={"documents": [{"id": "a", "text": "Eins."}, {"id": "b", "text": "Zwei."}]},
        headers=headers,
    ).json()
    assert (batch["added"], batch["documents"]) == (2, 5)
    gone = writable.delete("/documents/elbe", headers=headers).json()
    assert (gone["removed"], gone["documents"]) == (1, 4)
    assert not any(
        "Elbe" in h["text"] for h in writable.get("/search", params={"q": "Elbe"}).json()["results"]
    )
    assert_error(writable.delete("/documents/elbe", headers=headers), 404, "document_not_found")
    duplicate = {"documents": [{"id": "a", "text": "x"}, {"id": "a", "text": "y"}]}
    assert_error(
        writable.post("/documents", json=duplicate, headers=headers), 422, "invalid_request"
    )
    assert_error(
        writable.put("/documents/e", json={"text": "  "}, headers=headers), 422, "invalid_request"
    )


def test_limits(built: SearchService, catalog: Catalog) -> None:
    with _client(
        catalog, api_key=WRITE_KEY, max_batch=2, max_body_bytes=2048, max_document_chars=100
    ) as client:
        big = {"text": "x" * 101}
        assert_error(
            client.put("/documents/big", json=big, headers=_auth(WRITE_KEY)),
            413,
            "payload_too_large",
        )
        huge = {"text": "x" * 5000}
        assert_error(
            client.put("/documents/big", json=huge, headers=_auth(WRITE_KEY)),
            413,
            "payload_too_large",
        )
        three = {"queries": [{"query": "a"}, {"query": "b"}, {"query": "c"}]}
        assert_error(client.post("/search/batch", json=three), 422, "invalid_request")
        assert_error(client.get("/search", params={"q": "x" * 2001}), 422, "invalid_request")
        assert_error(client.get("/search", params={"q": "x", "k": 101}), 422, "invalid_request")


def test_batch_search(writable: TestClient) -> None:
    body = {"queries": [{"query": "Rhein Europa", "k": 1}, {"query": "Pasta", "mode": "bm25"}]}
    responses = writable.post("/search/batch", json=body).json()["responses"]
    assert [r["query"] for r in responses] == ["Rhein Europa", "Pasta"]
    assert responses[0]["results"][0]["text"] == "Der Rhein ist ein Fluss in Europa."
    assert responses[1]["mode"] == "bm25"


def test_openai_compatible_embeddings(writable: TestClient, built: SearchService) -> None:
    body = writable.post(
        "/v1/embeddings", json={"input": ["Rhein", "Elbe"], "model": "hashing-256"}
    ).json()
    assert body["object"] == "list" and body["model"] == "hashing-256"
    assert [d["index"] for d in body["data"]] == [0, 1]
    vector = np.array(body["data"][0]["embedding"])
    assert vector.shape == (256,) and abs(np.linalg.norm(vector) - 1) < 1e-5
    np.testing.assert_allclose(vector, built.embedder.embed_documents(["Rhein"])[0], atol=1e-6)
    single = writable.post("/v1/embeddings", json={"input": "Rhein", "input_type": "query"}).json()
    assert len(single["data"]) == 1 and body["usage"]["total_tokens"] == 2


def test_ready_and_metrics(writable: TestClient) -> None:
    assert writable.get("/ready").json() == {"status": "ready"}
    for _ in range(3):
        writable.get("/search", params={"q": "Rhein"})
    writable.get("/nope")
    text = writable.get("/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    counts = {
        (s.labels["route"], s.labels["status"]): s.value
        for s in families["findling_requests"].samples
        if s.name == "findling_requests_total"
    }
    assert counts[("/search", "200")] == 3
    assert counts[("unmatched", "404")] == 1
    assert counts[("/ready", "200")] == 1
    latency = [s for s in families["findling_request_seconds"].samples if s.name.endswith("_count")]
    assert any(s.labels["route"] == "/search" and s.value == 3 for s in latency)
    passages = {
        s.labels["collection"]: s.value for s in families["findling_index_passages"].samples
    }
    assert passages == {"default": 9}


def test_ready_is_503_without_an_index(catalog: Catalog) -> None:
    with _client(catalog) as client:
        assert client.get("/health").status_code == 200
        assert_error(client.get("/ready"), 503, "index_not_found")


def test_cors_is_closed_by_default_and_configurable(built: SearchService, catalog: Catalog) -> None:
    preflight = {"Origin": "https://chat.example", "Access-Control-Request-Method": "GET"}
    with _client(catalog) as closed:
        response = closed.get(
            "/search", params={"q": "Rhein"}, headers={"Origin": "https://chat.example"}
        )
        assert "access-control-allow-origin" not in response.headers
    with _client(catalog, cors_origins=["https://chat.example"]) as open_:
        response = open_.options("/search", headers=preflight)
        assert response.headers["access-control-allow-origin"] == "https://chat.example"
