"""The OpenAPI 3 spec of the DSS routes, written by hand for the real `hca` client (7.0.1).

What that client needs (docs/serve.md): `servers[0].url` absolute and ending in `/v1`, path keys
without `/v1`, `info.description`, only methods under a path item, `responses` on each operation,
every schema property a plain `type`, `206` listed where paging happens, `security` only where a
token is required. Defaults are said in descriptions, not declared: the client would send them.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

from . import spec_checkout, spec_collections, spec_search, spec_writes


def server_version() -> str:
    """The installed dss-remote's version (the server may not import the package root)."""
    try:
        return metadata.version("dss-remote")
    except metadata.PackageNotFoundError:
        return "unknown"


DESCRIPTION = ("The HCA Data Store v1 API over a dss-remote store: bundles are DataLad datasets, "
               "bundle versions are pushes, files are the datasets' paths.")


def _param(name: str, where: str, description: str, *, required: bool = False,
            enum: list[str] | None = None, type_: str = "string") -> dict[str, Any]:
    schema: dict[str, Any] = {"type": type_}
    if enum:
        schema["enum"] = enum
    return {"name": name, "in": where, "description": description, "required": required,
            "schema": schema}


_UUID = _param("uuid", "path", "A bundle (dataset) or file uuid.", required=True)
_REPLICA = _param("replica", "query", "Replica to read from: aws or gcp (both are served from this store).",
                  enum=["aws", "gcp"])
_VERSION = _param("version", "query", "A version like 2026-11-22T031533.123456Z; the newest without one.")
_ERROR = {"type": "object", "properties": {"status": {"type": "integer"}, "code": {"type": "string"},
                                           "title": {"type": "string"}}}
_JSON_OBJECT = {"type": "object"}


def _json(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": schema or _JSON_OBJECT}}}


_PAGE = _json("A page that is not the last; the Link header names the next.")


def _errors(*codes: int) -> dict[str, Any]:
    names = {400: "Bad input (the title names the parameter).", 401: "Sign in: the dataset is not public.",
             403: "The caller may not read this dataset.", 404: "Not found."}
    return {str(c): _json(names[c], _ERROR) for c in codes}


def _paths() -> dict[str, Any]:
    per_page = "Items per page ({}-{}, default {})."
    return {
        "/bundles/{uuid}": {"get": {
            "summary": "Retrieve a bundle version: its files, paged.",
            "parameters": [_UUID, _REPLICA, _VERSION,
                           _param("per_page", "query", per_page.format(10, 500, 500), type_="integer"),
                           _param("start_at", "query", "Index of the first file of the page (from 0).",
                                  type_="integer")],
            "responses": {"200": _json("The bundle (last page)."), "206": _PAGE,
                          **_errors(400, 401, 403, 404)}}},
        "/bundles/all": {"get": {
            "summary": "List the bundle versions the caller may read.",
            "parameters": [_REPLICA, _param("prefix", "query", "The start of a bundle uuid."),
                           _param("per_page", "query", per_page.format(10, 500, 100), type_="integer"),
                           _param("search_after", "query", "<uuid>.<version> of the last bundle of the "
                                  "previous page.")],
            "responses": {"200": _json("Bundles (last page)."), "206": _PAGE,
                          **_errors(400)}}},
        "/files/{uuid}": {
            "get": {"summary": "Retrieve a file version's content.",
                    "parameters": [_UUID, _REPLICA, _VERSION],
                    "responses": {"200": {"description": "The content; X-DSS-* headers describe it.",
                                          "content": {"application/octet-stream": {
                                              "schema": {"type": "string", "format": "binary"}}}},
                                  "302": {"description": "The content is at the Location URL."},
                                  **_errors(400, 401, 403, 404)}},
            "head": {"summary": "Retrieve a file version's metadata (X-DSS-* headers).",
                     "parameters": [_UUID, _REPLICA, _VERSION],
                     "responses": {"200": {"description": "X-DSS-* headers, no body."},
                                   **_errors(400, 401, 403, 404)}}},
        "/events": {"get": {
            "summary": "List events (bundle versions created) the caller may read, oldest first.",
            "parameters": [_REPLICA,
                           _param("from_date", "query",
                                  "From this time (inclusive), e.g. 2026-11-22T03:15:33Z."),
                           _param("to_date", "query", "To this time (exclusive)."),
                           _param("per_page", "query", per_page.format(1, 500, 100), type_="integer"),
                           _param("start_after", "query", "The event_id of the last event of the "
                                  "previous page.")],
            "responses": {"200": _json("Events (last page)."), "206": _PAGE,
                          **_errors(400)}}},
        "/events/{uuid}": {"get": {
            "summary": "Retrieve a bundle version's metadata document (the event payload).",
            "parameters": [_UUID, _REPLICA,
                           _param("version", "query", "The bundle version.", required=True)],
            "responses": {"200": _json("The metadata document."), **_errors(400, 401, 403, 404)}}},
        "/version": {"get": {
            "summary": "The server's version.", "parameters": [],
            "responses": {"200": _json("{version_info: {version}}.")}}},
    }


def _merged(*parts: dict[str, Any]) -> dict[str, Any]:
    """Path items of several modules: a path two modules describe gets the methods of both."""
    out: dict[str, Any] = {}
    for part in parts:
        for path, item in part.items():
            out.setdefault(path, {}).update(item)
    return out


def build(api_url: str) -> dict[str, Any]:
    """The spec of a server whose API is at `api_url` (absolute, ending in `/v1`)."""
    return {
        "openapi": "3.0.3",
        "info": {"title": "dss-remote: HCA Data Store API", "version": server_version(),
                 "description": DESCRIPTION},
        "servers": [{"url": api_url}],
        "paths": _merged(_paths(), spec_writes.paths(), spec_collections.paths(), spec_checkout.paths(),
                         spec_search.paths()),
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }
