"""One JSON shape for every error the service answers:

    {"error": {"status": 415, "code": "unsupported_media_type",
               "message": "the upload is not an image", "expected": "an image (JPEG, PNG...)", "got": "a PDF document"}}

:class:`ApiError` is raised by the routes; the handlers installed by :func:`install_handlers` turn
it, FastAPI's validation errors and Starlette's HTTP errors into that shape. An unexpected
exception becomes a 500 in the same shape (and is logged), never a bare traceback.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("detect.serve")

_CODES = {400: "bad_request", 401: "unauthorized", 404: "not_found", 405: "method_not_allowed", 409: "conflict",
          413: "payload_too_large", 415: "unsupported_media_type", 422: "unprocessable", 429: "too_many_requests",
          500: "internal_error", 503: "unavailable"}


class ErrorBody(BaseModel):
    """What went wrong: HTTP status, a stable code, a sentence, and what was expected and what came."""

    status: int
    code: str
    message: str
    expected: str | None = None
    got: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


class ApiError(Exception):
    """An answer other than success: ``status`` (4xx/5xx), a sentence, what was expected and what came.

    ``headers`` go with the answer (``Retry-After`` on a 503, ``WWW-Authenticate`` on a 401).
    """

    def __init__(self, status: int, message: str, *, expected: str | None = None, got: str | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.body = ErrorBody(status=status, code=code or _CODES.get(status, "error"), message=message,
                              expected=expected, got=got)
        self.headers = headers

    @property
    def status(self) -> int:
        return self.body.status


def error_response(error: ApiError) -> JSONResponse:
    return JSONResponse(ErrorResponse(error=error.body).model_dump(), status_code=error.status, headers=error.headers)


#: the error shape for the OpenAPI document: ``responses=ERROR_RESPONSES`` on a route
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": code.replace("_", " ")}
    for status, code in _CODES.items() if status in (400, 401, 404, 413, 415, 422, 503)
}


def install_handlers(app: FastAPI) -> None:
    """Answer every error of ``app`` in the :class:`ErrorResponse` shape."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [f"{'.'.join(str(p) for p in e['loc'] if p != 'body')}: {e['msg']}" for e in exc.errors()]
        got = "; ".join(repr(e.get("input"))[:80] for e in exc.errors() if e.get("input") is not None) or None
        return error_response(ApiError(422, "invalid request: " + "; ".join(problems), got=got))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = f"no route {request.method} {request.url.path}; the API is described at /docs"
        return error_response(ApiError(exc.status_code, message, headers=getattr(exc, "headers", None)))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(ApiError(500, f"internal error ({type(exc).__name__}); the server log has the details"))
