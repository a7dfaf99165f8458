"""`findling index --watch`: changes below the watched folders reach the collection, files being
written are read once complete, and a real process picks up additions, changes and removals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from typer.testing import CliRunner

from indexer import watching
from indexer.cli import app
from indexer.errors import FindlingError
from indexer.service import BuildSummary, SearchService
from indexer.settings import Settings
from indexer.watching import apply, classify, is_watched, wait_until_settled, watch
from tests.helpers import FINDLING

RHEIN = "Der Rhein ist ein Fluss in Europa."
MOSEL = "Die Mosel mündet in Koblenz in den Rhein."


def _texts(service: SearchService, query: str) -> list[str]:
    return [hit.text for hit in service.search(query, k=10, mode="bm25").results]


def _eventually(check: Callable[[], bool], seconds: float = 20) -> None:
    """Wait until ``check()`` holds; the watch reacts in about a second, a loaded CI is slower."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "the change did not arrive in time"
        time.sleep(0.1)


def test_what_is_watched(tmp_path: Path) -> None:
    root, index = tmp_path / "docs", tmp_path / "docs" / "index"
    assert is_watched(root / "a.txt", [root], [index])
    assert is_watched(root / "sub" / "b.md", [root], [index])
    assert is_watched(root / "gone-folder", [root], [index])  # may have held documents
    assert not is_watched(root / ".git" / "HEAD", [root], [index])
    assert not is_watched(root / "sub" / ".a.txt.swp", [root], [index])
    assert not is_watched(index / "default" / "CURRENT", [root], [index])
    assert not is_watched(tmp_path / "elsewhere.txt", [root], [index])


def test_settling_waits_until_a_file_stops_growing(tmp_path: Path) -> None:
    path = tmp_path / "growing.txt"
    path.write_text("", encoding="utf-8")

    def write_slowly() -> None:
        for _ in range(12):
            with path.open("a", encoding="utf-8") as handle:
                handle.write("Noch ein Satz. ")
            time.sleep(0.1)

    writer = threading.Thread(target=write_slowly)
    started = time.monotonic()
    writer.start()
    wait_until_settled([path], quiet=0.3)
    assert time.monotonic() - started >= 1.1
    assert path.read_text(encoding="utf-8").count("Satz") == 12
    writer.join()


def test_a_batch_adds_changes_and_removes_only_what_changed(
    tmp_path: Path, service: SearchService
) -> None:
    root = tmp_path / "docs"
    (root / "sub").mkdir(parents=True)
    (root / "rhein.txt").write_text(RHEIN, encoding="utf-8")
    (root / "keep.md").write_text("Bleibt wie es ist.", encoding="utf-8")
    service.build([root])

    (root / "mosel.txt").write_text(MOSEL, encoding="utf-8")
    (root / "rhein.txt").write_text("Der Rhein ist lang.", encoding="utf-8")
    (root / "notes.csv").write_text("a,b", encoding="utf-8")  # a full run passes it over
    moved_in = root / "sub" / "neu"
    moved_in.mkdir()
    (moved_in / "saar.txt").write_text("Die Saar fließt bei Saarbrücken.", encoding="utf-8")
    changed = [root / "mosel.txt", root / "rhein.txt", root / "notes.csv", moved_in]
    [update] = apply(service, [root], classify(changed), prune=True)
    assert (update.added, update.updated, update.removed, update.unchanged) == (2, 1, 0, 0)

    (root / "mosel.txt").unlink()
    [removal] = apply(service, [root], classify([root / "mosel.txt"]), prune=True)
    assert (removal.removed, removal.documents) == (1, 3)
    assert _texts(service, "Mosel Koblenz") == []
    assert _texts(service, "Rhein lang") == ["Der Rhein ist lang."]

    (root / "keep.md").unlink()
    assert list(apply(service, [root], classify([root / "keep.md"]), prune=False)) == []
    assert service.info().documents == 3  # --no-prune keeps documents of gone files


@contextmanager
def watch_in_thread(service: SearchService, root: Path) -> Iterator[list[BuildSummary]]:
    """``watch`` in a thread until the block ends; yields the updates it reports."""
    updates: list[BuildSummary] = []
    errors: list[FindlingError] = []
    stop = threading.Event()
    ready = threading.Event()

    def catch_up() -> None:
        updates.append(service.build([root]))
        ready.set()

    thread = threading.Thread(
        target=watch,
        args=(service, [root]),
        kwargs={
            "on_update": updates.append,
            "on_error": errors.append,
            "catch_up": catch_up,
            "stop": stop,
            "ignore": [service.index_dir],
        },
    )
    thread.start()
    try:
        assert ready.wait(30), "the watch did not start"
        yield updates
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive() and errors == []


def test_a_watch_follows_additions_changes_and_removals(
    tmp_path: Path, service: SearchService
) -> None:
    root = tmp_path / "docs"
    root.mkdir()
    (root / "rhein.txt").write_text(RHEIN, encoding="utf-8")
    with watch_in_thread(service, root) as updates:
        assert _texts(service, "Rhein Fluss") == [RHEIN]
        (root / "mosel.txt").write_text(MOSEL, encoding="utf-8")
        _eventually(lambda: _texts(service, "Mosel Koblenz") == [MOSEL])
        (root / "mosel.txt").write_text("Die Mosel ist 544 km lang.", encoding="utf-8")
        _eventually(lambda: _texts(service, "Mosel lang") == ["Die Mosel ist 544 km lang."])
        (root / "rhein.txt").unlink()
        _eventually(lambda: _texts(service, "Rhein Fluss") == [])
    assert [(u.added, u.updated, u.removed) for u in updates[1:]] == [
        (1, 0, 0),
        (0, 1, 0),
        (0, 0, 1),
    ]


@pytest.mark.slow
def test_a_file_being_written_is_read_once_it_is_complete(
    tmp_path: Path, service: SearchService
) -> None:
    """Written for longer than the watch groups changes (2 s): still read once, whole."""
    root = tmp_path / "docs"
    root.mkdir()
    (root / "rhein.txt").write_text(RHEIN, encoding="utf-8")
    with watch_in_thread(service, root) as updates:
        path = root / "long.txt"
        with path.open("w", encoding="utf-8") as handle:
            for i in range(16):
                handle.write(f"Satz Nummer {i} über die Mosel. ")
                handle.flush()
                time.sleep(0.2)
        _eventually(lambda: len(updates) >= 2)
        time.sleep(2)  # a second update (the rest of a half-read file) would arrive by now
    assert [(u.added, u.updated) for u in updates[1:]] == [(1, 0)]
    assert len(service.search("Mosel Satz Nummer", k=100, mode="bm25").results) == 1
    assert service.info().passages == 17


def _search(env: dict[str, str], query: str) -> list[str]:
    done = subprocess.run(
        [str(FINDLING), "search", query, "--mode", "bm25", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return [r["text"] for r in json.loads(done.stdout)["results"]]


@pytest.mark.slow
def test_a_watching_process_makes_each_change_searchable_within_seconds(tmp_path: Path) -> None:
    root = tmp_path / "docs"
    root.mkdir()
    (root / "rhein.txt").write_text(RHEIN, encoding="utf-8")
    env = {**os.environ, "FINDLING_MODEL": "hashing", "FINDLING_INDEX_DIR": str(tmp_path / "ix")}
    process = subprocess.Popen(
        [str(FINDLING), "index", str(root), "--watch", "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stderr is not None
    try:
        assert json.loads(process.stdout.readline())["added"] == 1  # the catch-up run
        assert "watching" in process.stderr.readline()
        latencies = []
        for change, query, expected in [
            (lambda: (root / "mosel.txt").write_text(MOSEL, encoding="utf-8"), "Mosel", [MOSEL]),
            (
                lambda: (root / "mosel.txt").write_text("Die Mosel ist lang.", encoding="utf-8"),
                "Mosel lang",
                ["Die Mosel ist lang."],
            ),
            (lambda: (root / "rhein.txt").unlink(), "Rhein Fluss Europa", []),
        ]:
            started = time.monotonic()
            change()
            json.loads(process.stdout.readline())  # the update's summary
            _eventually(lambda q=query, e=expected: _search(env, q) == e, seconds=10)  # type: ignore[misc]
            latencies.append(time.monotonic() - started)
        assert max(latencies) < 10, latencies
        process.send_signal(signal.SIGINT)  # Ctrl-C
        assert process.wait(timeout=30) == 0
        assert "stopped watching" in process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
        process.stderr.close()


@pytest.mark.parametrize("empty", [False, True])
def test_cli_watch_catches_up_first_and_stops_cleanly_on_ctrl_c(
    hashing_env: Settings, corpus: Path, monkeypatch: pytest.MonkeyPatch, empty: bool
) -> None:
    def until_ctrl_c(*args: object, catch_up: Callable[[], None], **kwargs: object) -> None:
        catch_up()
        raise KeyboardInterrupt

    monkeypatch.setattr(watching, "watch", until_ctrl_c)
    folder = corpus.parent / "empty" if empty else corpus
    folder.mkdir(exist_ok=True)
    result = CliRunner().invoke(app, ["index", str(folder), "--watch", "--json"])
    assert result.exit_code == 0, result.output
    if empty:  # nothing to index yet is no error: the watch waits for files
        assert result.stdout == "" and "no readable documents" in result.stderr
    else:
        assert json.loads(result.stdout)["added"] == 2  # one line per update
    assert "watching" in result.stderr and "stopped watching" in result.stderr
