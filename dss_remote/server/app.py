"""The ASGI application of one store: its routers, error handlers and CORS."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import anyio.to_thread
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from ..access.gate import Gate
from ..config.store_config import read_config
from . import (
    bundles_api,
    checkout_api,
    collections_api,
    errors,
    events_api,
    files_api,
    health,
    meta_api,
    search_api,
    uploads_api,
    write_api,
)
from .file_index import FileIndex
from .ria_tree import router as ria_tree_router
from .subscriptions_api import router as subscriptions_router

logger = logging.getLogger(__name__)


def _thread_limit(threads: int | None) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """A lifespan setting the worker's thread pool size (anyio's default limiter, which FastAPI's
    sync routes and Starlette's streams share) once its event loop runs, and starting the search
    index's catch-up."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if threads is not None:
            anyio.to_thread.current_default_thread_limiter().total_tokens = threads
        search_api.start(app)
        yield
        search_api.stop(app)

    return lifespan


def create_app(store_root: Path, gate: Gate, *, public_url: str | None = None,
               cache_dir: Path | None = None, threads: int | None = None,
               read_only: bool = False) -> FastAPI:
    """The API of the store at `store_root`, asking `gate` who may do what.

    `public_url` is the URL clients reach the server at (behind a proxy); absolute links (paging,
    the spec's server URL) use it, else the request's own base URL. `cache_dir` holds the derived
    file index (default: under `$XDG_CACHE_HOME/dss-remote/serve/`). `threads` bounds the
    threads that run blocking work (sync routes, file reads) in this process (default: anyio's).
    `read_only` answers every write with 503 and `Retry-After`.
    """
    settings = read_config(store_root).server
    app = FastAPI(title="dss-remote", docs_url=None, redoc_url=None, openapi_url=None,
                  lifespan=_thread_limit(threads))
    app.state.store_root = store_root
    app.state.gate = gate
    app.state.public_url = public_url.rstrip("/") if public_url else None
    app.state.settings = settings
    app.state.read_only = read_only
    app.state.file_index = FileIndex(store_root, cache_dir)
    app.state.search_index = search_api.ServedIndex(store_root)
    errors.install(app)
    app.include_router(checkout_api.router)  # /v1/bundles/checkout/... before /v1/bundles/{uuid}
    app.include_router(write_api.router)
    app.include_router(bundles_api.router)
    app.include_router(uploads_api.router)
    app.include_router(collections_api.router)
    app.include_router(files_api.router)
    app.include_router(events_api.router)
    app.include_router(search_api.router)
    app.include_router(meta_api.router)
    app.include_router(ria_tree_router)
    app.include_router(subscriptions_router)
    app.include_router(health.router)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins),
                           allow_methods=["GET", "HEAD", "PUT", "POST", "PATCH", "DELETE"],
                           allow_headers=["Authorization", "Content-Type", "Range", "Upload-Offset",
                                          "Upload-Length", "Tus-Resumable", "Upload-Metadata"],
                           expose_headers=["Link", "X-OpenAPI-Pagination",
                                           "X-OpenAPI-Paginated-Content-Key", "Content-Range",
                                           "Location", "Upload-Offset", "Upload-Length",
                                           "Tus-Resumable", "Retry-After"])
    return app
