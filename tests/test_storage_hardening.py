"""Hardening of the storage layer (issue #15): paths as given, readers that retry, a bounded
catalog, a drop that waits for writers, busy writes answered with Retry-After."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from api.app import create_app
from indexer.catalog import SERVICES_KEPT, Catalog
from indexer.errors import IndexBusyError
from indexer.locking import writer_lock
from indexer.model.embedder import HashingEmbedder
from indexer.options import SearchOptions
from indexer.service import SearchService
from indexer.settings import Settings
from indexer.snapshot import SegmentCache, Snapshot
from tests.helpers import ENGLISH, GERMAN, api_client


def test_file_documents_are_shown_by_the_path_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "rhein.txt").write_text(GERMAN, encoding="utf-8")
    (tmp_path / "docs" / "cooking.md").write_text(ENGLISH, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    service = SearchService(Path("index/default"), HashingEmbedder(128))
    service.build([Path("docs")])
    hit = service.search("Rhein Fluss Europa", k=1).results[0]
    assert (hit.document_id, hit.source) == ("docs/rhein.txt", "docs/rhein.txt")
    assert sorted(s.id for s in service.sources()) == ["docs/cooking.md", "docs/rhein.txt"]
    shown = json.dumps([s.to_json() for s in service.sources()])
    assert str(tmp_path) not in shown and "key" not in json.loads(shown)[0]
    # the id a client sees is the id it can address; the stored id is the resolved path
    assert service.delete(["docs/rhein.txt"]).removed == 1
    assert [s.id for s in service.sources()] == ["docs/cooking.md"]
    # indexing again by another spelling of the same folder finds the same documents
    again = service.build([Path("./docs/../docs")])
    assert (again.added, again.unchanged) == (1, 1)


def test_a_reader_reads_current_again_when_a_commit_pruned_what_it_was_opening(
    built: SearchService, corpus: Path
) -> None:
    stale = built.info()
    (corpus / "extra.txt").write_text("Der Main fließt durch Frankfurt.", encoding="utf-8")
    built.build([corpus])
    built.optimize()  # merges the segments away ...
    (corpus / "more.txt").write_text("Die Elbe fließt durch Hamburg.", encoding="utf-8")
    built.build([corpus])  # ... and one commit later they are pruned
    assert not (built.index_dir / stale.segments[0].name).exists()
    snapshot = Snapshot.open(built.index_dir, SegmentCache(), manifest=stale)
    assert snapshot.generation == built.info().generation


def test_the_catalog_keeps_a_bounded_number_of_services(index_root: Path) -> None:
    catalog = Catalog(index_root, HashingEmbedder(64), SearchOptions())
    first = catalog.service("c0")
    for number in range(1, SERVICES_KEPT + 20):
        catalog.service(f"c{number}")
    assert len(catalog._services) == SERVICES_KEPT
    assert catalog.service("c0") is not first  # forgotten, made anew on demand


def test_drop_waits_for_the_writer(built: SearchService, index_root: Path) -> None:
    catalog = Catalog(index_root, built.embedder, built.options)
    with writer_lock(built.index_dir), pytest.raises(IndexBusyError):
        catalog.drop("default")
    assert catalog.names() == ["default"]
    catalog.drop("default")
    assert catalog.names() == [] and not any(index_root.iterdir())


def test_a_write_blocked_by_another_process_is_409_with_retry_after(
    built: SearchService, catalog: Catalog
) -> None:
    settings = Settings(model="hashing", api_key="key", write_wait=0)  # type: ignore[arg-type]
    busy = Catalog(catalog.root, catalog.embedder, SearchOptions.from_settings(settings))
    with api_client(create_app(settings, catalog=busy)) as client, writer_lock(built.index_dir):
        answer = client.put(
            "/documents/memo", json={"text": "Ein Satz."}, headers={"Authorization": "Bearer key"}
        )
    assert answer.status_code == 409 and answer.json()["error"]["code"] == "index_busy"
    assert answer.headers["Retry-After"] == "5"
    assert os.environ.get("FINDLING_WRITE_WAIT") is None
