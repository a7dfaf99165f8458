"""Collections: several named indexes side by side under one root folder.

index/
  default/   CURRENT, gen-.../   (one collection, see generations.py)
  notes/     CURRENT, gen-.../
"""

from __future__ import annotations

import re
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

from indexer.errors import IndexNotFoundError, InvalidRequestError
from indexer.generations import CURRENT, writer_lock
from indexer.service import SearchService

DEFAULT_COLLECTION = "default"
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

    def __init__(self, root: Path, make_service: Callable[[Path], SearchService]) -> None:
        self.root = root
        self._make_service = make_service
        self._services: dict[str, SearchService] = {}
        self._lock = threading.Lock()

    def service(self, name: str = DEFAULT_COLLECTION) -> SearchService:
        """The service of one collection (it need not exist yet: indexing creates it)."""
        check_name(name)
        with self._lock:
            if name not in self._services:
                self._services[name] = self._make_service(self.root / name)
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
