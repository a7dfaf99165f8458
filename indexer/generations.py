"""A collection's generations on disk, committed atomically; the writer lock; pruning.

Layout of a collection folder::

    index/default/
      CURRENT                    names the live generation manifest (replaced atomically)
      gen-<number>.json          a generation: the segments it is made of (see manifest.py)
      seg-<number>/              an immutable segment (see segment.py)
      del-<segment>-<number>.npy the deleted documents of a segment as of a generation
      .lock                      held by the one writer at a time

A commit writes its new segments and deletion files first (each fsynced, segments renamed into
place from a temporary folder), then the generation manifest, and only then names it in
``CURRENT`` with one atomic rename. A crash at any point leaves ``CURRENT`` naming a complete
generation (or no index at all on the very first run); files a crashed writer left behind are
referenced by no generation and are pruned by the next commit.

A sharded collection (see shards.py) commits the same way: its shards' files first, then the top
manifest, then ``CURRENT``; pruning keeps what the current and previous top manifests need.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

from indexer.errors import (
    IndexCorruptError,
    IndexNotFoundError,
    InvalidRequestError,
)
from indexer.fsutil import atomic_write, fsync_path, write_durably
from indexer.locking import LOCK
from indexer.locking import writer_lock as exclusive
from indexer.manifest import REBUILD_HINT, Manifest, read_manifest
from indexer.shards import SHARD, STAGE, TOP, sharded_view

CURRENT = "CURRENT"
GENERATION = "gen-"
SEGMENT = "seg-"
DELETED = "del-"
TMP = ".tmp-"
# generations whose files stay on disk besides the current one: a reader that resolved CURRENT
# just before a commit still finds its files (and retries if it was slower than that)
KEEP_PREVIOUS = 1


def current_name(index_dir: Path) -> str:
    """The live generation's name, or :class:`IndexNotFoundError`."""
    try:
        name = (index_dir / CURRENT).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise IndexNotFoundError(
            f"no index at {index_dir}/", "run `findling index seeds/` (or your own folder) first"
        ) from None
    if not name.startswith((GENERATION, TOP)):
        raise IndexCorruptError(f"{index_dir / CURRENT} names {name!r}", REBUILD_HINT)
    if (index_dir / name).is_dir():  # format 1 named a generation folder
        raise IndexCorruptError(
            f"the collection at {index_dir}/ was written by an earlier findling (index format "
            "1, one folder per generation); this one reads segments (format 2)",
            REBUILD_HINT,
        )
    return name


def current_manifest(index_dir: Path) -> Manifest:
    """The live generation's manifest; retried while commits move CURRENT underneath."""
    for _ in range(20):
        name = current_name(index_dir)
        try:
            manifest = read_manifest(index_dir / f"{name}.json")
            return sharded_view(index_dir, manifest) if manifest.shards else manifest
        except FileNotFoundError:
            if current_name(index_dir) == name:  # still current, yet gone: really damaged
                raise IndexCorruptError(
                    f"{index_dir / name}.json is missing", REBUILD_HINT
                ) from None
    raise IndexCorruptError(f"{index_dir}/ keeps changing; could not read it", "try again")


def write_manifest(folder: Path, manifest: Manifest) -> None:
    """Write a generation manifest durably (not yet current: see :func:`commit`)."""
    text = json.dumps(manifest.to_json(), ensure_ascii=False, indent=1)
    atomic_write(folder / f"{manifest.generation}.json", lambda tmp: write_durably(tmp, text))


def commit(index_dir: Path, manifest: Manifest) -> None:
    """Make ``manifest`` the live generation; its segments and deletion files (a sharded
    collection's: its shards' generation manifests) must already be durable. The caller holds
    :func:`writer_lock`, and prunes afterwards.

    Ctrl-C is held until the commit is done: it then arrives as :class:`KeyboardInterrupt`
    with ``manifest`` current (see :func:`is_current`), never half-way through the switch.
    """
    with _interrupts_held():
        write_manifest(index_dir, manifest)
        pointer = index_dir / f"{CURRENT}.tmp"
        write_durably(pointer, manifest.generation + "\n")
        os.replace(pointer, index_dir / CURRENT)
        fsync_path(index_dir)


def is_current(index_dir: Path, generation: str) -> bool:
    """Whether ``generation`` is the live one: a writer whose commit raised discards its
    files only if not (they are the collection now)."""
    try:
        return (index_dir / CURRENT).read_text(encoding="utf-8").strip() == generation
    except FileNotFoundError:
        return False


@contextlib.contextmanager
def _interrupts_held() -> Iterator[None]:
    """Defer SIGINT to the end of the block. Python delivers signals to the main thread only,
    so elsewhere (a server's worker threads) there is nothing to hold."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received and callable(previous):
            previous(signal.SIGINT, None)  # Python's default handler raises KeyboardInterrupt
        elif received and previous == signal.SIG_DFL:
            raise KeyboardInterrupt


def referenced(manifest: Manifest) -> set[str]:
    """The names of the files and folders a generation needs (of a sharded collection: its
    top manifest and shard folders; see :func:`referenced_in_shards`)."""
    names = {f"{manifest.generation}.json"}
    names |= {shard.name for shard in manifest.shards}
    for entry in manifest.segments:
        names.add(entry.name)
        if entry.deleted:
            names.add(entry.deleted)
    return names


def referenced_in_shards(index_dir: Path, top: Manifest) -> dict[str, set[str]]:
    """Per shard folder, the names there that the top manifest ``top`` needs."""
    needed: dict[str, set[str]] = {}
    for shard in top.shards:
        manifest = read_manifest(index_dir / shard.name / f"{shard.generation}.json")
        needed.setdefault(shard.name, set()).update(referenced(manifest))
    return needed


def _number(name: str) -> int:
    """The number of a generation or top manifest file (gen-000000000012.json: 12)."""
    digits = name.partition("-")[2].partition(".")[0]
    return int(digits) if digits.isdigit() else -1


def prune(index_dir: Path, staged: bool = False) -> None:
    """Delete what neither the current generation nor the ``KEEP_PREVIOUS`` before it needs:
    older generations, segments merged away, old deletion files, and whatever a crashed writer
    left; in a sharded collection also inside the shards, and shard folders no longer used.
    Segments staged by a distributed run stay for its rerun unless ``staged``. The caller holds
    :func:`writer_lock`."""
    try:
        current = (index_dir / CURRENT).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        current = ""  # no index yet: whatever is here was left by a crashed first run
    keep = {current}  # a format-1 generation folder stays until a commit replaces it
    in_shards: dict[str, set[str]] = {}
    manifests = [*index_dir.glob(f"{GENERATION}*.json"), *index_dir.glob(f"{TOP}*.json")]
    ordered = sorted((p for p in manifests if _number(p.name) >= 0), key=lambda p: _number(p.name))
    live = [p for p in ordered if _number(p.name) <= _number(current)][-(KEEP_PREVIOUS + 1) :]
    for path in live:
        with contextlib.suppress(FileNotFoundError, IndexCorruptError):
            manifest = read_manifest(path)
            keep |= referenced(manifest)
            for shard, names in referenced_in_shards(index_dir, manifest).items():
                in_shards.setdefault(shard, set()).update(names)
    _remove_unneeded(index_dir, keep, (GENERATION, SEGMENT, DELETED, TMP, TOP))
    kinds = (GENERATION, SEGMENT, DELETED, TMP) + ((STAGE,) if staged else ())
    for folder in [p for p in index_dir.glob(f"{SHARD}*") if p.is_dir()]:
        _remove_unneeded(folder, in_shards.get(folder.name, set()), kinds)
        if folder.name not in keep and not any(folder.iterdir()):
            folder.rmdir()


def _remove_unneeded(folder: Path, keep: set[str], kinds: tuple[str, ...]) -> None:
    for path in folder.iterdir():
        if path.name in keep or not path.name.startswith(kinds):
            continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def new_folder(index_dir: Path, name: str) -> Path:
    """A temporary folder to write segment ``name`` into (see :func:`publish`)."""
    folder = index_dir / f"{TMP}{name}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    return folder


def publish(index_dir: Path, tmp: Path, name: str) -> None:
    """Rename a complete, fsynced segment folder into place."""
    os.rename(tmp, index_dir / name)
    fsync_path(index_dir)


def check_is_index_folder(index_dir: Path) -> None:
    """Never write into (and later prune) a folder of the user's that is not an index."""
    if not index_dir.exists():
        return
    if not index_dir.is_dir():
        raise InvalidRequestError(f"{index_dir} is a file, not an index folder")
    ours = (GENERATION, SEGMENT, DELETED, TMP, TOP, SHARD)
    foreign = [
        p.name
        for p in index_dir.iterdir()
        if p.name not in (CURRENT, LOCK, f"{CURRENT}.tmp") and not p.name.startswith(ours)
    ]
    if foreign:
        raise InvalidRequestError(
            f"{index_dir} holds files that are not part of a findling index ({foreign[0]}, ...)",
            "choose an empty or new folder with --index-dir / FINDLING_INDEX_DIR",
        )


@contextlib.contextmanager
def writer_lock(index_dir: Path, wait: float = 0.0) -> Iterator[None]:
    """Hold the one-writer lock of ``index_dir`` (created if missing), waiting up to ``wait``
    seconds for another process to release it; :class:`IndexBusyError` if it does not."""
    check_is_index_folder(index_dir)
    with exclusive(index_dir, wait):
        yield
