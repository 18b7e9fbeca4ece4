"""The ASGI application of one store: its routers, error handlers and CORS."""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from ..access.gate import Gate
from ..config.store_config import read_config
from . import bundles_api, errors, events_api, files_api, health, meta_api
from .file_index import FileIndex
from .ria_tree import router as ria_tree_router
from .subscriptions_api import router as subscriptions_router

logger = logging.getLogger(__name__)


def create_app(store_root: Path, gate: Gate, *, public_url: str | None = None,
               cache_dir: Path | None = None) -> FastAPI:
    """The API of the store at `store_root`, asking `gate` who may do what.

    `public_url` is the URL clients reach the server at (behind a proxy); absolute links (paging,
    the spec's server URL) use it, else the request's own base URL. `cache_dir` holds the derived
    file index (default: under `$XDG_CACHE_HOME/dss-remote/serve/`).
    """
    settings = read_config(store_root).server
    app = FastAPI(title="dss-remote", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.store_root = store_root
    app.state.gate = gate
    app.state.public_url = public_url.rstrip("/") if public_url else None
    app.state.settings = settings
    app.state.file_index = FileIndex(store_root, cache_dir)
    errors.install(app)
    app.include_router(bundles_api.router)
    app.include_router(files_api.router)
    app.include_router(events_api.router)
    app.include_router(meta_api.router)
    app.include_router(ria_tree_router)
    app.include_router(subscriptions_router)
    app.include_router(health.router)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins),
                           allow_methods=["GET", "HEAD", "PUT", "POST", "PATCH", "DELETE"],
                           allow_headers=["Authorization", "Content-Type", "Range"],
                           expose_headers=["Link", "X-OpenAPI-Pagination",
                                           "X-OpenAPI-Paginated-Content-Key", "Content-Range"])
    return app
