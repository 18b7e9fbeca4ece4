"""A tiny app whose one route serves a manifest row through `server.content.respond`, as the files
route will: `GET|HEAD /t/{dsid}/{path}?replica=`; the row is the latest bundle's row for `path`.

`app()` is a uvicorn factory (api_server's `factory="content_app:app"`): the store from
DSS_TEST_STORE, a GateDouble from DSS_TEST_GATE; `make_app` builds it in-process for TestClient.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.responses import Response
from gate_double import GateDouble

from dss_remote.access.gate import Gate, Identity
from dss_remote.history import bundle_store
from dss_remote.server.app import create_app
from dss_remote.server.caller import caller, require_read
from dss_remote.server.content import respond
from dss_remote.server.errors import ApiError


def make_app(store: Path, gate: Gate) -> FastAPI:
    app = create_app(store, gate)

    @app.api_route("/t/{dsid}/{path:path}", methods=["GET", "HEAD"])
    def file(dsid: str, path: str, request: Request, who: Annotated[Identity | None, Depends(caller)],
             replica: str | None = None) -> Response:
        require_read(request, who, dsid)
        rows = [r for r in bundle_store.load(store, dsid).files if r["path"] == path]
        if not rows:
            raise ApiError(404, "not_found", f"no file {path}")
        return respond(request, store, dsid, rows[0], replica, {"X-DSS-SIZE": str(rows[0]["size"])})

    return app


def app() -> FastAPI:
    return make_app(Path(os.environ["DSS_TEST_STORE"]), GateDouble.from_env())
