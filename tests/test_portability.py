"""What keeps the package importable and working on Windows and macOS, not only on Linux."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

from indexer import fsutil
from tests.helpers import ROOT

POSIX_ONLY = {"fcntl", "resource", "termios", "pwd", "grp", "posix", "tty", "pty"}
NOT_YET_PORTABLE: set[str] = set()


def _posix_imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found & POSIX_ONLY


def test_the_package_imports_no_posix_only_module() -> None:
    offenders = {
        path.relative_to(ROOT).as_posix(): sorted(_posix_imports(path))
        for package in ("indexer", "api")
        for path in (ROOT / package).rglob("*.py")
        if _posix_imports(path)
    }
    assert set(offenders) <= NOT_YET_PORTABLE, offenders


def test_folders_are_not_opened_where_the_os_cannot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On Windows os.open refuses a folder; committing a generation must not need it."""
    from indexer.documents import make_document
    from indexer.model.embedder import HashingEmbedder
    from indexer.service import SearchService

    original = os.open

    def windows_open(path: str | os.PathLike[str], flags: int, *args: int) -> int:
        if Path(path).is_dir():
            raise PermissionError(13, "Permission denied", str(path))
        return original(path, flags, *args)

    monkeypatch.setattr(fsutil, "FOLDERS_OPEN", False)
    monkeypatch.setattr(os, "open", windows_open)

    service = SearchService(tmp_path / "index", HashingEmbedder(64))
    service.upsert([make_document("a", "Ein Satz. Noch einer.", language="de")])
    service.upsert([make_document("b", "A sentence.", language="en")])
    assert service.info().documents == 2
