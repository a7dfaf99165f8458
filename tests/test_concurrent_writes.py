"""32 writers storing 20 documents each at once into one real server (slow tier; issue #15).

Writes that reach one server are queued and committed together: none may fail, and every
document must be searchable afterwards.
"""

from __future__ import annotations

import statistics
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers import running_server

pytestmark = pytest.mark.slow

WRITERS, EACH = 32, 20
KEY = "concurrent-write-key"


def test_thirty_two_writers_at_once_all_succeed(tmp_path: Path) -> None:
    env = {
        "FINDLING_MODEL": "hashing",
        "FINDLING_INDEX_DIR": str(tmp_path / "index"),
        "FINDLING_API_KEY": KEY,
    }
    latencies: list[float] = []
    failures: list[str] = []
    with running_server(env) as url:

        def write(writer: int) -> None:
            headers = {"Authorization": f"Bearer {KEY}"}
            with httpx.Client(base_url=url, timeout=120, headers=headers) as client:
                for number in range(EACH):
                    text = f"Notiz w{writer}n{number} von Schreiber {writer}. Sie hat zwei Sätze."
                    started = time.perf_counter()
                    answer = client.put(f"/documents/w{writer}-{number}", json={"text": text})
                    latencies.append(time.perf_counter() - started)
                    if answer.status_code != 200:
                        failures.append(f"{answer.status_code}: {answer.text[:200]}")

        threads = [threading.Thread(target=write, args=(w,)) for w in range(WRITERS)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - started
        info = httpx.get(f"{url}/info", timeout=60).json()
        missing = []
        for writer in range(WRITERS):
            for number in range(0, EACH, 5):
                word = f"w{writer}n{number}"
                found = httpx.get(
                    f"{url}/search", params={"q": word, "k": 1, "mode": "bm25"}, timeout=60
                ).json()["results"]
                if not found or found[0]["document_id"] != f"w{writer}-{number}":
                    missing.append(word)
    ordered = sorted(latencies)
    p99 = ordered[int(0.99 * (len(ordered) - 1))]
    print(
        f"\n{WRITERS} writers x {EACH} documents: {len(latencies)} writes in {seconds:.1f} s, "
        f"{len(failures)} failed; p50 {statistics.median(latencies) * 1000:.0f} ms, "
        f"p99 {p99 * 1000:.0f} ms; {info['documents']} documents in "
        f"{info['generation']} ({len(info['segments'])} segments)"
    )
    assert failures == []
    assert len(latencies) == WRITERS * EACH and info["documents"] == WRITERS * EACH
    assert missing == []
