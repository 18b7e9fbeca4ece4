"""The ASGI application of one store: its routers, error handlers and CORS."""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from ..access.gate import Gate
from ..config.store_config import read_config
from . import errors, health

logger = logging.getLogger(__name__)


def create_app(store_root: Path, gate: Gate, *, public_url: str | None = None) -> FastAPI:
    """The API of the store at `store_root`, asking `gate` who may do what.

    `public_url` is the URL clients reach the server at (behind a proxy); absolute links (paging,
    the spec's server URL) use it, else the request's own base URL.
    """
    settings = read_config(store_root).server
    app = FastAPI(title="dss-remote", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.store_root = store_root
    app.state.gate = gate
    app.state.public_url = public_url.rstrip("/") if public_url else None
    app.state.settings = settings
    errors.install(app)
    app.include_router(health.router)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins),
                           allow_methods=["GET", "HEAD", "PUT", "POST", "PATCH", "DELETE"],
                           allow_headers=["Authorization", "Content-Type", "Range"],
                           expose_headers=["Link", "X-OpenAPI-Pagination",
                                           "X-OpenAPI-Paginated-Content-Key", "Content-Range"])
    return app
