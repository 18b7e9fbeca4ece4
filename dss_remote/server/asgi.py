"""The ASGI entry point `dss serve` gives uvicorn: one app per worker process, from the environment.

uvicorn starts `--workers N` processes that each import this module and call `app()`; the store and
options reach them as environment variables set by `dss serve` (cli/serve.py), so every worker
builds the same app. Nothing here is state: tokens, ACLs and indexes are read from the store.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from fastapi import FastAPI

from ..access.store_gate import StoreGate
from .app import create_app
from .serve_env import CACHE_DIR_VAR, DEFAULT_THREADS, PUBLIC_URL_VAR, READ_ONLY_VAR, STORE_VAR, THREADS_VAR

logger = logging.getLogger(__name__)

__all__ = ["CACHE_DIR_VAR", "DEFAULT_THREADS", "PUBLIC_URL_VAR", "READ_ONLY_VAR", "STORE_VAR", "THREADS_VAR",
           "app"]


def app() -> FastAPI:
    """The app over the store `DSS_SERVE_STORE` names (uvicorn's `--factory`)."""
    store = Path(os.environ[STORE_VAR])
    cache = os.environ.get(CACHE_DIR_VAR)
    return create_app(store, StoreGate(store), public_url=os.environ.get(PUBLIC_URL_VAR) or None,
                      cache_dir=Path(cache) if cache else None,
                      threads=int(os.environ.get(THREADS_VAR) or DEFAULT_THREADS),
                      read_only=os.environ.get(READ_ONLY_VAR) == "1")
