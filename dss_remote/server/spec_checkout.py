"""The hand-written OpenAPI paths of checkout (merged by openapi_spec.py; its rules apply: the real
`hca` client builds `post-bundles-checkout` and `get-bundles-checkout` from them). No `security`:
a checkout needs read access, as the read routes, so public bundles work anonymously."""

from __future__ import annotations

from typing import Any

_ERROR = {"type": "object", "properties": {"status": {"type": "integer"}, "code": {"type": "string"},
                                           "title": {"type": "string"}}}


def _param(name: str, where: str, description: str, *, required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": where, "description": description, "required": required,
            "schema": {"type": "string"}}


def _json(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": schema or {"type": "object"}}}}


def _errors(*codes: int) -> dict[str, Any]:
    names = {400: "Bad input, or a destination the store does not allow or the server cannot reach "
                  "(the title names it).",
             401: "Sign in: the dataset is not public.", 403: "The caller may not read this dataset.",
             404: "No such bundle version (or checkout job).",
             503: "The server is read-only, or cannot start the checkout now; retry after Retry-After "
                  "seconds."}
    return {str(c): _json(names[c], _ERROR) for c in codes}


_STATUS = {"type": "object", "properties": {
    "status": {"type": "string", "enum": ["RUNNING", "SUCCEEDED", "FAILED"]},
    "cause": {"type": "string"}, "checkout_job_id": {"type": "string"},
    "location": {"type": "string"}, "files": {"type": "integer"}, "copied": {"type": "integer"},
    "already_present": {"type": "integer"}, "bytes_copied": {"type": "integer"}}}


def paths() -> dict[str, Any]:
    return {
        "/bundles/{uuid}/checkout": {"post": {
            "summary": "Copy a bundle version to bundles/{uuid}.{version}/{name} in a destination.",
            "description": "destination: s3://BUCKET[/PREFIX], gs://BUCKET[/PREFIX], a bucket name of the "
                           "replica's cloud, or an absolute directory under the store's "
                           "server.checkout_dirs. "
                           "A second checkout of the same version to the same place copies nothing.",
            "parameters": [_param("uuid", "path", "A bundle uuid.", required=True),
                           _param("replica", "query", "The replica to copy from first: aws, gcp or a "
                                  "replica's name (any replica holding a file serves it)."),
                           _param("version", "query", "A version like 2026-11-22T031533.123456Z; the "
                                  "newest without one.")],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["destination"],
                "properties": {"destination": {"type": "string", "description": "Where to copy to."},
                               "email": {"type": "string", "description": "Kept with the job."}}}}}},
            "responses": {"200": _json("The job started: {checkout_job_id}.", {
                "type": "object", "properties": {"checkout_job_id": {"type": "string"}}}),
                **_errors(400, 401, 403, 404, 503)}}},
        "/bundles/checkout/{checkout_job_id}": {"get": {
            "summary": "A checkout job's status: RUNNING, SUCCEEDED or FAILED (with cause), and its counts.",
            "parameters": [_param("checkout_job_id", "path", "The id POST .../checkout returned.",
                                  required=True),
                           _param("replica", "query", "Ignored (jobs are the store's).")],
            "responses": {"200": _json("The status.", _STATUS), **_errors(401, 403, 404)}}},
    }
