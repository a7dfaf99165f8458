"""The MCP server: in memory on the hashing embedder, and `findling mcp` over stdio for real."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from starlette.testclient import TestClient

from indexer.catalog import create_service
from indexer.mcp_server import create_mcp_http_app, create_mcp_server
from indexer.ranking import SCORE_DESCRIPTION
from indexer.schemas import SearchHit
from indexer.service import SearchService
from indexer.settings import Settings
from tests.helpers import FINDLING, SEEDS, modules_loaded_by_cli

SEARCH_ARGUMENTS = (
    "question",
    "k",
    "filters",
    "collection",
    "mode",
    "offset",
    "min_score",
    "group",
)


def _call(settings: Settings, calls: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    """Run ``calls`` against an in-memory server; returns the tool listing, then each result."""

    async def session() -> list[Any]:
        async with Client(create_mcp_server(settings)) as client:
            answers: list[Any] = [(await client.list_tools()).tools]
            for name, arguments in calls:
                answers.append(await client.call_tool(name, arguments))
            return answers

    return anyio.run(session)


def test_tools_search_and_info(hashing_env: Settings, built: SearchService) -> None:
    tools, found, filtered, info = _call(
        hashing_env,
        [
            ("search", {"question": "Rhein Fluss Europa", "k": 2}),
            ("search", {"question": "Pasta salted water", "filters": {"lang": "de"}}),
            ("info", {}),
        ],
    )
    described = {tool.name: tool for tool in tools}
    assert set(described) == {"search", "fetch", "info"}
    search = described["search"]
    assert search.description and "German and English" in search.description
    assert SCORE_DESCRIPTION in search.description and '{"lang": "de"}' in search.description
    assert list(search.input_schema["properties"]) == list(SEARCH_ARGUMENTS)
    assert search.output_schema is not None and search.annotations.read_only_hint

    assert not found.is_error
    results = found.structured_content["results"]
    assert len(results) == 2 and results[0]["text"] == "Der Rhein ist ein Fluss in Europa."
    assert results[0]["rank"] == 1 and results[0]["language"] == "de"
    assert set(results[0]) == set(SearchHit.model_fields)  # what the HTTP API returns too
    assert results[0]["source"].endswith("rhein.txt")
    assert "Der Rhein ist ein Fluss in Europa." in found.content[0].text  # the same, as text

    assert all(r["language"] == "de" for r in filtered.structured_content["results"])

    manifest = info.structured_content
    assert (manifest["model"], manifest["documents"], manifest["passages"]) == ("hashing-256", 2, 9)
    assert any(path.endswith("cooking.md") for path in manifest["sources"])


@pytest.mark.parametrize(
    ("arguments", "message", "hint"),
    [
        ({"question": "  "}, "the query is empty", "ask a question"),
        ({"question": "Rhein", "k": 0}, "k must be between 1 and 100", "pass a k"),
        ({"question": "Rhein", "collection": "nope"}, "no index at", "run `findling index"),
        ({"question": "Rhein", "collection": "../up"}, "invalid collection name", "use letters"),
    ],
)
def test_domain_errors_become_tool_errors(
    hashing_env: Settings, built: SearchService, arguments: dict[str, Any], message: str, hint: str
) -> None:
    _, result = _call(hashing_env, [("search", arguments)])
    text = result.content[0].text
    assert result.is_error and message in text and f"hint: {hint}" in text
    assert "Traceback" not in text


def test_serves_without_an_index(hashing_env: Settings) -> None:
    _, result = _call(hashing_env, [("info", {})])
    assert result.is_error and "no index at" in result.content[0].text


def test_serves_a_damaged_index_and_says_so(hashing_env: Settings, built: SearchService) -> None:
    (built.index_dir / f"{built.info().generation}.json").write_text("{", encoding="utf-8")
    _, result = _call(hashing_env, [("search", {"question": "Rhein"})])
    assert result.is_error and "is not valid JSON" in result.content[0].text
    assert "hint: rebuild it with `findling index --rebuild`" in result.content[0].text


def test_cli_help_does_not_import_mcp() -> None:
    assert modules_loaded_by_cli([["--help"], ["mcp", "--help"]], ["mcp"]) == []


# -- real model, real process ------------------------------------------------------------------

QUESTIONS = [
    ("Wie viele Zivilisten starben im August?", "184 Zivilisten"),
    ("Whom will Biden meet in Washington on Friday?", "Keir Starmer"),
]


@pytest.mark.model
def test_findling_mcp_over_stdio(tmp_path: Path) -> None:
    index_dir = tmp_path / "index"
    create_service(Settings(index_dir=index_dir, model="multilingual-e5-small")).build([SEEDS])
    env = {
        **os.environ,
        "FINDLING_INDEX_DIR": str(index_dir),
        "FINDLING_MODEL": "multilingual-e5-small",
    }
    params = StdioServerParameters(command=str(FINDLING), args=["mcp"], env=env)
    errlog = tmp_path / "stderr.txt"

    async def session() -> None:
        with errlog.open("w") as log, anyio.fail_after(300):
            async with Client(stdio_client(params, errlog=log)) as client:
                names = {tool.name for tool in (await client.list_tools()).tools}
                assert names == {"search", "fetch", "info"}
                for question, fragment in QUESTIONS:
                    result = await client.call_tool("search", {"question": question, "k": 3})
                    assert not result.is_error, result.content
                    top = result.structured_content["results"][0]
                    assert fragment in top["text"], (question, top["text"])
                    assert top["source"].endswith(".txt") and top["score"] > 0
                info = await client.call_tool("info", {})
                assert info.structured_content["model"] == "multilingual-e5-small"

    try:
        anyio.run(session)
    finally:
        print(errlog.read_text(encoding="utf-8"), file=sys.stderr)
    assert "Traceback" not in errlog.read_text(encoding="utf-8")


# -- over HTTP: the Host check and the read key, as the HTTP API has them ------------------------

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "test", "version": "1"},
    },
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def _post_initialize(settings: Settings, base_url: str, headers: dict[str, str]) -> Any:
    with TestClient(create_mcp_http_app(settings), base_url=base_url) as client:
        return client.post("/mcp", json=INITIALIZE, headers={**MCP_HEADERS, **headers})


@pytest.mark.parametrize(
    ("base_url", "headers", "status"),
    [
        ("http://localhost:8000", {}, 200),
        ("http://[::1]:8000", {}, 200),
        ("http://evil.example", {}, 421),  # DNS rebinding: a name that resolves to 127.0.0.1
        ("http://localhost", {"Origin": "http://evil.example"}, 403),
    ],
)
def test_mcp_over_http_answers_allowed_hosts_only(
    hashing_env: Settings, base_url: str, headers: dict[str, str], status: int
) -> None:
    assert _post_initialize(hashing_env, base_url, headers).status_code == status


def test_mcp_over_http_needs_the_read_key_when_set(hashing_env: Settings) -> None:
    settings = Settings(read_api_key="r-key", api_key="w-key")  # type: ignore[arg-type]
    refused = _post_initialize(settings, "http://localhost", {})
    assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
    assert refused.json()["error"]["code"] == "unauthorized"
    wrong = _post_initialize(settings, "http://localhost", {"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    for key in ("r-key", "w-key"):
        answer = _post_initialize(settings, "http://localhost", {"Authorization": f"Bearer {key}"})
        assert answer.status_code == 200 and '"serverInfo"' in answer.text
    anyone = Settings(allowed_hosts=["*"])
    assert _post_initialize(anyone, "http://evil.example", {}).status_code == 200
