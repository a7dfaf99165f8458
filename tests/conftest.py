"""Shared fixtures: a small German/English corpus and a service on the hashing embedder."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from indexer.catalog import Catalog
from indexer.model.embedder import HashingEmbedder
from indexer.service import SearchService
from indexer.settings import Settings
from tests.helpers import ENGLISH, GERMAN


@pytest.fixture(autouse=True, scope="session")
def ctrl_c_is_heard() -> Iterator[None]:
    """Ctrl-C raises KeyboardInterrupt here and in the processes the tests start, however the
    run was started. A shell starts a background job (`make check &`, `nohup ... &`) with SIGINT
    ignored, Python then installs no handler, and children inherit the ignoring: the Ctrl-C tests
    failed, or skipped as "finished before Ctrl-C arrived". A handler, unlike ignoring, is reset
    to the default in a child, where Python installs its own again."""
    ignored = signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    if ignored:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    if ignored:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.fixture(autouse=True)
def _no_findling_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A developer's own FINDLING_* variables must not leak into the tests.

    The model cache stays: it says where the converted model is kept, not how findling behaves.
    """
    for name in [n for n in os.environ if n.startswith("FINDLING_")]:
        if name != "FINDLING_MODEL_CACHE_DIR":
            monkeypatch.delenv(name)
    yield


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "rhein.txt").write_text(GERMAN, encoding="utf-8")
    (folder / "sub" / "cooking.md").write_text(ENGLISH, encoding="utf-8")
    (folder / "ignored.csv").write_text("a,b\n", encoding="utf-8")
    return folder


@pytest.fixture
def index_root(tmp_path: Path) -> Path:
    """The folder holding the collections (FINDLING_INDEX_DIR)."""
    return tmp_path / "index"


@pytest.fixture
def index_dir(index_root: Path) -> Path:
    """The default collection's folder."""
    return index_root / "default"


@pytest.fixture
def service(index_dir: Path) -> SearchService:
    return SearchService(index_dir, HashingEmbedder(256))


@pytest.fixture
def built(service: SearchService, corpus: Path) -> SearchService:
    service.build([corpus])
    return service


@pytest.fixture
def catalog(index_root: Path, service: SearchService) -> Catalog:
    """Collections under ``index_root`` on the hashing embedder; "default" is ``service``."""
    return Catalog(index_root, service.embedder, service.options)


@pytest.fixture
def hashing_env(monkeypatch: pytest.MonkeyPatch, index_root: Path) -> Settings:
    """Environment for adapters (CLI, app) that build their own settings at the edge."""
    monkeypatch.setenv("FINDLING_MODEL", "hashing")
    monkeypatch.setenv("FINDLING_INDEX_DIR", str(index_root))
    return Settings()
