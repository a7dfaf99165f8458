"""The LangChain and LlamaIndex retrievers, against the real langchain-core and llama-index-core,
over a local index and over HTTP (a TestClient, and a real `findling serve`)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.app import create_app
from indexer.catalog import Catalog
from indexer.errors import IndexNotFoundError, UnauthorizedError
from indexer.integrations import langchain, llama_index
from indexer.service import SearchService
from indexer.settings import Settings
from tests.helpers import api_client, modules_loaded_by_cli, running_server

READ_KEY = "read-secret-456"
QUESTION = "Rhein Fluss Europa"
METADATA = {
    "source", "document_id", "start", "end", "paragraph", "sentence", "language", "score",
    "rank", "dense_score", "lexical_score", "context", "context_start", "context_end", "title",
    "modified", "metadata", "page", "sentence_id", "probability",
}  # fmt: skip


def _langchain_hits(retriever: langchain.FindlingRetriever, asynchronous: bool = False) -> list:
    documents = (
        asyncio.run(retriever.ainvoke(QUESTION)) if asynchronous else retriever.invoke(QUESTION)
    )
    return [(d.page_content, d.metadata) for d in documents]


def _llama_hits(retriever: llama_index.FindlingRetriever, asynchronous: bool = False) -> list:
    nodes = (
        asyncio.run(retriever.aretrieve(QUESTION)) if asynchronous else retriever.retrieve(QUESTION)
    )
    return [(n.node.get_content(), n.node.metadata) for n in nodes]


@pytest.fixture
def local(built: SearchService, hashing_env: Settings, index_root: Path) -> Path:
    """The index folder of ``built``, for retrievers that open it through open_index."""
    return index_root


def test_langchain_over_a_local_index(local: Path) -> None:
    retriever = langchain.FindlingRetriever(index_dir=local, k=2)
    documents = retriever.invoke(QUESTION)
    assert len(documents) == 2
    best = documents[0]
    assert best.page_content == "Der Rhein ist ein Fluss in Europa."
    assert set(best.metadata) == METADATA
    assert best.metadata["source"].endswith("rhein.txt") and best.metadata["language"] == "de"
    assert (best.metadata["start"], best.metadata["end"]) == (0, 34)
    context = best.metadata["context"]
    start, end = best.metadata["context_start"], best.metadata["context_end"]
    assert context[start:end] == best.page_content and len(context) > len(best.page_content)
    assert best.id == f"{best.metadata['document_id']}:0-34"
    assert _langchain_hits(retriever, asynchronous=True) == _langchain_hits(retriever)


def test_llama_index_over_a_local_index(local: Path) -> None:
    from llama_index.core.schema import MetadataMode, TextNode

    retriever = llama_index.FindlingRetriever(index_dir=local, k=2)
    nodes = retriever.retrieve(QUESTION)
    assert len(nodes) == 2
    best = nodes[0]
    assert best.node.get_content() == "Der Rhein ist ein Fluss in Europa."
    assert best.score == best.node.metadata["score"] > nodes[1].score
    assert set(best.node.metadata) == METADATA
    assert isinstance(best.node, TextNode)
    assert (best.node.start_char_idx, best.node.end_char_idx) == (0, 34)
    assert best.node.ref_doc_id == best.node.metadata["document_id"]  # the source document
    shown = best.node.get_content(MetadataMode.LLM)  # what a prompt gets: source and paragraph
    assert "rhein.txt" in shown and "Düsseldorf" in shown and "dense_score" not in shown
    assert best.node.get_content(MetadataMode.EMBED) == best.node.get_content()
    assert _llama_hits(retriever, asynchronous=True) == _llama_hits(retriever)


def test_k_mode_filters_and_collection_reach_the_search(local: Path) -> None:
    english = langchain.FindlingRetriever(
        index_dir=local, k=10, mode="bm25", filters={"lang": "en"}
    ).invoke("water bread oven")
    assert english and all(d.metadata["language"] == "en" for d in english)
    assert all(d.metadata["dense_score"] is None for d in english)  # bm25 only
    with pytest.raises(IndexNotFoundError):
        llama_index.FindlingRetriever(index_dir=local, collection="nope").retrieve(QUESTION)


@pytest.fixture
def client(built: SearchService, catalog: Catalog) -> Iterator[TestClient]:
    settings = Settings(model="hashing", read_api_key=READ_KEY)  # type: ignore[arg-type]
    with api_client(create_app(settings, catalog=catalog)) as test_client:
        yield test_client


def test_over_http_the_hits_are_those_of_the_library(local: Path, client: TestClient) -> None:
    remote: dict[str, Any] = {"url": "http://localhost", "k": 3, "http_client": client}
    assert _langchain_hits(
        langchain.FindlingRetriever(**remote, api_key=SecretStr(READ_KEY))
    ) == _langchain_hits(langchain.FindlingRetriever(index_dir=local, k=3))
    assert _llama_hits(llama_index.FindlingRetriever(**remote, api_key=READ_KEY)) == _llama_hits(
        llama_index.FindlingRetriever(index_dir=local, k=3)
    )


def test_server_errors_are_raised_as_the_library_raises_them(client: TestClient) -> None:
    remote: dict[str, Any] = {"url": "http://localhost", "http_client": client}
    with pytest.raises(UnauthorizedError, match="need an API key"):
        langchain.FindlingRetriever(**remote).invoke(QUESTION)
    with pytest.raises(IndexNotFoundError):
        llama_index.FindlingRetriever(**remote, api_key=READ_KEY, collection="nope").retrieve("x")


def test_a_retriever_searches_one_place(local: Path) -> None:
    with pytest.raises(ValueError, match="not both"):
        langchain.FindlingRetriever(index_dir=local, url="http://127.0.0.1:8000")
    with pytest.raises(ValueError, match="give its url too"):
        llama_index.FindlingRetriever(index_dir=local, api_key="key")


def test_against_a_real_server_sync_and_async(local: Path) -> None:
    env = {"FINDLING_MODEL": "hashing", "FINDLING_INDEX_DIR": str(local)}
    with running_server({**env, "FINDLING_READ_API_KEY": READ_KEY}, timeout=60) as url:
        expected = _langchain_hits(langchain.FindlingRetriever(index_dir=local, k=2))
        for asynchronous in (False, True):
            chain = langchain.FindlingRetriever(url=url, api_key=SecretStr(READ_KEY), k=2)
            llama = llama_index.FindlingRetriever(url=url, api_key=READ_KEY, k=2)
            assert _langchain_hits(chain, asynchronous) == expected
            assert _llama_hits(llama, asynchronous) == expected
        with pytest.raises(UnauthorizedError):
            asyncio.run(langchain.FindlingRetriever(url=url).ainvoke(QUESTION))


def test_findling_itself_never_imports_the_frameworks() -> None:
    optional = ("langchain_core", "llama_index", "watchfiles", "docx", "filelock")
    assert modules_loaded_by_cli([["--help"], ["index", "--help"]], optional) == []
    probe = (
        "import sys, indexer; print([m for m in sys.modules if m.startswith(('lang', 'llama'))])"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
