"""One JSON error shape for every error, mapped once from domain and framework errors."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from api.schemas import ErrorBody, ErrorResponse
from indexer.errors import (
    DocumentNotFoundError,
    FindlingError,
    IndexBusyError,
    IndexCorruptError,
    IndexNotFoundError,
    InvalidRequestError,
    ModelMismatchError,
    ModelUnavailableError,
    PayloadTooLargeError,
    ShardUnavailableError,
    SourceNotFoundError,
    UnauthorizedError,
    WritesDisabledError,
)

log = logging.getLogger(__name__)
RETRY_AFTER_SECONDS = 5

STATUS: dict[type[FindlingError], int] = {
    UnauthorizedError: 401,
    WritesDisabledError: 403,
    DocumentNotFoundError: 404,
    PayloadTooLargeError: 413,
    InvalidRequestError: 422,
    SourceNotFoundError: 404,
    IndexNotFoundError: 404,
    IndexCorruptError: 503,
    IndexBusyError: 409,
    ModelMismatchError: 409,
    ModelUnavailableError: 503,
    ShardUnavailableError: 503,
}

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in [
        (400, "The request body is not JSON: not UTF-8, a lone surrogate, nested too deep."),
        (401, "An API key is needed (FINDLING_READ_API_KEY / FINDLING_API_KEY) or it is wrong."),
        (409, "The index was built with another model, or another process is writing it."),
        (413, "The request body, a document or an input is too large."),
        (421, "The Host header names a host this server does not answer for."),
        (422, "The request is invalid (empty query, k out of range, wrong types, too many)."),
        (404, "No such collection or index yet (code index_not_found), or no such document."),
        (431, "The request line and headers are too large."),
        (503, "The index is damaged, the model cannot be loaded, or a shard has no live replica."),
    ]
}
READY_RESPONSES: dict[int | str, dict[str, Any]] = {
    503: {"model": ErrorResponse, "description": "Not ready: no index or no model yet."}
}
WRITE_RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES,
    403: {"model": ErrorResponse, "description": "Writes are disabled: no API key configured."},
}


class HTTPError(StarletteHTTPException):
    """An error only HTTP has (a body that is not JSON, for one), with the shape's code and hint.

    A Starlette HTTPException, so FastAPI lets it through while it reads a body.
    """

    def __init__(self, status: int, code: str, message: str, hint: str = "") -> None:
        super().__init__(status, message)
        self.code = code
        self.hint = hint


# codes for the framework's own HTTP errors
HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    421: "host_not_allowed",
    431: "headers_too_large",
}


def error_response(
    status: int, code: str, message: str, hint: str = "", details: Any = ()
) -> JSONResponse:
    body = ErrorResponse(
        error=ErrorBody(code=code, message=message, hint=hint, details=list(details))
    )
    return JSONResponse(status_code=status, content=jsonable_encoder(body))


async def _domain(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, FindlingError)
    status = next((s for cls, s in STATUS.items() if isinstance(exc, cls)), 500)
    response = error_response(status, exc.code, exc.message, exc.hint)
    if isinstance(exc, IndexBusyError):
        # another process holds the collection's writer lock (writes of this server queue
        # instead): a client may simply try again
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors()
    ]
    return error_response(422, "invalid_request", "the request is not valid", "", details)


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if isinstance(exc, HTTPError):
        return error_response(exc.status_code, exc.code, str(exc.detail), exc.hint)
    code = HTTP_CODES.get(exc.status_code, "http_error")
    response = error_response(exc.status_code, code, str(exc.detail))
    if exc.status_code == 405:
        # HTTP asks for Allow; Starlette names only the first route's methods, so gather all
        response.headers["Allow"] = ", ".join(_allowed_methods(request))
    return response


def _allowed_methods(request: Request) -> list[str]:
    """The methods some route answers at this path, found by matching each as the router does."""
    return [
        method
        for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL
            for route in request.app.router.routes
        )
    ]


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s", request.url.path)
    return error_response(500, "internal_error", "internal server error", "see the server log")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(FindlingError, _domain)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)
