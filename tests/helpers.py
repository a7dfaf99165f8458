"""What several test modules share: paths, small corpora, the error shape, real servers."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from starlette.types import ASGIApp

from indexer.documents import Document, Sentence, make_document
from indexer.results import Hit
from indexer.service import SearchService
from indexer.snapshot import SegmentCache, Snapshot

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
FINDLING = Path(sys.executable).with_name("findling")

GERMAN = """Der Rhein ist ein Fluss in Europa. Er fließt z. B. durch Köln und Düsseldorf.

Am 3. Oktober feiert Deutschland den Tag der Deutschen Einheit. Dr. Müller hielt eine Rede.
"""
ENGLISH = """# Cooking notes

Pasta should be cooked in salted water. Drain it while it is still firm.

The oven must be preheated to 200 degrees. Bake the bread for 40 minutes.
"""


class Response(Protocol):
    """An HTTP response of httpx or of Starlette's TestClient."""

    @property
    def status_code(self) -> int: ...

    @property
    def text(self) -> str: ...

    def json(self) -> Any: ...


def assert_error(response: Response, status: int, code: str) -> dict[str, Any]:
    """Every error has one shape: {"error": {"code", "message", "hint", "details"}}."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "hint", "details"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    error: dict[str, Any] = body["error"]
    return error


def api_client(app: ASGIApp, **options: Any) -> TestClient:
    """A TestClient that calls ``app`` by a loopback name, as the Host check requires
    (TestClient's own default, ``testserver``, is not served)."""
    return TestClient(app, base_url="http://localhost", **options)


def modules_loaded_by_cli(runs: Sequence[list[str]], modules: Sequence[str]) -> list[str]:
    """Which of ``modules`` a fresh interpreter has loaded after the CLI ``runs`` (each exits 0)."""
    probe = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from indexer.cli import app\n"
        f"for args in {list(runs)!r}:\n"
        "    result = CliRunner().invoke(app, args)\n"
        "    assert result.exit_code == 0, result.output\n"
        f"print(','.join(m for m in {list(modules)!r} if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return [m for m in done.stdout.strip().split(",") if m]


@dataclass(frozen=True)
class Stored:
    """A live sentence as the collection stores it: its id, the sentence and its vector."""

    id: int
    sentence: Sentence
    vector: np.ndarray


def stored(index_dir: Path) -> list[Stored]:
    """Every live sentence of a collection's current generation, in segment and row order."""
    snapshot = Snapshot.open(index_dir, SegmentCache())
    found = []
    for part in snapshot.parts:
        segment = part.segment
        documents: dict[int, Document] = {}
        for row in np.flatnonzero(part.live).tolist():
            s = segment.sentences[row]
            doc_row = int(s["doc"])
            if doc_row not in documents:
                documents[doc_row] = segment.document(doc_row)
            document = documents[doc_row]
            start, end = int(s["start"]), int(s["end"])
            sentence = Sentence(
                document.id,
                int(s["paragraph"]),
                int(s["sentence"]),
                start,
                end,
                int(s["paragraph_start"]),
                int(s["paragraph_end"]),
                document.text[start:end],
                segment.info.languages[int(s["language"])],
            )
            vector = segment.store.vectors(np.array([row]))[0]
            found.append(Stored(int(segment.ids[row]), sentence, vector))
    return found


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_server(
    env: Mapping[str, str],
    *arguments: str,
    ready_path: str = "/health",
    timeout: float = 180,
    cwd: Path | None = None,
) -> Iterator[str]:
    """A real `findling serve` process on loopback (``env`` on top of this process's), as its URL.

    Waits until ``ready_path`` answers 200; the process is terminated on exit. Its output goes
    to a file (a pipe nobody reads would fill up and stop the server) and is shown if it fails.
    """
    port = free_port()
    # a file, not a pipe: nobody reads the access log while the server runs, and a full pipe
    # (64 KB, some 500 requests) would block the server in the middle of a test
    with tempfile.TemporaryFile("w+", encoding="utf-8") as output:
        process = subprocess.Popen(
            [str(FINDLING), "serve", "--host", "127.0.0.1", "--port", str(port), *arguments],
            env={**os.environ, **env},
            cwd=cwd,
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            _wait_until_ready(process, output, f"http://127.0.0.1:{port}{ready_path}", timeout)
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            process.wait(timeout=30)


def _wait_until_ready(
    process: subprocess.Popen[str], output: IO[str], url: str, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            output.seek(0)
            pytest.fail(f"findling serve exited: {output.read()}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"findling serve did not become ready in {timeout:.0f} s")
        time.sleep(0.3)


WORDS_DE = [
    "Rhein",
    "Fluss",
    "Stadt",
    "Brücke",
    "Zug",
    "Bahnhof",
    "Markt",
    "Rathaus",
    "Schule",
    "Wetter",
    "Regen",
    "Sonne",
]
WORDS_EN = [
    "river",
    "city",
    "bridge",
    "train",
    "station",
    "market",
    "school",
    "weather",
    "rain",
    "sun",
    "harbour",
    "ship",
]


def random_document(rng: random.Random, number: int, version: int = 0) -> Document:
    """A German or English document of random words, with a title and metadata; ``version``
    changes its text."""
    german = number % 3 != 0
    words = WORDS_DE if german else WORDS_EN
    paragraphs = []
    for _ in range(rng.randint(1, 3)):
        sentences = []
        for _ in range(rng.randint(1, 4)):
            picked = " ".join(rng.choices(words, k=rng.randint(2, 7)))
            sentences.append(f"{'Der' if german else 'The'} {picked} {number} {version}.")
        paragraphs.append(" ".join(sentences))
    return make_document(
        f"doc-{number:03d}",
        "\n\n".join(paragraphs),
        title=f"Titel {number % 4}",
        language="de" if german else "en",
        metadata={"team": "ab"[number % 2], "source": f"notes/{number:03d}.md"},
    )


def assert_same_results(
    a: SearchService,
    b: SearchService,
    query: str,
    mode: str,
    filters: Mapping[str, Any],
    **selection: Any,
) -> None:
    """The same hits (above ties at the last score) and scores from two collections;
    ``selection``: offset, min_score, group as search takes them."""
    ours = a.search(query, k=5, mode=mode, filters=filters, **selection).results
    theirs = b.search(query, k=5, mode=mode, filters=filters, **selection).results
    assert_same_hits(ours, theirs, (query, mode, filters), **selection)


def assert_same_hits(ours: list[Hit], theirs: list[Hit], asked: Any, **selection: Any) -> None:
    """The same hits (above ties at the last score) and scores of two answers to ``asked``."""
    if selection.get("group") == "document":
        # documents whose best passages tie may come in either order, each with its own further
        # passages: compare the documents by their best passage
        ours, theirs = _best_of_each_rank(ours), _best_of_each_rank(theirs)
    np.testing.assert_allclose([r.score for r in ours], [r.score for r in theirs], atol=2e-6)

    # equal scores may come in either order: above the last score (and below the first, on a
    # later page) the hits must be the same
    def sure(results: list[Hit]) -> set[tuple[str, int, int]]:
        scores = [r.score for r in results]
        low = min(scores, default=0.0) + 1e-5
        high = max(scores, default=0.0) - 1e-5 if selection.get("offset") else float("inf")
        return {(r.document_id, r.paragraph, r.sentence) for r in results if low < r.score < high}

    assert sure(ours) == sure(theirs), (asked, selection)


def _best_of_each_rank(results: list[Hit]) -> list[Hit]:
    """The first (best) hit of each rank: with group="document", each document's best."""
    return list({r.rank: r for r in reversed(results)}.values())[::-1]
