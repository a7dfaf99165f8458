"""Who may call the API: keys per route, checked before a body is read, and the request head.

Writes are closed unless FINDLING_API_KEY is set; reads are open unless FINDLING_READ_API_KEY
is set. Every request must name an allowed host (DNS rebinding) and keep its head small.
"""

from __future__ import annotations

from fastapi import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import error_response
from indexer.access import HostNames, check_bearer, read_keys
from indexer.errors import WritesDisabledError
from indexer.serving import MAX_HEAD_BYTES
from indexer.settings import Settings


def require_read(request: Request) -> None:
    """Reads are open unless FINDLING_READ_API_KEY is set (the write key also reads)."""
    keys = read_keys(request.app.state.settings)
    if keys:
        check_bearer(request.headers.get("authorization", ""), keys, "reads")


def require_write(request: Request) -> None:
    """Writes need FINDLING_API_KEY; with none configured they are refused, not open."""
    settings: Settings = request.app.state.settings
    if settings.api_key is None:
        raise WritesDisabledError(
            "writes over HTTP are disabled on this server",
            "start the server with FINDLING_API_KEY set and send it as a bearer token",
        )
    key = settings.api_key.get_secret_value()
    check_bearer(request.headers.get("authorization", ""), [key], "writes")


class HeadCheckMiddleware:
    """Refuses, before anything else runs, a request whose Host is not served (421) or whose
    head is over MAX_HEAD_BYTES (431; uvicorn refuses one that long arriving in pieces)."""

    def __init__(self, app: ASGIApp, allowed_hosts: list[str]) -> None:
        self.app = app
        self.hosts = HostNames(allowed_hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope.get("headers") or []
        size = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"")
        size += sum(len(name) + len(value) + 4 for name, value in headers)
        host = next((v.decode("latin-1") for k, v in headers if k == b"host"), None)
        if size > MAX_HEAD_BYTES:
            response = error_response(
                431,
                "headers_too_large",
                f"the request line and headers are larger than {MAX_HEAD_BYTES} bytes",
                "send fewer or shorter headers",
            )
        elif not self.hosts.allow(host):
            response = error_response(
                421,
                "host_not_allowed",
                f"this server does not answer for the host {(host or '')[:100]!r}",
                "call it by a name listed in FINDLING_ALLOWED_HOSTS (by default localhost, "
                "127.0.0.1 and [::1]), or add the name there",
            )
        else:
            await self.app(scope, receive, send)
            return
        await response(scope, receive, send)
