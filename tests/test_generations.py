"""Atomic generation commits and pruning: a failed or concurrent write never breaks the index."""

from __future__ import annotations

import fcntl
import os
import signal
import time
from pathlib import Path

import pytest

from indexer import generations
from indexer.errors import (
    IndexBusyError,
    IndexCorruptError,
    IndexNotFoundError,
    InvalidRequestError,
)
from indexer.generations import (
    CURRENT,
    commit,
    current_manifest,
    current_name,
    prune,
    writer_lock,
)
from indexer.manifest import Manifest, SegmentEntry, generation_name
from indexer.model.embedder import HashingEmbedder
from indexer.service import SearchService


def _manifest(number: int, *segments: str, deleted: str | None = None) -> Manifest:
    entries = [SegmentEntry(name, 10, 2, "flat") for name in segments]
    if deleted:
        entries[-1] = SegmentEntry(segments[-1], 10, 2, "flat", deleted, 1, 5)
    return Manifest(
        model="m",
        dimension=4,
        generation=generation_name(number),
        number=number,
        created_at="",
        splitter="",
        findling_version="",
        next_id=0,
        next_segment=1,
        segments=entries,
    )


def _commit(index: Path, manifest: Manifest) -> None:
    index.mkdir(parents=True, exist_ok=True)
    for entry in manifest.segments:
        (index / entry.name).mkdir(exist_ok=True)
        if entry.deleted:
            (index / entry.deleted).write_bytes(b"")
    with writer_lock(index):
        commit(index, manifest)
        prune(index)


def test_no_index_yet(tmp_path: Path) -> None:
    with pytest.raises(IndexNotFoundError, match="findling index"):
        current_name(tmp_path / "index")


def test_commit_makes_the_new_generation_current(tmp_path: Path) -> None:
    index = tmp_path / "index"
    _commit(index, _manifest(1, "seg-1"))
    assert current_manifest(index).segments[0].name == "seg-1"
    _commit(index, _manifest(2, "seg-1", "seg-2"))
    assert [s.name for s in current_manifest(index).segments] == ["seg-1", "seg-2"]
    assert current_name(index) == "gen-000000000002"


def test_prune_keeps_what_the_current_and_previous_generation_need(tmp_path: Path) -> None:
    index = tmp_path / "index"
    _commit(index, _manifest(1, "seg-1"))
    _commit(index, _manifest(2, "seg-1", "seg-2", deleted="del-seg-2-2.npy"))
    _commit(index, _manifest(3, "seg-3"))  # seg-1 and seg-2 merged into seg-3
    names = sorted(p.name for p in index.iterdir() if p.name != ".lock")
    assert names == [
        CURRENT,
        "del-seg-2-2.npy",
        "gen-000000000002.json",
        "gen-000000000003.json",
        "seg-1",
        "seg-2",
        "seg-3",
    ]
    _commit(index, _manifest(4, "seg-3", "seg-4"))
    names = sorted(p.name for p in index.iterdir() if p.name != ".lock")
    assert names == [CURRENT, "gen-000000000003.json", "gen-000000000004.json", "seg-3", "seg-4"]


def test_what_a_killed_writer_left_is_pruned_and_the_live_generation_kept(tmp_path: Path) -> None:
    index = tmp_path / "index"
    _commit(index, _manifest(1, "seg-1"))
    _commit(index, _manifest(2, "seg-1", "seg-2"))
    # a writer killed after writing its segment and manifest, before swapping CURRENT
    (index / "seg-3").mkdir()
    (index / "gen-000000000003.json").write_text("{}", encoding="utf-8")
    (index / ".tmp-seg-4").mkdir()
    _commit(index, _manifest(3, "seg-1", "seg-2", "seg-5"))
    assert not (index / "seg-3").exists() and not (index / ".tmp-seg-4").exists()
    assert (index / "seg-1").exists() and (index / "seg-2").exists()
    assert [s.name for s in current_manifest(index).segments] == ["seg-1", "seg-2", "seg-5"]


def test_refuses_a_folder_that_is_not_an_index(tmp_path: Path) -> None:
    folder = tmp_path / "my-documents"
    folder.mkdir()
    (folder / "thesis.txt").write_text("precious", encoding="utf-8")
    with pytest.raises(InvalidRequestError, match="not part of a findling index"):
        _commit(folder, _manifest(1, "seg-1"))
    assert (folder / "thesis.txt").read_text(encoding="utf-8") == "precious"


def test_second_writer_gets_a_clear_error_after_waiting(tmp_path: Path) -> None:
    index = tmp_path / "index"
    _commit(index, _manifest(1, "seg-1"))
    with (index / ".lock").open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(IndexBusyError, match="another findling process"):
            _commit(index, _manifest(2, "seg-1"))
        started = time.monotonic()
        with pytest.raises(IndexBusyError), writer_lock(index, wait=0.3):
            pass
        assert time.monotonic() - started >= 0.3


def test_a_format_1_collection_says_how_to_rebuild(tmp_path: Path) -> None:
    index = tmp_path / "index"
    (index / "gen-20240101T000000000000Z-abc123").mkdir(parents=True)
    (index / CURRENT).write_text("gen-20240101T000000000000Z-abc123\n", encoding="utf-8")
    with pytest.raises(IndexCorruptError, match="earlier findling") as caught:
        current_manifest(index)
    assert "--rebuild" in caught.value.hint


def test_pointer_to_a_missing_generation_is_reported(tmp_path: Path) -> None:
    index = tmp_path / "index"
    index.mkdir()
    (index / CURRENT).write_text("gen-000000000007\n", encoding="utf-8")
    with pytest.raises(IndexCorruptError, match="missing"):
        current_manifest(index)


def test_ctrl_c_right_after_the_switch_keeps_the_committed_generation(
    tmp_path: Path, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real SIGINT between the rename of CURRENT and the end of the commit: the writer must
    not remove its files then, they are the live collection (it used to, and broke it)."""
    index = tmp_path / "index"
    service = SearchService(index, HashingEmbedder(256))
    service.build([corpus])
    before = current_name(index)
    (corpus / "more.txt").write_text("Die Elbe fließt durch Hamburg.", encoding="utf-8")
    real_fsync = generations.fsync_path
    sent: list[bool] = []

    def fsync_then_ctrl_c(path: Path) -> None:
        real_fsync(path)
        if path == index and current_name(index) != before and not sent:
            sent.append(True)
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.2)  # a signal that is not held arrives here

    monkeypatch.setattr(generations, "fsync_path", fsync_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        service.build([corpus])
    assert sent and current_name(index) != before
    assert service.verify() == []
    assert service.info().documents == 3
    assert service.search("Elbe Hamburg", k=1).results[0].text == "Die Elbe fließt durch Hamburg."


def test_ctrl_c_before_the_switch_leaves_nothing_behind(
    tmp_path: Path, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = tmp_path / "index"
    service = SearchService(index, HashingEmbedder(256))
    service.build([corpus])
    before, files = current_name(index), sorted(p.name for p in index.iterdir())
    (corpus / "more.txt").write_text("Die Elbe fließt durch Hamburg.", encoding="utf-8")

    def ctrl_c(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(generations, "write_manifest", ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        service.build([corpus])
    assert current_name(index) == before
    assert sorted(p.name for p in index.iterdir()) == files
    assert service.verify() == [] and service.info().documents == 2
