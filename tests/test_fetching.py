"""Whole documents, and what hits tell about theirs: title, modification time, metadata, sentence
id and, for PDFs, the page; GET /documents, the library and the MCP fetch tool."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
import pytest
from fastapi.testclient import TestClient
from mcp import Client

from api.app import create_app
from indexer.catalog import Catalog
from indexer.documents import make_document, read_documents
from indexer.errors import DocumentNotFoundError, InvalidRequestError
from indexer.formats import page_of
from indexer.mcp_server import create_mcp_server
from indexer.model.embedder import HashingEmbedder
from indexer.schemas import DocumentResponse
from indexer.service import SearchService
from indexer.settings import Settings
from tests.helpers import api_client, assert_error, stored
from tests.makers import write_pdf

PAGES = [
    "Der Rhein fliesst durch Basel.",
    "",  # a page without text (a drawing)
    "Die Mosel muendet in Koblenz. Die Saar muendet bei Konz.",
    "Die Lahn ist kurz.",
]


@pytest.fixture
def pdf_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "pdfs"
    folder.mkdir()
    write_pdf(folder / "fluesse.pdf", PAGES, title="Flüsse")
    (folder / "notiz.txt").write_text("Der Neckar fliesst durch Heidelberg.", encoding="utf-8")
    return folder


def _pages_of_sentences(service: SearchService) -> dict[str, int | None]:
    found = {}
    for s in stored(service.index_dir):
        hit = service.search(s.sentence.text, k=1, mode="bm25").results[0]
        assert hit.text == s.sentence.text
        found[hit.text] = hit.page
    return found


def test_pdf_hits_name_their_page(service: SearchService, pdf_folder: Path) -> None:
    service.build([pdf_folder])
    assert _pages_of_sentences(service) == {
        "Der Rhein fliesst durch Basel.": 1,
        "Die Mosel muendet in Koblenz.": 3,  # the empty second page is counted, not shown
        "Die Saar muendet bei Konz.": 3,
        "Die Lahn ist kurz.": 4,
        "Der Neckar fliesst durch Heidelberg.": None,  # a text file has no pages
    }
    [pdf] = [d for d in read_documents([pdf_folder]).documents if d.path.endswith(".pdf")]
    assert pdf.pages == (0, 32, 32, 90)
    assert [page_of(pdf.pages, pdf.text.index(t)) for t in ("Rhein", "Saar", "Lahn")] == [1, 3, 4]


def test_pages_survive_merges(service: SearchService, pdf_folder: Path, tmp_path: Path) -> None:
    service.build([pdf_folder])
    for n in range(3):
        service.upsert([make_document(f"n{n}", f"Notiz {n} über Flüsse.", language="de")])
    service.optimize()
    assert len(service.info().segments) == 1
    assert _pages_of_sentences(service)["Die Lahn ist kurz."] == 4


def test_segments_from_before_page_numbers_are_read_and_merged(
    service: SearchService, pdf_folder: Path, index_dir: Path
) -> None:
    service.upsert([make_document("alt", "Ein alter Satz über den Rhein.", language="de")])
    [old] = service.info().segments
    # a segment written before page numbers: its documents table has no pages column
    with sqlite3.connect(index_dir / old.name / "documents.sqlite") as db:
        db.execute("ALTER TABLE documents DROP COLUMN pages")
    reader = SearchService(index_dir, HashingEmbedder(256))
    hit = reader.search("alter Satz", k=1).results[0]
    assert (hit.document_id, hit.page) == ("alt", None)
    assert reader.document("alt").pages == []
    reader.build([pdf_folder], prune=False)
    reader.optimize()  # the old segment merged with one that has pages
    assert _pages_of_sentences(reader)["Die Saar muendet bei Konz."] == 3
    assert reader.search("alter Satz", k=1).results[0].page is None


def test_hits_carry_title_modification_time_metadata_and_sentence_id(
    service: SearchService,
) -> None:
    memo = make_document(
        "memo", "Das Treffen ist am Montag.", title="Memo", metadata={"team": "ops", "n": 3}
    )
    service.upsert([memo])
    hit = service.search("Treffen Montag", k=1).results[0]
    assert (hit.title, hit.modified, hit.metadata) == ("Memo", memo.modified, memo.metadata)
    assert hit.sentence_id == stored(service.index_dir)[0].id
    assert {"title", "modified", "metadata", "page", "sentence_id"} <= set(hit.to_json())


def test_the_library_fetches_and_lists_documents(service: SearchService) -> None:
    documents = [
        make_document(
            f"d{n}", f"Der Satz {n} ist kurz. Noch einer folgt.", title=f"T{n}", language="de"
        )
        for n in range(7)
    ]
    for begin in (0, 3, 5):  # several segments
        service.upsert(documents[begin : begin + 3 if begin < 5 else 7])
    service.delete(["d1", "d5"])
    d3 = service.document("d3")
    assert (d3.text, d3.title, d3.sentences, d3.language, d3.pages) == (
        "Der Satz 3 ist kurz. Noch einer folgt.",
        "T3",
        2,
        "de",
        [],
    )
    with pytest.raises(DocumentNotFoundError):
        service.document("d1")
    listed = [service.documents(offset, 2) for offset in range(0, 6, 2)]
    assert [d.id for page in listed for d in page.documents] == ["d0", "d2", "d3", "d4", "d6"]
    assert {page.total for page in listed} == {5}
    assert service.documents(10, 5).documents == []
    assert service.documents(4, 1000).documents[0].title == "T6"
    for bad in ((0, 0), (0, 1001), (-1, 5)):
        with pytest.raises(InvalidRequestError):
            service.documents(*bad)


@pytest.fixture
def client(built: SearchService, catalog: Catalog) -> Iterator[TestClient]:
    with api_client(create_app(catalog=catalog)) as test_client:
        yield test_client


def test_documents_over_http(client: TestClient, built: SearchService) -> None:
    listed = client.get("/documents").json()
    assert listed["total"] == 2 and listed["offset"] == 0
    assert {Path(d["source"]).name for d in listed["documents"]} == {"rhein.txt", "cooking.md"}
    one = client.get("/documents", params={"offset": 1, "limit": 1}).json()
    assert one["documents"] == listed["documents"][1:]
    hit = client.get("/search", params={"q": "Rhein Europa", "k": 1}).json()["results"][0]
    # a file's id is its path: URL-encoded, slashes and all
    fetched = client.get(f"/documents/{quote(hit['document_id'], safe='')}")
    assert fetched.status_code == 200, fetched.text
    document = fetched.json()
    assert document == DocumentResponse.of(built.document(hit["document_id"])).model_dump()
    assert document["text"][hit["start"] : hit["end"]] == hit["text"]
    assert document["sentences"] == 4 and document["language"] == "de"
    assert client.get(f"/documents/{hit['document_id']}").json() == document  # unencoded too
    assert_error(client.get("/documents/nope"), 404, "document_not_found")
    for bad in ({"limit": 0}, {"limit": 1001}, {"offset": -1}):
        assert_error(client.get("/documents", params=bad), 422, "invalid_request")


def _call(settings: Settings, calls: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    async def session() -> list[Any]:
        async with Client(create_mcp_server(settings)) as client:
            return [await client.call_tool(name, arguments) for name, arguments in calls]

    return anyio.run(session)


def test_mcp_fetch(hashing_env: Settings, built: SearchService) -> None:
    [found] = _call(hashing_env, [("search", {"question": "Bake the bread", "k": 1})])
    document_id = found.structured_content["results"][0]["document_id"]
    fetched, missing = _call(
        hashing_env, [("fetch", {"id": document_id}), ("fetch", {"id": "nope"})]
    )
    assert not fetched.is_error
    assert fetched.structured_content == built.document(document_id).to_json()
    assert "Bake the bread for 40 minutes." in json.loads(fetched.content[0].text)["text"]
    assert missing.is_error and "no document 'nope'" in missing.content[0].text
