"""API keys: bearer tokens compared in constant time, never logged. Writes are closed by default."""

from __future__ import annotations

import hmac

from fastapi import Request

from indexer.errors import UnauthorizedError, WritesDisabledError
from indexer.settings import Settings


def _bearer(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _check(request: Request, expected: str, what: str) -> None:
    token = _bearer(request)
    if token is None:
        raise UnauthorizedError(
            f"{what} need an API key", "send the header `Authorization: Bearer <key>`"
        )
    # constant time: how long a comparison takes says nothing about the key
    if not hmac.compare_digest(token.encode(), expected.encode()):
        raise UnauthorizedError("the API key is not valid", "check the key you send")


def require_read(request: Request) -> None:
    """Reads are open unless FINDLING_READ_API_KEY is set (the write key also reads)."""
    settings: Settings = request.app.state.settings
    if settings.read_api_key is None:
        return
    token = _bearer(request)
    write_key = settings.api_key.get_secret_value() if settings.api_key else None
    if token is not None and write_key and hmac.compare_digest(token.encode(), write_key.encode()):
        return
    _check(request, settings.read_api_key.get_secret_value(), "reads")


def require_write(request: Request) -> None:
    """Writes need FINDLING_API_KEY; with none configured they are refused, not open."""
    settings: Settings = request.app.state.settings
    if settings.api_key is None:
        raise WritesDisabledError(
            "writes over HTTP are disabled on this server",
            "start the server with FINDLING_API_KEY set and send it as a bearer token",
        )
    _check(request, settings.api_key.get_secret_value(), "writes")
