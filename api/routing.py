"""What every API route does before FastAPI parses a request: access first, then the body.

The key is checked before a byte of the body is read, so a caller without one hears 401 or 403
whatever it sends. Then the body is read within the route's limit (413, also when it streams
without a Content-Length), parsed as strict JSON (400: not UTF-8, a lone surrogate, nested past
200 levels) and its list counted against FINDLING_MAX_BATCH (422) before one item is validated.
Measured: parsing and validating a 10 MB body of tiny items in full took 0.15 to 8 GB.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.requests import ClientDisconnect

from api.errors import HTTPError
from api.security import require_read, require_write
from indexer.errors import InvalidRequestError, PayloadTooLargeError
from indexer.formats import FormatError, parse_json


@dataclass(frozen=True)
class BodyRules:
    """The largest body each route takes, and the list in it that ``max_items`` bounds."""

    max_body_bytes: int  # FINDLING_MAX_BODY_BYTES: every route, and the only limit of most
    limits: Mapping[str, int]  # route path -> a smaller limit
    lists: Mapping[str, str]  # route path -> the body's field holding its list
    max_items: int

    def limit(self, path: str) -> int:
        return min(self.limits.get(path, self.max_body_bytes), self.max_body_bytes)


class JsonRequest(Request):
    """A request whose body was read within a limit and parsed once, strictly."""

    _raw = b""
    _payload: Any = None

    async def load(self, rules: BodyRules, path: str) -> None:
        """Read and parse the body, refusing it as soon as it breaks a rule."""
        limit = rules.limit(path)
        declared = self.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise _too_large(limit)
        chunks, size = [], 0
        try:
            async for chunk in self.stream():
                size += len(chunk)
                if size > limit:
                    raise _too_large(limit)
                chunks.append(chunk)
        except ClientDisconnect:
            raise HTTPError(400, "bad_request", "the client left before sending the body") from None
        self._raw = b"".join(chunks)
        if self._raw and _is_json(self.headers.get("content-type", "")):
            try:
                self._payload = parse_json(self._raw)
            except FormatError as exc:
                raise HTTPError(
                    400,
                    "invalid_json",
                    f"the request body is {exc}",
                    "send UTF-8 JSON: valid Unicode (no lone surrogates such as \\ud800), "
                    "nested at most 200 levels",
                ) from None
            _count(self._payload, rules.lists.get(path), rules.max_items)

    async def body(self) -> bytes:
        return self._raw

    async def json(self) -> Any:
        return self._payload


def _too_large(limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"the request body is larger than {limit} bytes, the most this route takes",
        "send less at once (limits follow FINDLING_MAX_BODY_BYTES, FINDLING_MAX_BATCH, "
        "FINDLING_MAX_QUERY_CHARS and FINDLING_MAX_EMBEDDING_CHARS)",
    )


def _is_json(content_type: str) -> bool:
    """As FastAPI decides whether to parse a body as JSON."""
    media = content_type.partition(";")[0].strip().lower()
    kind, _, subtype = media.partition("/")
    return kind == "application" and (subtype == "json" or subtype.endswith("+json"))


def _count(payload: Any, field: str | None, limit: int) -> None:
    items = payload.get(field) if field and isinstance(payload, dict) else None
    if isinstance(items, list) and len(items) > limit:
        raise InvalidRequestError(
            f"{len(items)} items in {field!r}, at most {limit} are allowed in one request",
            "split the request (FINDLING_MAX_BATCH)",
        )


Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class OpenRoute(APIRoute):
    """A route anyone may call; its body, if any, is read by the app's BodyRules."""

    def check_access(self, request: Request) -> None:
        """Raise when the caller may not use this route."""

    def get_route_handler(self) -> Handler:
        handle = super().get_route_handler()
        takes_body = self.body_field is not None

        async def guarded(request: Request) -> Response:
            self.check_access(request)
            if takes_body:
                request = JsonRequest(request.scope, request.receive)
                await request.load(request.app.state.body_rules, self.path)
            return await handle(request)

        return guarded


class ReadRoute(OpenRoute):
    """A read: open unless FINDLING_READ_API_KEY is set."""

    def check_access(self, request: Request) -> None:
        require_read(request)


class WriteRoute(OpenRoute):
    """A write: needs FINDLING_API_KEY, and is refused when none is configured."""

    def check_access(self, request: Request) -> None:
        require_write(request)
