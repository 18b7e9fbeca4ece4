"""The hand-written OpenAPI paths of collections (merged by openapi_spec.py; its rules apply)."""

from __future__ import annotations

from typing import Any

_SECURITY: list[dict[str, list[str]]] = [{"bearer": []}]
_ERROR = {"type": "object", "properties": {"status": {"type": "integer"}, "code": {"type": "string"},
                                           "title": {"type": "string"}}}
_ITEM = {"type": "object", "required": ["type", "uuid", "version"],
         "properties": {"type": {"type": "string", "enum": ["file", "bundle", "collection"]},
                        "uuid": {"type": "string"},
                        "version": {"type": "string"},
                        "path": {"type": "string"}}}
_ITEMS = {"type": "array", "items": _ITEM, "description": "At most 1000 {type, uuid, version, path?}; "
          "repeats are dropped, the first kept."}


def _param(name: str, where: str, description: str, *, required: bool = False,
           type_: str = "string") -> dict[str, Any]:
    return {"name": name, "in": where, "description": description, "required": required,
            "schema": {"type": type_}}


def _json(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": schema or {"type": "object"}}}}


def _errors(*codes: int) -> dict[str, Any]:
    names = {400: "Bad input (the title names it).", 401: "Sign in: collections belong to a user.",
             403: "Only the owner may change a collection.", 404: "No such collection of the caller.",
             409: "That uuid and version hold another document, or the uuid is taken.",
             422: "invalid_link: a linked file, bundle or collection version does not exist or "
                  "the caller may not read it.",
             503: "The server is read-only; retry after Retry-After seconds."}
    return {str(c): _json(names[c], _ERROR) for c in codes}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


_REPLICA = _param("replica", "query", "aws or gcp (collections are kept in the store, the same for both).")
_UUID = _param("uuid", "path", "The collection's uuid.", required=True)
_FQID = {"type": "object", "properties": {"uuid": {"type": "string"}, "version": {"type": "string"}}}


def paths() -> dict[str, Any]:
    return {
        "/collections": {
            "get": {
                "summary": "List the caller's collections (every version).",
                "security": _SECURITY,
                "parameters": [_REPLICA,
                               _param("per_page", "query", "Items per page (10-500, default 500).",
                                      type_="integer"),
                               _param("start_at", "query", "Index of the first item of the page (from 0).",
                                      type_="integer")],
                "responses": {"200": _json("{collections: [{uuid, version}]} (last page)."),
                              "206": _json("A page that is not the last; the Link header names the next."),
                              **_errors(400, 401)}},
            "put": {
                "summary": "Create a collection version owned by the caller.",
                "security": _SECURITY,
                "parameters": [_REPLICA,
                               _param("uuid", "query", "The collection's uuid (a new UUID for a new "
                                      "collection).", required=True),
                               _param("version", "query", "The version, like 2026-11-22T031533.123456Z.",
                                      required=True)],
                "requestBody": _body({
                    "type": "object", "required": ["name", "description", "details", "contents"],
                    "properties": {"name": {"type": "string", "description": "A short name."},
                                   "description": {"type": "string", "description": "A description."},
                                   "details": {"type": "object", "description": "Any JSON object."},
                                   "contents": _ITEMS}}),
                "responses": {"201": _json("Created: {uuid, version}.", _FQID),
                              "200": _json("An identical version already exists: {uuid, version}.", _FQID),
                              **_errors(400, 401, 409, 422, 503)}}},
        "/collections/{uuid}": {
            "get": {
                "summary": "Retrieve one of the caller's collections.",
                "security": _SECURITY,
                "parameters": [_UUID, _REPLICA,
                               _param("version", "query", "The version; the newest without one.")],
                "responses": {"200": _json("{uuid, version, owner, created, name, description, details, "
                                           "contents}."),
                              **_errors(400, 401, 404)}},
            "patch": {
                "summary": "Change a collection: writes a new version.",
                "security": _SECURITY,
                "parameters": [_UUID, _REPLICA,
                               _param("version", "query", "The version this patch changes.", required=True)],
                "requestBody": _body({
                    "type": "object",
                    "properties": {"name": {"type": "string", "description": "A new name."},
                                   "description": {"type": "string", "description": "A new description."},
                                   "details": {"type": "object", "description": "New details."},
                                   "add_contents": _ITEMS,
                                   "remove_contents": _ITEMS}}),
                "responses": {"200": _json("The new version: {uuid, version}.", _FQID),
                              **_errors(400, 401, 403, 404, 422, 503)}},
            "delete": {
                "summary": "Delete a collection (every version).",
                "security": _SECURITY,
                "parameters": [_UUID, _REPLICA],
                "responses": {"200": _json("Deleted: {}."), **_errors(400, 401, 404, 503)}}},
    }
