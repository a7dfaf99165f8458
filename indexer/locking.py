"""The one-writer lock of an index folder, on every platform.

The lock is ``index_dir/.lock``, held through `filelock <https://py-filelock.readthedocs.io>`_:
``fcntl.flock`` on Linux and macOS (the same lock earlier findling versions took by hand, so old
and new writers still exclude each other) and ``msvcrt.locking`` on Windows. The operating system
drops the lock when its holder exits, even by ``kill -9``, so a crash never leaves a stale lock.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from indexer.errors import IndexBusyError

LOCK = ".lock"


@contextlib.contextmanager
def writer_lock(index_dir: Path, wait: float = 0.0) -> Iterator[None]:
    """Hold the exclusive writer lock of ``index_dir`` (created if missing) while the block runs.

    With ``wait=0`` (the default) a lock held elsewhere fails at once; otherwise it is retried
    for up to ``wait`` seconds. Either way :class:`IndexBusyError` says another process writes.
    The lock excludes other processes and other lock holders in this process alike.
    """
    from filelock import FileLock, Timeout  # on use: its import takes about 50 ms

    index_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(index_dir / LOCK)
    try:
        lock.acquire(timeout=max(wait, 0.0))
    except Timeout:
        waited = f" (waited {wait:g} s)" if wait > 0 else ""
        raise IndexBusyError(
            f"another findling process is writing the index at {index_dir}/{waited}",
            "wait for it to finish, then run the command again",
        ) from None
    try:
        yield
    finally:
        lock.release()
