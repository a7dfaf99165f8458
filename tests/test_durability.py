"""Crash safety and readers during writes, with real processes (slow tier).

The hashing embedder keeps these fast; what they test is the on-disk commit protocol and the
server's switch between generations, which do not depend on the model.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from indexer.generations import current_name
from indexer.model.embedder import HashingEmbedder
from indexer.service import SearchService
from tests.helpers import running_server, stored

pytestmark = pytest.mark.slow

FINDLING = str(Path(sys.executable).with_name("findling"))
KNOWN = "Der Leuchtturm steht seit 1815 in Kiel."


def _write_corpus(folder: Path, version: str, files: int = 150) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "known.txt").write_text(f"{KNOWN} Stand {version}.", encoding="utf-8")
    for i in range(files):
        _write_corpus_file(folder / f"doc{i:03d}.txt", version)


def _write_corpus_file(file: Path, version: str) -> None:
    i = int(file.stem[3:])
    sentences = " ".join(
        f"Absatz {i} Satz {j} der Fassung {version} erzählt von Ort {i * j}." for j in range(12)
    )
    file.write_text(sentences, encoding="utf-8")


def _env(index_root: Path) -> dict[str, str]:
    return {**os.environ, "FINDLING_MODEL": "hashing", "FINDLING_INDEX_DIR": str(index_root)}


def _versions(index_dir: Path) -> set[str]:
    """The corpus versions the current generation holds (a torn commit would show two)."""
    service = SearchService(index_dir, HashingEmbedder(256))
    assert service.verify() == []  # every file as written
    texts = {s.sentence.text for s in stored(index_dir) if "Fassung" in s.sentence.text}
    return {text.rsplit("Fassung ", 1)[-1][0] for text in texts}


def test_sigkill_at_random_points_never_breaks_the_collection(tmp_path: Path) -> None:
    corpus, index_root = tmp_path / "corpus", tmp_path / "index"
    index_dir = index_root / "default"
    _write_corpus(corpus, "A")
    subprocess.run([FINDLING, "index", str(corpus)], env=_env(index_root), check=True)
    started = time.perf_counter()
    _write_corpus(corpus, "B")
    subprocess.run([FINDLING, "index", str(corpus)], env=_env(index_root), check=True)
    full_run = time.perf_counter() - started
    rng = random.Random(20261128)
    outcomes = []
    for run in range(24):
        version = "AB"[run % 2]
        _write_corpus(corpus, version)
        before = current_name(index_dir)
        process = subprocess.Popen(
            [FINDLING, "index", str(corpus)],
            env=_env(index_root),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.0, full_run * 1.1))
        process.send_signal(signal.SIGKILL)
        process.wait()
        after = current_name(index_dir)
        versions = _versions(index_dir)
        assert len(versions) == 1, f"run {run}: a generation mixes versions {versions}"
        assert (after == before) or versions == {version}
        service = SearchService(index_dir, HashingEmbedder(256))
        top = service.search("Leuchtturm Kiel 1815", k=1).results[0]
        assert top.text == KNOWN
        outcomes.append("old" if after == before else "new")
        # leftovers are cleaned up by the next commit: at most this run's own remain
        assert len(list(index_dir.glob("gen-*.json"))) <= 3
        assert len(list(index_dir.glob(".tmp-*"))) <= 1
    print(
        f"\n24 SIGKILLed index runs: {outcomes.count('old')} kept the old generation, "
        f"{outcomes.count('new')} had committed the new one; 0 failures"
    )
    assert "old" in outcomes  # some kills really landed mid-run


def _segments(index_dir: Path) -> int:
    return len(SearchService(index_dir, HashingEmbedder(256)).info().segments)


def test_sigkill_during_merges_never_breaks_the_collection(tmp_path: Path) -> None:
    """20 runs: the collection is split into segments by single-file updates, then `findling
    optimize` (which merges them all) is killed at a random moment."""
    corpus, index_root = tmp_path / "corpus", tmp_path / "index"
    index_dir = index_root / "default"
    _write_corpus(corpus, "A", files=40)
    subprocess.run([FINDLING, "index", str(corpus)], env=_env(index_root), check=True)
    rng = random.Random(20261203)
    files = sorted(corpus.glob("doc*.txt"))
    outcomes: list[str] = []
    durations: list[float] = []
    for run in range(20):
        version = "BCDEFGHIJKLMNOPQRSTUV"[run]  # every run changes the files it picks
        # each a commit of its own: a segment and a deletion (the tenth small segment of a
        # tier is merged right away, so add until there is more than one)
        for file in rng.sample(files, 6):
            _write_corpus_file(file, version)
            subprocess.run([FINDLING, "add", str(file)], env=_env(index_root), check=True)
            if _segments(index_dir) > 2:
                break
        assert _segments(index_dir) > 2, f"run {run}: {_segments(index_dir)} segment(s)"
        expected = _texts(index_dir)
        before = current_name(index_dir)
        started = time.perf_counter()
        process = subprocess.Popen(
            [FINDLING, "optimize"],
            env=_env(index_root),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.0, max(durations, default=3.0) * 1.1))
        process.send_signal(signal.SIGKILL)
        if process.wait() == 0:
            durations.append(time.perf_counter() - started)
        after = current_name(index_dir)
        # nothing lost, nothing twice, every file as written, and still searchable
        assert _texts(index_dir) == expected, f"run {run}: the sentences changed"
        assert SearchService(index_dir, HashingEmbedder(256)).verify() == []
        top = SearchService(index_dir, HashingEmbedder(256)).search("Leuchtturm Kiel 1815", k=1)
        assert top.results[0].text == KNOWN
        outcomes.append("old" if after == before else "merged")
    print(
        f"\n20 SIGKILLed merges: {outcomes.count('old')} kept the old generation, "
        f"{outcomes.count('merged')} had committed the merge; 0 failures"
    )
    assert "old" in outcomes


def _texts(index_dir: Path) -> list[str]:
    """The live sentences, sorted: a merge must neither lose nor duplicate one."""
    return sorted(s.sentence.text for s in stored(index_dir))


def test_ctrl_c_leaves_the_old_generation_and_says_so(tmp_path: Path) -> None:
    corpus, index_root = tmp_path / "corpus", tmp_path / "index"
    _write_corpus(corpus, "A", files=1500)
    subprocess.run([FINDLING, "index", str(corpus)], env=_env(index_root), check=True)
    before = current_name(index_root / "default")
    _write_corpus(corpus, "B", files=1500)
    process = subprocess.Popen(
        [FINDLING, "index", str(corpus)],
        env=_env(index_root),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.5)  # past start-up, inside reading/embedding (a full run takes ~5 s)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    if process.returncode == 0:
        pytest.skip("the run finished before Ctrl-C arrived")
    assert process.returncode == 130
    assert "Traceback" not in err
    assert not list((index_root / "default").glob(".tmp-*"))
    if "interrupted after this run was committed" in err:  # the signal came after the switch
        assert current_name(index_root / "default") != before
        assert _versions(index_root / "default") == {"B"}
    else:
        assert "interrupted: the index was left as it was before this run" in err
        assert current_name(index_root / "default") == before
        assert _versions(index_root / "default") == {"A"}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path, Path]]:
    corpus, index_root = tmp_path / "corpus", tmp_path / "index"
    _write_corpus(corpus, "A", files=60)
    subprocess.run([FINDLING, "index", str(corpus)], env=_env(index_root), check=True)
    with running_server(_env(index_root), timeout=60) as url:
        yield url, corpus, index_root


def test_server_answers_through_two_reindexes_without_a_failure(
    server: tuple[str, Path, Path],
) -> None:
    url, corpus, index_root = server
    statuses: list[int] = []
    errors: list[str] = []
    stop = threading.Event()

    def ask() -> None:
        with httpx.Client(timeout=10) as client:
            deadline = time.monotonic() + 120  # bounded even if the main thread fails
            while not stop.is_set() and time.monotonic() < deadline:
                response = client.get(f"{url}/search", params={"q": "Fassung Ort", "k": 3})
                statuses.append(response.status_code)
                if response.status_code != 200:
                    errors.append(response.text)

    clients = [threading.Thread(target=ask) for _ in range(4)]
    for thread in clients:
        thread.start()
    try:
        for version in ("B", "C"):
            time.sleep(0.5)
            _write_corpus(corpus, version, files=60)
            subprocess.run([FINDLING, "index", str(corpus)], env=_env(index_root), check=True)
        time.sleep(0.5)
    finally:
        stop.set()
        for thread in clients:
            thread.join()
    failed = [s for s in statuses if s != 200]
    print(f"\n{len(statuses)} queries during two re-indexes, {len(failed)} failed")
    assert len(statuses) > 50 and not failed, errors[:3]
    texts = [
        r["text"]
        for r in httpx.get(f"{url}/search", params={"q": "Fassung C Ort"}).json()["results"]
    ]
    assert texts and all("Fassung C" in t for t in texts)
