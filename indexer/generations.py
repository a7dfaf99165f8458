"""Index generations on disk, committed atomically.

Layout of an index folder::

    index/
      CURRENT              name of the live generation (replaced atomically)
      gen-<time>-<rand>/   one complete, immutable generation (manifest.json + data files)
      .lock                held by the one writer at a time

A generation is written into a hidden temporary folder, fsynced, renamed into place, and only
then named in ``CURRENT`` by ``os.replace``. A crash at any point leaves ``CURRENT`` naming a
complete generation (or no index at all on the very first run), never a half-written one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from indexer.errors import (
    IndexBusyError,
    IndexCorruptError,
    IndexNotFoundError,
    InvalidRequestError,
)
from indexer.fsutil import fsync_path, write_durably

CURRENT = "CURRENT"
PREFIX = "gen-"
TMP_PREFIX = ".tmp-"
LOCK = ".lock"
KEEP_PREVIOUS = 1  # readers that resolved CURRENT just before a swap still find their files


def current_generation(index_dir: Path) -> Path:
    """The folder of the live generation, or :class:`IndexNotFoundError`."""
    pointer = index_dir / CURRENT
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise IndexNotFoundError(
            f"no index at {index_dir}/", "run `findling index seeds/` (or your own folder) first"
        ) from None
    folder = index_dir / name
    if not name.startswith(PREFIX) or not folder.is_dir():
        raise IndexCorruptError(
            f"{pointer} names {name!r}, which is not a generation folder",
            "rebuild with `findling index`",
        )
    return folder


def write_generation(index_dir: Path, write: Callable[[Path, str], None]) -> Path:
    """Take the writer lock, then :func:`commit_generation`."""
    with writer_lock(index_dir):
        return commit_generation(index_dir, write)


def commit_generation(index_dir: Path, write: Callable[[Path, str], None]) -> Path:
    """Create a new generation with ``write(folder, name)`` and make it current atomically.

    The caller holds :func:`writer_lock`, for as long as it reads the generation it builds on.
    """
    _remove_leftovers(index_dir)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    name = f"{PREFIX}{stamp}-{secrets.token_hex(3)}"
    tmp = index_dir / f"{TMP_PREFIX}{name}"
    tmp.mkdir()
    try:
        write(tmp, name)
        # deepest first, so every file and folder entry is durable before the rename
        for path in sorted(tmp.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            fsync_path(path)
        fsync_path(tmp)
        final = index_dir / name
        os.rename(tmp, final)
        _point_current(index_dir, name)
    except BaseException:
        # Ctrl-C included: the old generation stays current, the partial one goes
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _prune(index_dir, keep=name)
    return final


def _check_is_index_folder(index_dir: Path) -> None:
    # never write into (and later prune) a folder of the user's that is not an index
    if not index_dir.exists():
        return
    if not index_dir.is_dir():
        raise InvalidRequestError(f"{index_dir} is a file, not an index folder")
    foreign = [
        p.name
        for p in index_dir.iterdir()
        if p.name not in (CURRENT, LOCK, f"{CURRENT}.tmp")
        and not p.name.startswith((PREFIX, TMP_PREFIX))
    ]
    if foreign:
        raise InvalidRequestError(
            f"{index_dir} holds files that are not part of a findling index ({foreign[0]}, ...)",
            "choose an empty or new folder with --index-dir / FINDLING_INDEX_DIR",
        )


@contextlib.contextmanager
def writer_lock(index_dir: Path) -> Iterator[None]:
    """Hold the one-writer lock of ``index_dir`` (created if missing), or fail clearly."""
    _check_is_index_folder(index_dir)
    index_dir.mkdir(parents=True, exist_ok=True)
    with (index_dir / LOCK).open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise IndexBusyError(
                f"another findling process is writing the index at {index_dir}/",
                "wait for it to finish, then run the command again",
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _point_current(index_dir: Path, name: str) -> None:
    tmp = index_dir / f"{CURRENT}.tmp"
    write_durably(tmp, name + "\n")
    os.replace(tmp, index_dir / CURRENT)
    fsync_path(index_dir)


def _remove_leftovers(index_dir: Path) -> None:
    # safe under the writer lock: a temporary folder belongs to a writer that died
    for path in index_dir.glob(f"{TMP_PREFIX}*"):
        shutil.rmtree(path, ignore_errors=True)


def _prune(index_dir: Path, keep: str) -> None:
    generations = sorted(p for p in index_dir.glob(f"{PREFIX}*") if p.name != keep)
    for old in generations[: max(0, len(generations) - KEEP_PREVIOUS)]:
        shutil.rmtree(old, ignore_errors=True)
