"""The hand-written OpenAPI paths of the write API (merged by openapi_spec.py; its rules apply:
the real `hca` client builds `put-file`, `put-bundle`, `patch-bundle`, `delete-bundle` and
`hca dss upload` from them). Direct uploads (tus) are not in it: tus clients need no spec."""

from __future__ import annotations

from typing import Any

_SECURITY: list[dict[str, list[str]]] = [{"bearer": []}]
_ERROR = {"type": "object", "properties": {"status": {"type": "integer"}, "code": {"type": "string"},
                                           "title": {"type": "string"}}}


def _param(name: str, where: str, description: str, *, required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": where, "description": description, "required": required,
            "schema": {"type": "string"}}


def _json(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": schema or {"type": "object"}}}}


def _body(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "properties": properties, "required": required}}}}


def _errors(*codes: int) -> dict[str, Any]:
    names = {400: "Bad input (the title names it).", 401: "Sign in: writes need a token.",
             403: "The caller may not write this dataset (or create one, or delete).",
             404: "Not found.", 409: "That uuid and version hold something else.",
             422: "The checksums declared for the staged object are not its bytes'.",
             503: "The server is read-only, or a replica cannot take the content; retry after "
                  "Retry-After seconds."}
    return {str(c): _json(names[c], _ERROR) for c in codes}


_UUID = _param("uuid", "path", "A file or bundle uuid.", required=True)
_REPLICA = _param("replica", "query", "aws or gcp (a write goes to every replica of the store).")
_VERSION = _param("version", "query", "The version, e.g. 2026-11-22T031533.123456Z (the client chooses it).",
                  required=True)
_FILES = {"type": "array", "items": {"type": "object", "properties": {
    "uuid": {"type": "string"}, "version": {"type": "string"}, "name": {"type": "string"},
    "indexed": {"type": "boolean"}}}, "description": "The bundle's files: {uuid, version, name, indexed}."}


def paths() -> dict[str, Any]:
    return {
        "/files/{uuid}": {"put": {
            "summary": "Deposit a file version from a staging bucket (s3:// or gs://) the store allows, "
                       "or from a finished direct upload (its /v1/uploads/ URL).",
            "security": _SECURITY,
            "parameters": [_UUID, _VERSION],
            "requestBody": _body({"creator_uid": {"type": "integer"}, "source_url": {"type": "string"},
                                  "bundle_uuid": {"type": "string"}, "content_type": {"type": "string"}},
                                 ["creator_uid", "source_url"]),
            "responses": {"200": _json("The identical file version exists."),
                          "201": _json("Deposited: {version}."), **_errors(400, 401, 403, 404, 409,
                                                                           422, 503)}}},
        "/bundles/{uuid}": {
            "put": {"summary": "Write a bundle version holding exactly these files (a new dataset for a "
                               "new uuid).",
                    "security": _SECURITY,
                    "parameters": [_UUID, _REPLICA, _VERSION],
                    "requestBody": _body({"creator_uid": {"type": "integer"}, "files": _FILES},
                                         ["creator_uid", "files"]),
                    "responses": {"200": _json("The identical version exists."),
                                  "201": _json("Written: {version}."), **_errors(400, 401, 403, 409, 503)}},
            "patch": {"summary": "A new version: the named version's files plus add_files, less "
                                 "remove_files (at most 1000 each).",
                      "security": _SECURITY,
                      "parameters": [_UUID, _REPLICA, _VERSION],
                      "requestBody": _body({"add_files": _FILES, "remove_files": _FILES,
                                            "creator_uid": {"type": "integer"}}, []),
                      "responses": {"200": _json("Written: {uuid, version}."),
                                    **_errors(400, 401, 403, 404, 409, 503)}},
            "delete": {"summary": "Tombstone a bundle version, or all of them without version (admins).",
                       "security": _SECURITY,
                       "parameters": [_UUID, _REPLICA,
                                      _param("version", "query", "The version; all without one.")],
                       "requestBody": _body({"reason": {"type": "string"}}, ["reason"]),
                       "responses": {"200": _json("Deleted."), **_errors(400, 401, 403, 404, 409, 503)}}},
    }
