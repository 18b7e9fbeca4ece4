"""GET /v1/version, GET /v1/swagger.json (the spec the hca client reads) and GET /docs (its page)."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse

from . import openapi_spec
from .paging import base_url

router = APIRouter()


@router.get("/v1/version")
def get_version() -> JSONResponse:
    return JSONResponse({"version_info": {"version": openapi_spec.server_version()}})


@router.get("/v1/swagger.json")
def get_spec(request: Request) -> JSONResponse:
    return JSONResponse(openapi_spec.build(base_url(request) + "/v1"))


@router.get("/docs")
def get_docs() -> HTMLResponse:
    # a small self-made page shipped in the package: no CDN, nothing fetched from elsewhere
    page = resources.files(__package__).joinpath("static/docs.html").read_text(encoding="utf-8")
    return HTMLResponse(page)
