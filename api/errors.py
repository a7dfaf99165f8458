"""One JSON error shape for every error, mapped once from domain and framework errors."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.schemas import ErrorBody, ErrorResponse
from indexer.errors import (
    FindlingError,
    IndexCorruptError,
    IndexNotFoundError,
    InvalidRequestError,
    ModelMismatchError,
    ModelUnavailableError,
    SourceNotFoundError,
)

log = logging.getLogger(__name__)

STATUS: dict[type[FindlingError], int] = {
    InvalidRequestError: 422,
    SourceNotFoundError: 404,
    IndexNotFoundError: 503,
    IndexCorruptError: 503,
    ModelMismatchError: 409,
    ModelUnavailableError: 503,
}

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in [
        (409, "The index was built with another model."),
        (422, "The request is invalid (empty query, k out of range, wrong types)."),
        (503, "No usable index or model yet."),
    ]
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
    return error_response(status, exc.code, exc.message, exc.hint)


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors()
    ]
    return error_response(422, "invalid_request", "the request is not valid", "", details)


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s", request.url.path)
    return error_response(500, "internal_error", "internal server error", "see the server log")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(FindlingError, _domain)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)
