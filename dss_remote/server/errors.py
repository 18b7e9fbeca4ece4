"""Every error a client sees: the HCA DSS body `{status, code, title}`, never a stack trace.

Handlers turn our ApiError, FastAPI's validation errors, Starlette's HTTP errors and anything
unexpected into that body. Expected failures are 4xx: the hca client retries 5xx for minutes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ria_store.errors import one_line

logger = logging.getLogger(__name__)

#: the `code` of errors raised below our routes, by HTTP status
_GENERIC_CODES = {400: "illegal_arguments", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                  405: "method_not_allowed", 416: "range_not_satisfiable", 503: "unavailable"}


class ApiError(Exception):
    """An expected failure: the status, a DSS error `code` and a one-line `title` naming the fix."""

    def __init__(self, status: int, code: str, title: str, headers: Mapping[str, str] | None = None):
        super().__init__(title)
        self.status, self.code, self.title = status, code, one_line(title)
        self.headers = dict(headers or {})


class NeedsThread(Exception):
    """Not an error: the quick path of a request (run on the event loop) reached a step that may
    wait (a network replica, an index refresh, a subprocess, a JWT's keys); run the request in
    the thread pool instead. Raised before the quick path changed anything."""


def error_response(status: int, code: str, title: str, headers: Mapping[str, str] | None = None
                   ) -> JSONResponse:
    return JSONResponse({"status": status, "code": code, "title": title}, status_code=status,
                        headers=dict(headers or {}))


def install(app: FastAPI) -> None:
    """Make every error of `app` a DSS error body."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.title, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors()[:3]:
            where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("query", "path", "body"))
            parts.append(f"{where}: {err.get('msg', 'invalid')}" if where else str(err.get("msg")))
        return error_response(400, "illegal_arguments", one_line("; ".join(parts) or "bad request"))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _GENERIC_CODES.get(exc.status_code, "error")
        return error_response(exc.status_code, code, one_line(exc.detail), exc.headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return error_response(500, "unhandled_exception",
                              "the server failed on this request; the error is in its log")
