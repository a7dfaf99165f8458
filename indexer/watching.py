"""Keeping a collection up to date while files below some folders appear, change and disappear.

The operating system reports changes (through `watchfiles <https://watchfiles.helpmanual.io>`_:
inotify, FSEvents, ReadDirectoryChangesW); changes that arrive together are handled as one
batch. Before a batch is read, its files must keep their size and modification time for a
moment, so a file that is still being written is read once it is complete, not half-way.

A batch costs what it changes: changed files are read again through
:meth:`SearchService.build` (unchanged content costs no embedding), and documents of files that
are gone are removed through :meth:`SearchService.remove`. Which files count is decided by the
same rules as a full run (:func:`indexer.documents.discover_files`).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from indexer.documents import discover_files
from indexer.errors import FindlingError, IndexBusyError, IndexNotFoundError, SourceNotFoundError

if TYPE_CHECKING:
    from indexer.service import BuildSummary, SearchService

# Changes are grouped until none has come for QUIET_MS (an editor's save is several events),
# and for at most GROUP_MS; then every file of the batch must keep its size and modification time
# for SETTLE_SECONDS (checked for at most SETTLE_LIMIT_SECONDS, after which it is read anyway:
# a file still growing then will change again and be read again).
QUIET_MS = 300
GROUP_MS = 2000
SETTLE_SECONDS = 0.5
SETTLE_LIMIT_SECONDS = 60.0
BUSY_RETRY_SECONDS = 1.0  # another writer holds the collection: try the batch again after this


@dataclass(frozen=True)
class Batch:
    """What changed below the watched paths: ``present`` paths exist, ``gone`` ones do not."""

    present: list[Path]
    gone: list[Path]


def watch(
    service: SearchService,
    paths: Sequence[Path],
    *,
    prune: bool = True,
    on_update: Callable[[BuildSummary], None],
    on_error: Callable[[FindlingError], None],
    catch_up: Callable[[], object] | None = None,
    ignore: Sequence[Path] = (),
    stop: threading.Event | None = None,
) -> None:
    """Keep the collection of ``service`` up to date with ``paths`` until ``stop`` is set.

    Once the watch is running, ``catch_up()`` brings the collection up to date with everything
    (by default a full :meth:`SearchService.build`), so no change between an earlier run and
    the watch is missed. Then each batch of changes is applied; every update that changed the
    collection goes to ``on_update``, and a batch that fails to ``on_error`` (the watch goes on).
    ``prune=False`` keeps the documents of files that are gone. Paths below ``ignore`` (the
    index folder) are not watched. Ctrl-C raises :class:`KeyboardInterrupt` in the caller.
    """
    import watchfiles

    # events may name a path as given or as resolved (macOS reports /private/tmp for /tmp)
    roots = [form for p in paths for form in (Path(os.path.abspath(p)), p.resolve())]
    ignored = [form for p in ignore for form in (Path(os.path.abspath(p)), p.resolve())]

    def relevant(change: watchfiles.Change, path: str) -> bool:
        return is_watched(Path(path), roots, ignored)

    def build_all() -> None:
        # no documents yet is no error here: the first file that appears starts the collection
        with contextlib.suppress(SourceNotFoundError):
            on_update(service.build(paths, prune=prune))

    changes = watchfiles.watch(
        *paths,
        watch_filter=relevant,
        debounce=GROUP_MS,
        step=QUIET_MS,
        stop_event=stop,
        rust_timeout=1000,  # also lets Ctrl-C through on Windows
        yield_on_timeout=True,  # the first (empty) batch says the watch is running
    )
    caught_up = False
    for raw in changes:
        if not caught_up:
            caught_up = True
            (catch_up or build_all)()
        if raw:
            batch = classify({Path(path) for _, path in raw})
            _apply_until_done(service, paths, batch, prune, on_update, on_error, stop)


def is_watched(path: Path, roots: Sequence[Path], ignored: Sequence[Path]) -> bool:
    """Whether a change at ``path`` can matter: below a root, not hidden, not in ``ignored``."""
    absolute = Path(os.path.abspath(path))
    if any(absolute.is_relative_to(i) for i in ignored):
        return False
    for root in roots:
        if absolute.is_relative_to(root):
            # hidden files and folders are passed over by a full run too (.git, editor swaps)
            return not any(part.startswith(".") for part in absolute.relative_to(root).parts)
    return False


def classify(paths: Iterable[Path]) -> Batch:
    """Split changed paths into those that exist now and those that are gone."""
    present: list[Path] = []
    gone: list[Path] = []
    for path in sorted(set(paths)):
        (present if path.exists() else gone).append(path)
    return Batch(present, gone)


def wait_until_settled(
    paths: Sequence[Path],
    quiet: float = SETTLE_SECONDS,
    limit: float = SETTLE_LIMIT_SECONDS,
) -> None:
    """Return once no file among ``paths`` has changed size or modification time for ``quiet``
    seconds (or after ``limit`` seconds)."""
    deadline = time.monotonic() + limit
    before = _stats(paths)
    while True:
        time.sleep(quiet)
        now = _stats(paths)
        if now == before or time.monotonic() > deadline:
            return
        before = now


def _stats(paths: Sequence[Path]) -> list[tuple[int, int] | None]:
    stats: list[tuple[int, int] | None] = []
    for path in paths:
        try:
            stat = path.stat()
            stats.append((stat.st_size, stat.st_mtime_ns))
        except OSError:
            stats.append(None)
    return stats


def _apply_until_done(
    service: SearchService,
    roots: Sequence[Path],
    batch: Batch,
    prune: bool,
    on_update: Callable[[BuildSummary], None],
    on_error: Callable[[FindlingError], None],
    stop: threading.Event | None,
) -> None:
    wait_until_settled(batch.present)
    while True:
        try:
            for summary in apply(service, roots, batch, prune):
                on_update(summary)
            return
        except IndexBusyError:
            if stop is not None and stop.is_set():
                return
            time.sleep(BUSY_RETRY_SECONDS)  # another writer is at work; it will finish
        except FindlingError as exc:
            on_error(exc)
            return


def apply(
    service: SearchService, roots: Sequence[Path], batch: Batch, prune: bool
) -> Iterator[BuildSummary]:
    """Update the collection with one batch; yields each update that changed something."""
    files = list(_files_below(roots, batch.present))
    if files:
        summary = service.build(files, prune=prune)
        if summary.added or summary.updated or summary.removed or summary.skipped:
            yield summary
    if batch.gone and prune:
        try:
            summary = service.remove(batch.gone)
        except IndexNotFoundError:
            return  # nothing was indexed yet, so nothing can be gone
        if summary.removed:
            yield summary


def _files_below(roots: Sequence[Path], changed: Sequence[Path]) -> Iterator[Path]:
    """The files a full run over ``roots`` would read that are, or lie below, a changed path."""
    if not changed:
        return
    targets = [path.resolve() for path in changed]
    for item in discover_files(roots):  # only names and links are looked at, no file is read
        if isinstance(item, Path):
            real = item.resolve()
            if any(real == t or real.is_relative_to(t) for t in targets):
                yield item
