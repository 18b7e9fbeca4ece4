"""An ASGI app for api_server.py with the real StoreGate over DSS_TEST_STORE, plus a probe route
that reads a dataset and names the worker process that answered."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, Request

from dss_remote.access.gate import Identity
from dss_remote.access.store_gate import StoreGate
from dss_remote.server.app import create_app
from dss_remote.server.caller import caller, require_read


def app() -> FastAPI:
    store = Path(os.environ["DSS_TEST_STORE"])
    application = create_app(store, StoreGate(store))

    @application.get("/v1/probe/{dsid}")
    def probe(dsid: str, request: Request, who: Annotated[Identity | None, Depends(caller)]
              ) -> dict[str, object]:
        require_read(request, who, dsid)
        return {"user": who.user if who else None, "pid": os.getpid()}

    return application
