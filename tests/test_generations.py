"""Atomic generation commits: a failed or concurrent write never breaks the live index."""

from __future__ import annotations

import fcntl
from pathlib import Path

import pytest

from indexer.errors import (
    IndexBusyError,
    IndexCorruptError,
    IndexNotFoundError,
    InvalidRequestError,
)
from indexer.generations import CURRENT, current_generation, write_generation


def _write(text: str):  # type: ignore[no-untyped-def]
    def write(folder: Path, name: str) -> None:
        (folder / "data.txt").write_text(text, encoding="utf-8")

    return write


def test_no_index_yet(tmp_path: Path) -> None:
    with pytest.raises(IndexNotFoundError, match="findling index"):
        current_generation(tmp_path / "index")


def test_commit_makes_the_new_generation_current(tmp_path: Path) -> None:
    index = tmp_path / "index"
    first = write_generation(index, _write("one"))
    assert current_generation(index) == first
    second = write_generation(index, _write("two"))
    assert current_generation(index) == second
    assert (second / "data.txt").read_text(encoding="utf-8") == "two"


def test_failure_mid_write_keeps_the_old_generation(tmp_path: Path) -> None:
    index = tmp_path / "index"
    first = write_generation(index, _write("one"))

    def crash(folder: Path, name: str) -> None:
        (folder / "data.txt").write_text("half", encoding="utf-8")
        raise KeyboardInterrupt  # as Ctrl-C would

    with pytest.raises(KeyboardInterrupt):
        write_generation(index, crash)
    assert current_generation(index) == first
    assert (first / "data.txt").read_text(encoding="utf-8") == "one"
    assert not list(index.glob(".tmp-*"))


def test_leftovers_of_a_killed_writer_are_removed(tmp_path: Path) -> None:
    index = tmp_path / "index"
    write_generation(index, _write("one"))
    (index / ".tmp-gen-dead").mkdir()
    write_generation(index, _write("two"))
    assert not (index / ".tmp-gen-dead").exists()


def test_old_generations_are_pruned_keeping_one_previous(tmp_path: Path) -> None:
    index = tmp_path / "index"
    generations = [write_generation(index, _write(str(i))) for i in range(4)]
    remaining = sorted(p.name for p in index.glob("gen-*"))
    assert remaining == sorted(p.name for p in generations[-2:])


def test_refuses_a_folder_that_is_not_an_index(tmp_path: Path) -> None:
    folder = tmp_path / "my-documents"
    folder.mkdir()
    (folder / "thesis.txt").write_text("precious", encoding="utf-8")
    with pytest.raises(InvalidRequestError, match="not part of a findling index"):
        write_generation(folder, _write("x"))
    assert (folder / "thesis.txt").read_text(encoding="utf-8") == "precious"


def test_second_writer_gets_a_clear_error(tmp_path: Path) -> None:
    index = tmp_path / "index"
    write_generation(index, _write("one"))
    with (index / ".lock").open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(IndexBusyError, match="another findling process"):
            write_generation(index, _write("two"))


def test_pointer_to_a_missing_generation_is_reported(tmp_path: Path) -> None:
    index = tmp_path / "index"
    index.mkdir()
    (index / CURRENT).write_text("gen-gone\n", encoding="utf-8")
    with pytest.raises(IndexCorruptError, match="not a generation folder"):
        current_generation(index)
