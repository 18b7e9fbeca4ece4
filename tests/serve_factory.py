"""The ASGI app api_server.py runs under uvicorn: the store from DSS_TEST_STORE, a GateDouble
from DSS_TEST_GATE (uvicorn imports this module with tests/ on its path: `--app-dir tests`)."""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI
from gate_double import GateDouble

from dss_remote.server.app import create_app


def app() -> FastAPI:
    return create_app(Path(os.environ["DSS_TEST_STORE"]), GateDouble.from_env(),
                      public_url=os.environ.get("DSS_TEST_PUBLIC_URL") or None,
                      read_only=os.environ.get("DSS_TEST_READ_ONLY") == "1")
