"""The uvicorn side of serving (issue #15, classes 6 and 9): slow and oversized clients, and the
access log of every worker process. In-process servers on loopback; real processes in slow."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn

from api.app import create_app
from indexer.catalog import Catalog
from indexer.service import SearchService
from indexer.serving import HeadTimeoutProtocol, uvicorn_options
from indexer.settings import Settings
from tests.helpers import FINDLING, free_port

GET = b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n"


class QuickHeadTimeout(HeadTimeoutProtocol):
    head_timeout = 0.5


@contextmanager
def serving(catalog: Catalog) -> Iterator[int]:
    """The app on uvicorn with findling's options (a 0.5 s head timeout), in a thread."""
    options = {**uvicorn_options(), "http": QuickHeadTimeout, "log_config": None}
    port = free_port()
    app = create_app(Settings(model="hashing"), catalog=catalog)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, **options))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(30)


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    """Whether the server closes the connection within ``seconds`` (reading any answer)."""
    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        pass
    return True


@pytest.fixture
def port(built: SearchService, catalog: Catalog) -> Iterator[int]:
    with serving(catalog) as listening:
        yield listening


def test_a_silent_connection_is_closed(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        assert _closed_within(sock, 3)


def test_a_head_sent_slowly_is_cut_off(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n")
        started = time.monotonic()
        with pytest.raises(OSError):  # slowloris: a header line every 0.1 s, never the end
            for i in range(50):
                sock.sendall(f"X-Slow-{i}: x\r\n".encode())
                time.sleep(0.1)
        assert time.monotonic() - started < 3


def test_the_next_head_on_a_kept_connection_is_timed_too(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(GET)
        assert b"200 OK" in sock.recv(65536)
        sock.sendall(b"GET /health HTTP/1.1\r\n")  # and then nothing
        assert _closed_within(sock, 3)


def test_whole_requests_still_work(port: int) -> None:
    with httpx.Client(base_url=f"http://localhost:{port}") as client:
        for _ in range(3):
            assert client.get("/health").status_code == 200
            time.sleep(0.3)  # below the head timeout between requests on one connection


def test_64_kb_of_headers_are_refused(port: int) -> None:
    filler = b"".join(b"X-Filler-%d: %s\r\n" % (i, b"x" * 1000) for i in range(64))
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n" + filler + b"\r\n")
        answer = b""
        sock.settimeout(5)
        while chunk := sock.recv(65536):
            answer += chunk
    status = answer.split(b"\r\n", 1)[0]
    # whole, the app refuses it (431 in the error shape); in pieces, uvicorn does (400)
    assert status in (b"HTTP/1.1 431 Request Header Fields Too Large", b"HTTP/1.1 400 Bad Request")
    answer = b""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        try:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n")
            for i in range(0, len(filler), 4096):
                sock.sendall(filler[i : i + 4096])
                time.sleep(0.01)
            sock.sendall(b"\r\n")
            answer = sock.recv(65536)
        except OSError:
            pass  # closed before the head was sent: refused as well
    assert not answer or answer.startswith(b"HTTP/1.1 400 Bad Request")


@pytest.mark.slow
def test_every_worker_logs_its_requests(tmp_path: Path, corpus: Path) -> None:
    """`--workers 2`: each worker process writes the JSON access log (it logged nothing)."""
    import os
    import subprocess

    env = {**os.environ, "FINDLING_MODEL": "hashing", "FINDLING_INDEX_DIR": str(tmp_path / "ix")}
    subprocess.run([str(FINDLING), "index", str(corpus)], env=env, check=True, capture_output=True)
    port = free_port()
    process = subprocess.Popen(
        [str(FINDLING), "serve", "--port", str(port), "--workers", "2"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.3)
        for _ in range(20):
            httpx.get(f"http://127.0.0.1:{port}/search", params={"q": "Rhein"}, timeout=10)
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=60)
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith('{"method"')]
    searches = [line for line in lines if line["route"] == "/search"]
    assert len(searches) == 20 and all(line["status"] == 200 for line in searches), stderr
