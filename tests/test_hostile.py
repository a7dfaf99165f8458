"""A hostile client against a real `findling serve` on loopback (slow tier; issue #15).

A bounded script of adversarial requests, one table row each: what is sent and the status the
README documents for it. Every answer must be that status, never a 5xx, never a traceback or an
absolute path; afterwards the server must still answer a known question. Add rows for new
classes of attack to CASES (or to SLOW_CASES when one takes seconds); the run prints how many
cases ran and how many failed.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import ENGLISH, FINDLING, GERMAN, free_port

pytestmark = pytest.mark.slow

KEY = "hostile-test-write-key"
WRITE = {"Authorization": f"Bearer {KEY}"}
JSON = {"Content-Type": "application/json"}
ABSOLUTE_PATH = re.compile(r"(?<![\w.:/])/(?:tmp|home|root|work|usr|var|etc|opt|srv)/")


@dataclass(frozen=True)
class Case:
    """One adversarial request and the status it must get (``code``: the error shape's code)."""

    name: str
    issue_class: int
    method: str
    path: str
    status: int
    code: str | None = None
    body: bytes | None = None
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    chunks: tuple[bytes, ...] | None = None  # sent chunked, without a Content-Length
    # a body the server refuses on its Content-Length: only its start is sent, then the answer
    # is read (a client sending on would have its connection reset)
    declared_only: bool = False


@dataclass(frozen=True)
class RawCase:
    """Bytes written to a socket; ``check`` judges what came back (b"" when it was closed)."""

    name: str
    issue_class: int
    send: Callable[[socket.socket], None]
    check: Callable[[bytes], bool]
    wait: float = 5.0


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def _put(name: str, cls: int, body: bytes, status: int, code: str | None, **kw: Any) -> Case:
    return Case(name, cls, "PUT", "/documents/hostile", status, code, body=body, **kw)


def _cases() -> list[Case]:
    cases: list[Case] = []
    w = {**WRITE, **JSON}
    # 1: input that gave a 500
    for field_, template in [
        ("text", b'{"text": "%s"}'),
        ("title", b'{"text": "Ok.", "title": "%s"}'),
        ("metadata value", b'{"text": "Ok.", "metadata": {"k": "%s"}}'),
        ("metadata key", b'{"text": "Ok.", "metadata": {"%s": 1}}'),
        ("language", b'{"text": "Ok.", "language": "%s"}'),
    ]:
        for escape in (rb"\ud800", rb"\udfff", rb"a\ud83d", rb"\ude00b"):
            body = template % escape
            cases.append(
                _put(f"surrogate in {field_} {escape!r}", 1, body, 400, "invalid_json", headers=w)
            )
    for path, body in [
        ("/v1/embeddings", rb'{"input": "\ud800"}'),
        ("/v1/embeddings", rb'{"input": ["ok", "\udbff"]}'),
        ("/search", rb'{"query": "\ud800"}'),
        ("/search/batch", rb'{"queries": [{"query": "\udc00"}]}'),
        ("/documents", rb'{"documents": [{"id": "\ud800", "text": "x"}]}'),
    ]:
        cases.append(
            Case(f"surrogate to {path}", 1, "POST", path, 400, "invalid_json", body=body, headers=w)
        )
    for depth in (150, 201, 600, 5000, 100_000):
        body = b'{"text": "Ok.", "metadata": {"m": ' + _nested(depth) + b"}}"
        status, code = (422, "invalid_request") if depth < 200 else (400, "invalid_json")
        cases.append(_put(f"metadata nested {depth}", 1, body, status, code, headers=w))
    cases.append(_put("invalid UTF-8", 1, b'{"text": "\xff\xfe"}', 400, "invalid_json", headers=w))
    cases.append(_put("truncated JSON", 1, b'{"text": "a', 400, "invalid_json", headers=w))
    cases.append(_put("NUL in text", 1, b'{"text": "a\\u0000b"}', 200, None, headers=w))
    # 2: limits
    big = b"x" * 11 * 1024 * 1024
    cases += [
        _put(
            "body over max, declared",
            2,
            b'{"text": "' + big + b'"}',
            413,
            "payload_too_large",
            headers=w,
            declared_only=True,
        ),
        Case(
            "body over max, chunked",
            2,
            "PUT",
            "/documents/hostile",
            413,
            "payload_too_large",
            headers=w,
            chunks=(b'{"text": "', *([b"x" * 1024 * 1024] * 11), b'"}'),
        ),
        Case(
            "search body chunked past its limit",
            2,
            "POST",
            "/search",
            413,
            "payload_too_large",
            headers=JSON,
            chunks=(b'{"query": "', b"a" * 100_000, b'"}'),
        ),
        Case(
            "10 MB batch of tiny queries",
            2,
            "POST",
            "/search/batch",
            413,
            "payload_too_large",
            headers=JSON,
            body=b'{"queries": [' + b",".join([b'{"query":"a"}'] * 700_000) + b"]}",
            declared_only=True,
        ),
        Case(
            "10 MB of embedding objects",
            2,
            "POST",
            "/v1/embeddings",
            413,
            "payload_too_large",
            headers=JSON,
            body=b'{"input": [' + b",".join([b"{}"] * 3_000_000) + b"]}",
            declared_only=True,
        ),
        Case(
            "1.5 MB of embedding objects",
            2,
            "POST",
            "/v1/embeddings",
            422,
            "invalid_request",
            headers=JSON,
            body=b'{"input": [' + b",".join([b"{}"] * 500_000) + b"]}",
        ),
        Case(
            "batch of 33",
            2,
            "POST",
            "/search/batch",
            422,
            "invalid_request",
            json={"queries": [{"query": "a"}] * 33},
        ),
        Case(
            "33 documents",
            2,
            "POST",
            "/documents",
            422,
            "invalid_request",
            headers=WRITE,
            json={"documents": [{"id": str(i), "text": "x"} for i in range(33)]},
        ),
        Case(
            "100,000 tiny documents",
            2,
            "POST",
            "/documents",
            422,
            "invalid_request",
            headers=WRITE,
            json={"documents": [{"id": "a", "text": "b"}] * 100_000},
        ),
        Case(
            "33 embedding inputs",
            2,
            "POST",
            "/v1/embeddings",
            422,
            "invalid_request",
            json={"input": ["a"] * 33},
        ),
        Case(
            "embedding input 8193 chars",
            2,
            "POST",
            "/v1/embeddings",
            413,
            "payload_too_large",
            json={"input": "x" * 8193},
        ),
        Case(
            "embedding input 1M chars",
            2,
            "POST",
            "/v1/embeddings",
            413,
            "payload_too_large",
            json={"input": "x" * 1_000_000},
        ),
        Case(
            "embedding of the wrong model",
            9,
            "POST",
            "/v1/embeddings",
            422,
            "invalid_request",
            json={"input": "x", "model": "text-embedding-3-large"},
        ),
        Case(
            "embedding of the loaded model",
            9,
            "POST",
            "/v1/embeddings",
            200,
            json={"input": "x", "model": "hashing-256"},
        ),
        Case(
            "17 filters",
            2,
            "POST",
            "/search",
            422,
            "invalid_request",
            json={"query": "a", "filters": {str(i): "v" for i in range(17)}},
        ),
        Case(
            "100 KB glob",
            2,
            "POST",
            "/search",
            413,
            "payload_too_large",
            json={"query": "a", "filters": {"source": "*a" * 50_000}},
        ),
        Case(
            "201-char glob",
            2,
            "POST",
            "/search",
            422,
            "invalid_request",
            json={"query": "a", "filters": {"source": "*" * 201}},
        ),
        Case(
            "201-char glob in GET",
            2,
            "GET",
            "/search?q=a&filter=source=" + "*" * 201,
            422,
            "invalid_request",
        ),
        Case(
            "3000 filters of wrong type",
            2,
            "POST",
            "/search",
            422,
            "invalid_request",
            json={"query": "a", "filters": {f"k{i}": i for i in range(3000)}},
        ),
        Case(
            "document over max chars",
            2,
            "PUT",
            "/documents/hostile",
            413,
            "payload_too_large",
            headers=WRITE,
            json={"text": "Wort " * 200_001},
        ),
        Case("query over max chars", 2, "GET", "/search?q=" + "a" * 2001, 422, "invalid_request"),
        Case("k too large", 2, "GET", "/search?q=a&k=101", 422, "invalid_request"),
        Case("k negative", 2, "GET", "/search?q=a&k=-1", 422, "invalid_request"),
    ]
    for language in ("x" * 5000, "deutsch", "d", "de-", "12", "de DE", "<script>", "en-GB-x-y-z-w"):
        cases.append(
            Case(
                f"language {language[:12]!r}",
                2,
                "PUT",
                "/documents/lang",
                422,
                "invalid_request",
                headers=WRITE,
                json={"text": "Ein Satz.", "language": language},
            )
        )
    cases.append(
        Case(
            "language en-GB",
            2,
            "PUT",
            "/documents/lang",
            200,
            headers=WRITE,
            json={"text": "Ein Satz.", "language": "en-GB"},
        )
    )
    # 4: the key before the body
    for body in (b"{not json", b"\xff\xfe", b"[" * 5000, b'{"text": 5}', b""):
        cases.append(_put(f"no key, body {body[:8]!r}", 4, body, 401, "unauthorized", headers=JSON))
        cases.append(
            _put(
                f"wrong key, body {body[:8]!r}",
                4,
                body,
                401,
                "unauthorized",
                headers={**JSON, "Authorization": "Bearer nope"},
            )
        )
    cases += [
        Case(
            "no key, huge declared body",
            4,
            "POST",
            "/documents",
            401,
            "unauthorized",
            headers=JSON,
            body=b"x" * 12 * 1024 * 1024,
            declared_only=True,
        ),
        Case("no key, delete", 4, "DELETE", "/documents/hostile", 401, "unauthorized"),
        Case(
            "basic auth",
            4,
            "DELETE",
            "/documents/hostile",
            401,
            "unauthorized",
            headers={"Authorization": "Basic a2V5OmtleQ=="},
        ),
        Case(
            "bearer without token",
            4,
            "DELETE",
            "/documents/hostile",
            401,
            "unauthorized",
            headers={"Authorization": "Bearer"},
        ),
        Case(
            "key in the query, not the header",
            4,
            "DELETE",
            f"/documents/hostile?key={KEY}",
            401,
            "unauthorized",
        ),
        Case(
            "malformed body with the key",
            4,
            "PUT",
            "/documents/hostile",
            400,
            "invalid_json",
            headers=w,
            body=b"{not json",
        ),
    ]
    # 5: the Host check
    for host in (
        "evil.example",
        "evil.example:8000",
        "localhost.evil.example",
        "127.0.0.2",
        "0.0.0.0",
        "[::2]",
        "LOCALHOST.evil",
        "10.0.0.1:80",
        "localhost@evil.example",
        "x" * 300,
    ):
        cases.append(
            Case(
                f"Host {host[:20]}",
                5,
                "GET",
                "/search?q=Rhein",
                421,
                "host_not_allowed",
                headers={"Host": host},
            )
        )
        cases.append(
            Case(
                f"Host {host[:20]} write",
                5,
                "PUT",
                "/documents/h",
                421,
                "host_not_allowed",
                headers={**w, "Host": host},
                json={"text": "x"},
            )
        )
    for host in ("localhost", "LocalHost:1", "127.0.0.1", "[::1]:8000"):
        cases.append(Case(f"Host {host}", 5, "GET", "/health", 200, headers={"Host": host}))
    # 6: heads
    cases += [
        Case(
            "64 KB of headers",
            6,
            "GET",
            "/health",
            431,
            "headers_too_large",
            headers={f"X-Filler-{i}": "x" * 1000 for i in range(64)},
        ),
        Case("20 KB query string", 6, "GET", "/search?q=" + "a" * 20_000, 431, "headers_too_large"),
        Case("15 KB of headers", 6, "GET", "/health", 200, headers={"X-Filler": "x" * 15_000}),
    ]
    # 9: methods
    for method, path, allowed in [
        ("DELETE", "/search", "GET, POST"),
        ("PUT", "/health", "GET"),
        ("POST", "/info", "GET"),
        ("PATCH", "/documents/x", "GET, PUT, DELETE"),
        ("PATCH", "/documents", "GET, POST"),
    ]:
        cases.append(
            Case(
                f"{method} {path}",
                9,
                method,
                path,
                405,
                "method_not_allowed",
                headers={"X-Expect-Allow": allowed},
            )
        )
    # 7: paths as the user gave them (the server indexed the folder "docs", given relatively)
    cases += [
        Case("file document hit", 7, "GET", "/search?q=Rhein+Fluss+Europa&k=3", 200),
        Case("file document, bm25", 7, "GET", "/search?q=Leuchtturm&mode=bm25", 200),
        Case("info lists sources", 7, "GET", "/info", 200),
        Case("collections", 7, "GET", "/collections", 200),
        Case("unknown collection", 7, "GET", "/search?q=a&collection=nope", 404, "index_not_found"),
        Case(
            "delete an unknown id",
            7,
            "DELETE",
            "/documents/nope",
            404,
            "document_not_found",
            headers=WRITE,
        ),
        Case("filter on a file path", 7, "GET", "/search?q=Rhein&filter=source=docs/*", 200),
    ]
    # 3: a write that reaches a busy collection queues behind the others (see also
    # tests/test_concurrent_writes.py for 32 writers at once)
    cases += [
        Case(
            f"write {i}",
            3,
            "PUT",
            f"/documents/queued-{i}",
            200,
            json={"text": f"Satz {i}."},
            headers=WRITE,
        )
        for i in range(5)
    ]
    return cases


def _send_slowly(lines: list[bytes], pause: float) -> Callable[[socket.socket], None]:
    def send(sock: socket.socket) -> None:
        for line in lines:
            sock.sendall(line)
            time.sleep(pause)

    return send


SLOW_CASES = [
    RawCase("silent connection", 6, lambda sock: None, lambda answer: answer == b"", wait=15),
    RawCase(
        "slowloris head",
        6,
        _send_slowly([b"GET /health HTTP/1.1\r\n", *[b"X-Slow: x\r\n"] * 12], 1.0),
        lambda answer: answer == b"",
        wait=5,
    ),
    RawCase(
        "64 KB of headers in pieces",
        6,
        _send_slowly(
            [
                b"GET /health HTTP/1.1\r\nHost: localhost\r\n",
                *[b"X: " + b"x" * 4000 + b"\r\n"] * 16,
            ],
            0.01,
        ),
        lambda answer: answer == b"" or answer.startswith(b"HTTP/1.1 400"),
    ),
    RawCase(
        "garbage request line",
        6,
        lambda sock: sock.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"),
        lambda answer: answer == b"" or answer.startswith(b"HTTP/1.1 400"),
    ),
]


@contextmanager
def _server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    port = free_port()
    log = tmp_path / "server.log"
    env = {
        **os.environ,
        "FINDLING_MODEL": "hashing",
        "FINDLING_INDEX_DIR": "index",
        "FINDLING_API_KEY": KEY,
    }
    with log.open("w") as out:
        process = subprocess.Popen(
            [str(FINDLING), "serve", "--port", str(port)],
            env=env,
            cwd=tmp_path,
            stdout=out,
            stderr=out,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert process.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.3)
            yield url, log
        finally:
            process.terminate()
            process.wait(timeout=60)


def _problems(case: Case, response: httpx.Response) -> list[str]:
    problems = []
    if response.status_code != case.status:
        problems.append(f"status {response.status_code}, not {case.status}: {response.text[:200]}")
    if response.status_code >= 500:
        problems.append("a 5xx")
    text = response.text
    if "Traceback" in text or 'File "' in text:
        problems.append("a traceback in the body")
    if ABSOLUTE_PATH.search(text):
        problems.append(f"an absolute path in the body: {ABSOLUTE_PATH.search(text)}")
    if response.status_code >= 400:
        body = response.json()
        if set(body) != {"error"} or set(body["error"]) != {"code", "message", "hint", "details"}:
            problems.append(f"not the error shape: {text[:200]}")
        elif case.code and body["error"]["code"] != case.code:
            problems.append(f"code {body['error']['code']}, not {case.code}")
    allowed = case.headers.get("X-Expect-Allow")
    if allowed and response.headers.get("allow") != allowed:
        problems.append(f"Allow {response.headers.get('allow')!r}, not {allowed!r}")
    return problems


def _send_start(url: str, case: Case) -> httpx.Response:
    host, port = url.removeprefix("http://").split(":")
    body = case.body or b""
    head = [
        f"{case.method} {case.path} HTTP/1.1",
        "Host: localhost",
        f"Content-Length: {len(body)}",
    ]
    head += [f"{name}: {value}" for name, value in case.headers.items()]
    answer = b""
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body[:65536])
        try:
            while chunk := sock.recv(65536):
                answer += chunk
                if b"\r\n\r\n" in answer:
                    top, _, rest = answer.partition(b"\r\n\r\n")
                    length = re.search(rb"content-length: (\d+)", top, re.IGNORECASE)
                    if length and len(rest) >= int(length.group(1)):
                        break
        except ConnectionResetError:
            pass
    top, _, rest = answer.partition(b"\r\n\r\n")
    lines = top.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return httpx.Response(int(lines[0].split()[1]), headers=headers, content=rest)


def _send(client: httpx.Client, case: Case) -> httpx.Response:
    if case.declared_only:
        return _send_start(str(client.base_url).rstrip("/"), case)
    content: Any = case.body
    if case.chunks is not None:
        content = iter(case.chunks)
    return client.request(
        case.method, case.path, content=content, json=case.json, headers=case.headers
    )


def _raw(url: str, case: RawCase) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    answer = b""
    with socket.create_connection((host, int(port))) as sock:
        try:
            case.send(sock)
            sock.settimeout(case.wait)
            while chunk := sock.recv(65536):
                answer += chunk
        except (ConnectionResetError, BrokenPipeError):
            pass
        except TimeoutError:
            return b"<still open>"
    return answer


def test_a_hostile_client_gets_the_documented_answers(tmp_path: Path) -> None:
    cases = _cases()
    # a folder of files indexed as people do, by a relative path: hits must not show the
    # server's absolute folders (class 7)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "leuchtturm.txt").write_text(
        "Der Leuchtturm steht seit 1815 in Kiel. Der Rhein ist ein Fluss in Europa.", "utf-8"
    )
    environment = {**os.environ, "FINDLING_MODEL": "hashing", "FINDLING_INDEX_DIR": "index"}
    subprocess.run(
        [str(FINDLING), "index", "docs"],
        cwd=tmp_path,
        env=environment,
        check=True,
        capture_output=True,
    )
    failures: list[str] = []
    with _server(tmp_path) as (url, log), httpx.Client(base_url=url, timeout=60) as client:
        for doc_id, text in (("rhein", GERMAN), ("cooking", ENGLISH)):
            assert (
                client.put(f"/documents/{doc_id}", json={"text": text}, headers=WRITE).status_code
                == 200
            )
        for case in cases:
            try:
                problems = _problems(case, _send(client, case))
            except httpx.TransportError as exc:
                problems = [f"no answer ({exc!r})"]
            failures += [f"{case.name} (class {case.issue_class}): {p}" for p in problems]
        for raw in SLOW_CASES:
            answer = _raw(url, raw)
            if not raw.check(answer):
                failures.append(f"{raw.name} (class {raw.issue_class}): got {answer[:100]!r}")
        # still serving, and right
        known = client.get("/search", params={"q": "Bake the bread", "k": 1, "mode": "bm25"})
        assert known.status_code == 200
        assert known.json()["results"][0]["text"] == "Bake the bread for 40 minutes."
        server_log = log.read_text()
    total = len(cases) + len(SLOW_CASES)
    print(f"\nhostile client: {total} cases, {len(failures)} failed")
    for failure in failures:
        print("  " + failure)
    assert "Traceback" not in server_log, server_log[-3000:]
    assert not failures
    assert total >= 100
    logged = [json.loads(line) for line in server_log.splitlines() if line.startswith('{"method"')]
    assert logged and not [line for line in logged if line["status"] >= 500]
