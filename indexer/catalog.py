"""Collections: several named indexes side by side under one root folder, and the factories
that build them from the settings.

index/
  default/   CURRENT, gen-.../   (one collection, see generations.py)
  notes/     CURRENT, gen-.../
"""

from __future__ import annotations

import re
import secrets
import shutil
import threading
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING

from indexer.defaults import DEFAULT_COLLECTION
from indexer.documents import use_language_cache
from indexer.errors import IndexNotFoundError, InvalidRequestError
from indexer.generations import CURRENT, writer_lock
from indexer.model.embedder import Embedder
from indexer.model.factory import make_embedder
from indexer.options import SearchOptions
from indexer.service import SearchService

if TYPE_CHECKING:
    from indexer.settings import Settings

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
SERVICES_KEPT = 64  # collections a catalog keeps open at once


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
        # the most recently used services; a server asked for any number of names keeps a few
        self._services: OrderedDict[str, SearchService] = OrderedDict()
        self._lock = threading.Lock()

    def service(self, name: str = DEFAULT_COLLECTION) -> SearchService:
        """The service of one collection (it need not exist yet: indexing creates it)."""
        check_name(name)
        with self._lock:
            if name not in self._services:
                self._services[name] = SearchService(self.root / name, self.embedder, self.options)
                if len(self._services) > SERVICES_KEPT:
                    self._services.popitem(last=False)
            self._services.move_to_end(name)
            return self._services[name]

    def names(self) -> list[str]:
        """Collections that hold an index, sorted."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / CURRENT).is_file())

    def drop(self, name: str) -> None:
        """Delete a collection: under its writer lock it is unpublished (CURRENT goes) and its
        folder moved aside, so no writer can still be writing into it; then the files go."""
        folder = self.root / check_name(name)
        if not (folder / CURRENT).is_file():
            raise IndexNotFoundError(
                f"no collection {name!r} in {self.root}/", "see `findling collections`"
            )
        # a name no collection can have (names start with a letter or digit)
        trash = self.root / f".dropped-{name}-{secrets.token_hex(4)}"
        with writer_lock(folder):
            (folder / CURRENT).unlink()
            folder.rename(trash)
        shutil.rmtree(trash, ignore_errors=True)
        with self._lock:
            self._services.pop(name, None)


def create_catalog(settings: Settings) -> Catalog:
    """All collections under the settings' index folder, sharing one (lazy) embedder."""
    use_language_cache(settings.model_cache_dir)
    return Catalog(
        settings.index_dir, make_embedder(settings), SearchOptions.from_settings(settings)
    )


def create_service(settings: Settings) -> SearchService:
    """The service of the settings' collection; the model is not loaded yet."""
    return create_catalog(settings).service(settings.collection)
