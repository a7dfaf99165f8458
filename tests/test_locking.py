"""The writer lock (indexer.locking): exclusive across threads and processes, on any platform."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from indexer.errors import IndexBusyError
from indexer.locking import writer_lock

# holds the lock of argv[1] (through argv[2]: "locking" or the older "generations" module)
# until its standard input closes
HOLDER = """
import sys
from pathlib import Path
if sys.argv[2] == "locking":
    from indexer.locking import writer_lock
else:
    from indexer.generations import writer_lock
with writer_lock(Path(sys.argv[1])):
    print("held", flush=True)
    sys.stdin.read()
"""


@contextmanager
def held_elsewhere(index_dir: Path, module: str = "locking") -> Iterator[subprocess.Popen[str]]:
    """A second process that holds the lock of ``index_dir`` until the block ends."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(index_dir), module],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stdin is not None
    try:
        assert process.stdout.readline().strip() == "held"
        yield process
    finally:
        if process.poll() is None:
            process.stdin.close()
        process.wait(timeout=30)
        process.stdout.close()


def test_a_lock_held_by_another_process_is_refused_at_once(tmp_path: Path) -> None:
    with held_elsewhere(tmp_path / "index"):
        started = time.monotonic()
        with (
            pytest.raises(IndexBusyError, match="another findling process") as caught,
            writer_lock(tmp_path / "index"),
        ):
            pytest.fail("the lock was held elsewhere")
        assert time.monotonic() - started < 1
        assert "wait for it to finish" in caught.value.hint
    with writer_lock(tmp_path / "index"):  # free again once the holder is done
        pass


def test_waiting_gets_the_lock_when_the_other_process_lets_go(tmp_path: Path) -> None:
    with held_elsewhere(tmp_path / "index") as holder:
        assert holder.stdin is not None
        threading.Timer(0.5, holder.stdin.close).start()
        started = time.monotonic()
        with writer_lock(tmp_path / "index", wait=30):
            waited = time.monotonic() - started
    assert 0.3 < waited < 30


def test_waiting_gives_up_after_the_timeout(tmp_path: Path) -> None:
    with held_elsewhere(tmp_path / "index"):
        started = time.monotonic()
        with (
            pytest.raises(IndexBusyError, match=r"waited 0\.5 s"),
            writer_lock(tmp_path / "index", wait=0.5),
        ):
            pass
        assert 0.4 < time.monotonic() - started < 10


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path) -> None:
    with held_elsewhere(tmp_path / "index") as holder:
        holder.kill()
        holder.wait(timeout=30)
        with writer_lock(tmp_path / "index", wait=5):
            pass


@pytest.mark.skipif(sys.platform == "win32", reason="the older lock is fcntl.flock")
def test_old_and_new_lock_exclude_each_other(tmp_path: Path) -> None:
    """findling versions that locked with fcntl by hand and this lock never write at once."""
    import fcntl

    from indexer.generations import writer_lock as collection_lock

    index = tmp_path / "index"
    index.mkdir()
    with (index / ".lock").open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as findling before 0.2 took it
        with pytest.raises(IndexBusyError), collection_lock(index):
            pass
    with held_elsewhere(index, "locking"), pytest.raises(IndexBusyError), collection_lock(index):
        pass


def test_one_holder_at_a_time_within_a_process(tmp_path: Path) -> None:
    with writer_lock(tmp_path / "index"):
        with pytest.raises(IndexBusyError), writer_lock(tmp_path / "index"):
            pass
        outcome: list[str] = []

        def other_thread() -> None:
            try:
                with writer_lock(tmp_path / "index"):
                    outcome.append("acquired")
            except IndexBusyError:
                outcome.append("busy")

        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
        assert outcome == ["busy"]


def test_the_lock_is_released_when_the_block_fails(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), writer_lock(tmp_path / "index"):
        raise RuntimeError("boom")
    with writer_lock(tmp_path / "index"):
        assert (tmp_path / "index" / ".lock").exists()
