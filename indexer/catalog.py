"""Collections: several named indexes side by side under one root folder, and the factories
that build them from the settings.

index/
  default/   CURRENT, gen-.../   (one collection, see generations.py)
  notes/     CURRENT, gen-.../
"""

from __future__ import annotations

import re
import shutil
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from indexer.defaults import DEFAULT_COLLECTION
from indexer.errors import IndexNotFoundError, InvalidRequestError
from indexer.generations import CURRENT, writer_lock
from indexer.model.embedder import Embedder
from indexer.model.factory import make_embedder
from indexer.options import SearchOptions
from indexer.service import SearchService

if TYPE_CHECKING:
    from indexer.settings import Settings

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def check_name(name: str) -> str:
    """A collection name is a safe folder name: letters, digits, '_', '-', '.'; at most 64."""
    if not _NAME.fullmatch(name):
        raise InvalidRequestError(
            f"invalid collection name {name!r}",
            "use letters, digits, '_', '-' or '.', starting with a letter or digit",
        )
    return name


class Catalog:
    """The collections under ``root``; every collection's service shares one embedder."""

    def __init__(
        self, root: Path, embedder: Embedder, options: SearchOptions | None = None
    ) -> None:
        self.root = root
        self.embedder = embedder
        self.options = options or SearchOptions()
        self._services: dict[str, SearchService] = {}
        self._lock = threading.Lock()

    def service(self, name: str = DEFAULT_COLLECTION) -> SearchService:
        """The service of one collection (it need not exist yet: indexing creates it)."""
        check_name(name)
        with self._lock:
            if name not in self._services:
                self._services[name] = SearchService(self.root / name, self.embedder, self.options)
            return self._services[name]

    def names(self) -> list[str]:
        """Collections that hold an index, sorted."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / CURRENT).is_file())

    def drop(self, name: str) -> None:
        """Delete a collection: unpublished first (CURRENT goes), then its files."""
        folder = self.root / check_name(name)
        if not (folder / CURRENT).is_file():
            raise IndexNotFoundError(
                f"no collection {name!r} in {self.root}/", "see `findling collections`"
            )
        with writer_lock(folder):
            (folder / CURRENT).unlink()
        shutil.rmtree(folder, ignore_errors=True)
        with self._lock:
            self._services.pop(name, None)


def create_catalog(settings: Settings) -> Catalog:
    """All collections under the settings' index folder, sharing one (lazy) embedder."""
    return Catalog(
        settings.index_dir, make_embedder(settings), SearchOptions.from_settings(settings)
    )


def create_service(settings: Settings) -> SearchService:
    """The service of the settings' collection; the model is not loaded yet."""
    return create_catalog(settings).service(settings.collection)
