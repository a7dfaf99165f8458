"""Issue #15: every bad request a clear 4xx in the one error shape, on the hashing embedder.

By class of the issue: input that gave 500s (1), limits enforced late or not at all (2), the
key checked before the body (4), the Host check (5), oversized heads (6), smaller points (9).
"""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.app import create_app
from indexer.access import HostNames, host_name, is_loopback
from indexer.catalog import Catalog
from indexer.cli import app as cli
from indexer.defaults import MAX_FILTER_CHARS, MAX_FILTERS, MAX_METADATA_DEPTH
from indexer.documents import language_code, make_document
from indexer.errors import InvalidRequestError
from indexer.service import SearchService
from indexer.settings import Settings
from tests.helpers import api_client, assert_error

KEY, READ_KEY = "write-secret-123", "read-secret-456"
WRITE = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
JSON = {"Content-Type": "application/json"}


def _client(catalog: Catalog, **settings: Any) -> TestClient:
    return api_client(create_app(Settings(model="hashing", **settings), catalog=catalog))


@pytest.fixture
def client(built: SearchService, catalog: Catalog) -> Iterator[TestClient]:
    with _client(catalog, api_key=KEY) as test_client:
        yield test_client


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


# -- 1: input that gave a 500 --------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/documents/x", rb'{"text": "a\ud800b"}'),
        ("/documents/x", rb'{"text": "Text.", "title": "\udc00"}'),
        ("/documents/x", rb'{"text": "Text.", "metadata": {"team": "\ud800"}}'),
        ("/documents/x", rb'{"text": "Text.", "metadata": {"\ud800": "x"}}'),
        ("/documents/x", b'{"text": "Text.", "metadata": {"m": ' + _nested(600).encode() + b"}}"),
        ("/documents/x", b'{"text": "Text.", "metadata": {"m": ' + _nested(9000).encode() + b"}}"),
        ("/documents/x", b'{"text": "\xff"}'),
        ("/v1/embeddings", rb'{"input": "\ud800"}'),
        ("/v1/embeddings", rb'{"input": ["ok", "\udfff"]}'),
        ("/search", rb'{"query": "\ud800"}'),
        ("/search/batch", rb'{"queries": [{"query": "\ud83d"}]}'),
    ],
)
def test_bodies_that_are_not_json_text_are_400(client: TestClient, path: str, body: bytes) -> None:
    method = client.put if path.startswith("/documents") else client.post
    error = assert_error(method(path, content=body, headers=WRITE), 400, "invalid_json")
    assert "not JSON" in error["message"] and "surrogate" in error["hint"]


def test_a_surrogate_pair_is_text(client: TestClient) -> None:
    body = rb'{"text": "Ein Gesicht \ud83d\ude00 lacht.", "title": "\ud83d\ude00"}'
    assert client.put("/documents/smile", content=body, headers=WRITE).status_code == 200


def test_metadata_too_deep_for_the_store_is_422(client: TestClient) -> None:
    deep = {"text": "Text.", "metadata": {"m": json.loads(_nested(MAX_METADATA_DEPTH + 5))}}
    error = assert_error(
        client.put("/documents/x", json=deep, headers=WRITE), 422, "invalid_request"
    )
    assert "nested" in error["message"]
    shallow = {"text": "Text.", "metadata": {"m": json.loads(_nested(MAX_METADATA_DEPTH - 2))}}
    assert client.put("/documents/x", json=shallow, headers=WRITE).status_code == 200


def test_make_document_refuses_what_it_cannot_store() -> None:
    for text, title, metadata in [
        ("a\ud800b", "", {}),
        ("ok", "\udc00", {}),
        ("ok", "", {"k": ["\ud800"]}),
        ("ok", "", {"k": json.loads(_nested(600))}),
        ("ok", "", {"k": object()}),
    ]:
        with pytest.raises(InvalidRequestError):
            make_document("d", text, title=title, metadata=metadata)
    with pytest.raises(InvalidRequestError):
        make_document("\ud800", "ok")


def test_bad_jsonl_lines_are_skipped_with_a_warning(tmp_path: Path, hashing_env: Settings) -> None:
    folder = tmp_path / "feed"
    folder.mkdir()
    lines = [
        '{"id": "ok", "text": "Der Rhein ist ein Fluss."}',
        '{"id": "deep", "text": "Tief.", "m": ' + _nested(600) + "}",
        '{"id": "deeper", "text": "Tiefer.", "m": ' + _nested(5000) + "}",
        '{"id": "meta", "text": "Flach.", "m": ' + _nested(MAX_METADATA_DEPTH + 1) + "}",
        r'{"id": "surrogate", "text": "a\ud800b."}',
        '{"id": "lang", "text": "Sprache.", "lang": "' + "x" * 5000 + '"}',
        '{"id": "tag", "text": "Tagged text.", "lang": "en-GB"}',
    ]
    (folder / "feed.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["index", str(folder), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["added"], len(summary["skipped"])) == (2, 5)
    assert result.stderr.count("warning: skipped") == 5
    assert "Traceback" not in result.output and "RecursionError" not in result.output
    info = json.loads(CliRunner().invoke(cli, ["info", "--json"]).stdout)
    assert sorted(s["language"] for s in info["sources"]) == ["de", "en"]


# -- 2: limits ------------------------------------------------------------------------------


def test_a_chunked_body_over_the_limit_is_413(built: SearchService, catalog: Catalog) -> None:
    with _client(catalog, api_key=KEY, max_body_bytes=4096) as client:
        chunks = iter([b'{"text": "', b"x" * 3000, b"x" * 3000, b'"}'])
        response = client.put("/documents/big", content=chunks, headers=WRITE)
        assert "content-length" not in response.request.headers
        error = assert_error(response, 413, "payload_too_large")
        assert "4096" in error["message"] and "FINDLING_MAX_BODY_BYTES" in error["hint"]
        query = iter([b'{"query": "', b"a" * 60_000, b'"}'])
        assert_error(client.post("/search", content=query, headers=JSON), 413, "payload_too_large")


@pytest.mark.parametrize(
    ("path", "field", "item"),
    [
        ("/search/batch", "queries", {}),
        ("/v1/embeddings", "input", {}),
        ("/documents", "documents", {}),
    ],
)
def test_lists_are_counted_before_their_items_are_validated(
    client: TestClient, path: str, field: str, item: object
) -> None:
    # 33 invalid items: counted, not validated one by one (a validation error each)
    response = client.post(path, json={field: [item] * 33}, headers=WRITE)
    error = assert_error(response, 422, "invalid_request")
    assert error["message"] == f"33 items in {field!r}, at most 32 are allowed in one request"
    assert error["details"] == []


def test_search_bodies_are_held_to_what_a_search_needs(client: TestClient) -> None:
    tiny = json.dumps({"queries": [{"query": "a"}] * 200_000}).encode()  # 3 MB of tiny queries
    error = assert_error(
        client.post("/search/batch", content=tiny, headers=JSON), 413, "payload_too_large"
    )
    assert "the most this route takes" in error["message"]
    objects = b'{"input": [' + b",".join([b"{}"] * 5_000_000) + b"]}"  # 15 MB
    assert_error(
        client.post("/v1/embeddings", content=objects, headers=JSON), 413, "payload_too_large"
    )


def test_a_list_at_the_route_limit_costs_little_memory(client: TestClient) -> None:
    """Measured before the fix: 10 MB of tiny batch queries took 0.5 GB, of embedding objects
    8 GB. Now such a body is refused unread, and one just under the route's limit is counted
    after a cheap parse."""
    limit = client.app.state.body_rules.limit("/v1/embeddings")  # type: ignore[attr-defined]
    body = b'{"input": [' + b",".join([b"{}"] * ((limit - 20) // 3)) + b"]}"
    assert len(body) <= limit
    tracemalloc.start()
    try:
        response = client.post("/v1/embeddings", content=body, headers=JSON)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert_error(response, 422, "invalid_request")
    assert peak < 100 * 1024 * 1024, f"{peak / 1e6:.0f} MB"


def test_filters_are_bounded(client: TestClient, built: SearchService) -> None:
    many = {f"k{i}": "v" for i in range(MAX_FILTERS + 1)}
    error = assert_error(
        client.post("/search", json={"query": "Rhein", "filters": many}), 422, "invalid_request"
    )
    assert "at most 16 filters" in error["details"][0]["msg"]
    bad_values = {"query": "Rhein", "filters": {f"k{i}": i for i in range(3000)}}
    response = client.post("/search", json=bad_values)
    assert len(assert_error(response, 422, "invalid_request")["details"]) == 1
    long_glob = "*" * (MAX_FILTER_CHARS + 1)
    assert_error(
        client.post("/search", json={"query": "Rhein", "filters": {"source": long_glob}}),
        422,
        "invalid_request",
    )
    error = assert_error(
        client.get("/search", params={"q": "Rhein", "filter": f"source={long_glob}"}),
        422,
        "invalid_request",
    )
    assert "longer than 200 characters" in error["message"]
    with pytest.raises(InvalidRequestError):  # the library (CLI, MCP) refuses it too
        built.search("Rhein", filters={"source": long_glob})
    ok = client.get("/search", params={"q": "Rhein", "filter": "source=*.md"}).json()
    assert ok["results"] and all(r["source"].endswith(".md") for r in ok["results"])


def test_embeddings_inputs_and_model(client: TestClient) -> None:
    assert_error(
        client.post("/v1/embeddings", json={"input": "x" * 8193}), 413, "payload_too_large"
    )
    assert client.post("/v1/embeddings", json={"input": "x" * 8192}).status_code == 200
    error = assert_error(
        client.post("/v1/embeddings", json={"input": "Rhein", "model": "text-embedding-3-small"}),
        422,
        "invalid_request",
    )
    assert "hashing-256" in error["message"] and "hashing-256" in error["hint"]
    for body in ({"input": "Rhein"}, {"input": "Rhein", "model": "hashing-256"}):
        assert client.post("/v1/embeddings", json=body).status_code == 200
    assert_error(client.post("/v1/embeddings", json={"input": []}), 422, "invalid_request")


def test_document_language_is_a_language_code(client: TestClient) -> None:
    for language in ("x" * 5000, "deutsch", "d", "de-", "de\n"):
        body = {"text": "Ein Satz.", "language": language}
        assert_error(client.put("/documents/l", json=body, headers=WRITE), 422, "invalid_request")
    body = {"text": "Short.", "language": "EN-gb"}
    assert client.put("/documents/l", json=body, headers=WRITE).status_code == 200
    hits = client.get("/search", params={"q": "Short", "filter": "lang=en"}).json()["results"]
    assert [h["language"] for h in hits if h["text"] == "Short."] == ["en"]
    assert [language_code(t) for t in ("de", "en-GB", "pt_BR", "zh-Hant-TW")] == [
        "de",
        "en",
        "pt",
        "zh",
    ]


# -- 4: the key before the body ----------------------------------------------------------------


def test_the_key_is_checked_before_the_body(built: SearchService, catalog: Catalog) -> None:
    bad = [b"{not json", b'{"text": "\xff"}', b'{"text": ' + _nested(900).encode() + b"}"]
    with _client(catalog, api_key=KEY, max_body_bytes=4096) as client:
        for body in bad:
            assert_error(
                client.put("/documents/x", content=body, headers=JSON), 401, "unauthorized"
            )
        response = client.post("/documents", content=b"x" * 100_000, headers=JSON)
        assert_error(response, 401, "unauthorized")
        wrong = {**JSON, "Authorization": "Bearer wrong"}
        assert_error(client.delete("/documents/" + "x" * 600, headers=wrong), 401, "unauthorized")
        assert_error(client.put("/documents/x", content=bad[0], headers=WRITE), 400, "invalid_json")
    with _client(catalog) as closed:
        assert_error(
            closed.put("/documents/x", content=bad[0], headers=JSON), 403, "writes_disabled"
        )
    with _client(catalog, read_api_key=READ_KEY) as client:
        response = client.post("/search", content=b"{not json", headers=JSON)
        assert_error(response, 401, "unauthorized")


def test_what_a_read_key_closes(built: SearchService, catalog: Catalog) -> None:
    with _client(catalog, api_key=KEY, read_api_key=READ_KEY) as client:
        for path in ("/metrics", "/search?q=Rhein", "/info", "/collections"):
            assert_error(client.get(path), 401, "unauthorized")
        assert_error(client.post("/v1/embeddings", json={"input": "x"}), 401, "unauthorized")
        for key in (READ_KEY, KEY):
            response = client.get("/metrics", headers={"Authorization": f"Bearer {key}"})
            assert response.status_code == 200 and "findling_index_passages" in response.text
        # probes, the page and the API description stay open: they hold no indexed data
        for path in ("/health", "/ready", "/", "/docs", "/openapi.json", "/static/app.js"):
            assert client.get(path).status_code == 200, path


# -- 5: the Host check ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host", ["localhost", "localhost:8000", "127.0.0.1:1234", "[::1]:8000", "LOCALHOST"]
)
def test_loopback_hosts_are_served(client: TestClient, host: str) -> None:
    assert client.get("/health", headers={"Host": host}).status_code == 200


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:8000", "localhost.evil.example", "127.0.0.2", ""]
)
def test_other_hosts_are_421(client: TestClient, host: str) -> None:
    for response in (
        client.get("/search", params={"q": "Rhein"}, headers={"Host": host}),
        client.put("/documents/x", json={"text": "x"}, headers={**WRITE, "Host": host}),
        client.get("/nope", headers={"Host": host}),
    ):
        error = assert_error(response, 421, "host_not_allowed")
        assert "FINDLING_ALLOWED_HOSTS" in error["hint"]


def test_allowed_hosts_is_configurable(built: SearchService, catalog: Catalog) -> None:
    with _client(catalog, allowed_hosts=["search.example", "192.168.1.20"]) as client:
        for host in ("search.example", "Search.Example:8443", "192.168.1.20:8000"):
            assert client.get("/health", headers={"Host": host}).status_code == 200
        assert_error(client.get("/health"), 421, "host_not_allowed")  # localhost is not listed
    with _client(catalog, allowed_hosts=["*"]) as client:
        assert client.get("/health", headers={"Host": "anything.example"}).status_code == 200


def test_host_names() -> None:
    assert host_name("LocalHost:8000") == "localhost"
    assert host_name("[::1]:8000") == host_name("::1") == "[::1]"
    assert host_name("localhost.") == "localhost"
    hosts = HostNames(["localhost", "127.0.0.1", "::1"])
    assert hosts.allow("[::1]") and hosts.allow("127.0.0.1:80") and not hosts.allow(None)
    assert [is_loopback(a) for a in ("127.0.0.1", "::1", "localhost", "0.0.0.0", "::")] == [
        True,
        True,
        True,
        False,
        False,
    ]


@pytest.mark.parametrize(
    "arguments",
    [["serve", "--host", "0.0.0.0"], ["mcp", "--transport", "streamable-http", "--host", "::"]],
)
def test_binding_to_other_machines_needs_allowed_hosts(
    hashing_env: Settings, arguments: list[str]
) -> None:
    result = CliRunner().invoke(cli, arguments)
    assert result.exit_code == 2
    assert "FINDLING_ALLOWED_HOSTS" in result.output


# -- 6 and 9: heads, methods --------------------------------------------------------------------


def test_a_large_head_is_431(client: TestClient) -> None:
    headers = {f"X-Filler-{i}": "x" * 1000 for i in range(64)}  # 64 KB
    error = assert_error(client.get("/health", headers=headers), 431, "headers_too_large")
    assert "16384" in error["message"]
    assert_error(client.get("/search", params={"q": "x" * 20_000}), 431, "headers_too_large")


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", "/search", "GET, POST"),
        ("PUT", "/health", "GET"),
        ("PATCH", "/documents/x", "GET, PUT, DELETE"),
        ("PATCH", "/documents", "GET, POST"),
        ("DELETE", "/documents/a/b", "GET"),  # ids with a slash are read, not written, here
    ],
)
def test_405_names_the_allowed_methods(
    client: TestClient, method: str, path: str, allowed: str
) -> None:
    response = client.request(method, path, headers=WRITE)
    assert_error(response, 405, "method_not_allowed")
    assert response.headers["allow"] == allowed
