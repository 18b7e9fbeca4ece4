"""Direct uploads under `/v1/uploads`: the tus 1.0.0 core protocol and its creation and termination
extensions (service/uploads.py says why tus). The body of a PATCH is streamed to disk as it
arrives, never held whole; a cut connection keeps what arrived, and HEAD tells where to go on.
An upload is its creator's: another caller gets 404, as if it did not exist.
"""

from __future__ import annotations

import base64
import binascii
import logging

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from ria_store.errors import DssError, NotFoundError

from ..access.gate import Identity
from ..service import uploads
from .app_state import store_root
from .caller import caller
from .errors import ApiError
from .paging import base_url
from .write_access import audit_write, signed_in, writable

logger = logging.getLogger(__name__)

router = APIRouter()

TUS_VERSION = "1.0.0"
_TUS = {"Tus-Resumable": TUS_VERSION}


def upload_url(request: Request, upload_id: str) -> str:
    """The absolute URL of an upload: what the client PATCHes, and names as a `source_url`."""
    return f"{base_url(request)}/v1/uploads/{upload_id}"


def _who(request: Request) -> Identity:
    return signed_in(request, caller(request), "uploading")


def _header_int(request: Request, name: str) -> int:
    value = request.headers.get(name)
    if value is None or not value.isdigit():
        raise ApiError(400, "illegal_arguments", f"header {name} must be a whole number of bytes (got "
                       f"{value!r})")
    return int(value)


def _metadata(value: str | None) -> dict[str, str]:
    """tus Upload-Metadata: `key base64value, key2 base64value2`."""
    out: dict[str, str] = {}
    for item in (value or "").split(","):
        if not item.strip():
            continue
        key, _, b64 = item.strip().partition(" ")
        try:
            out[key] = base64.b64decode(b64, validate=True).decode() if b64 else ""
        except (binascii.Error, UnicodeDecodeError) as e:
            raise ApiError(400, "illegal_arguments", f"Upload-Metadata {key!r} is not base64 of UTF-8 "
                           "text") from e
    return out


def _mine(request: Request, who: Identity, upload_id: str) -> uploads.Upload:
    try:
        upload = uploads.get(store_root(request), upload_id)
    except NotFoundError as e:
        raise ApiError(404, "not_found", str(e)) from e
    if upload.owner != who.user:
        raise ApiError(404, "not_found", f"no upload {upload_id} of {who.user}; start one with "
                       "POST /v1/uploads")
    return upload


@router.options("/v1/uploads")
def options() -> Response:
    return Response(status_code=204, headers={**_TUS, "Tus-Version": TUS_VERSION,
                                              "Tus-Extension": "creation,termination",
                                              "Tus-Max-Size": str(uploads.MAX_LENGTH)})


@router.post("/v1/uploads")
def create(request: Request) -> Response:
    writable(request)
    who = _who(request)
    length = _header_int(request, "Upload-Length")
    try:
        upload = uploads.create(store_root(request), length, who.user,
                                _metadata(request.headers.get("Upload-Metadata")))
    except DssError as e:
        raise ApiError(413 if length > uploads.MAX_LENGTH else 400, "illegal_arguments", str(e)) from e
    audit_write(request, who, 201, upload=upload.id, length=length)
    return Response(status_code=201, headers={**_TUS, "Location": upload_url(request, upload.id),
                                              "Upload-Offset": "0"})


@router.head("/v1/uploads/{upload_id}")
def head(upload_id: str, request: Request) -> Response:
    upload = _mine(request, _who(request), upload_id)
    return Response(status_code=200, headers={**_TUS, "Upload-Offset": str(upload.offset),
                                              "Upload-Length": str(upload.length),
                                              "Cache-Control": "no-store"})


@router.patch("/v1/uploads/{upload_id}")
async def append(upload_id: str, request: Request) -> Response:
    writable(request)
    who = await run_in_threadpool(_who, request)
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/offset+octet-stream":
        raise ApiError(415, "unsupported_media_type", "a tus PATCH carries Content-Type: "
                       "application/offset+octet-stream")
    offset = _header_int(request, "Upload-Offset")
    await run_in_threadpool(_mine, request, who, upload_id)
    try:
        appender = uploads.Appender(store_root(request), upload_id, offset)
    except uploads.OffsetMismatch as e:
        raise ApiError(409, "conflict", str(e)) from e
    try:
        async for chunk in request.stream():
            appender.write(chunk)  # page-cache writes: a hop to a thread per chunk costs more
    except ClientDisconnect:
        appender.abort()
        logger.info("upload %s: the client went away at byte %d; it can go on from there", upload_id,
                    appender.offset)
        return Response(status_code=204)
    except uploads.TooLong as e:
        appender.abort()
        raise ApiError(413, "too_large", str(e)) from e
    except BaseException:
        appender.abort()
        raise
    reached = await run_in_threadpool(appender.close)
    return Response(status_code=204, headers={**_TUS, "Upload-Offset": str(reached)})


@router.delete("/v1/uploads/{upload_id}")
def terminate(upload_id: str, request: Request) -> Response:
    writable(request)
    who = _who(request)
    _mine(request, who, upload_id)
    uploads.remove(store_root(request), upload_id)
    audit_write(request, who, 204, upload=upload_id)
    return Response(status_code=204, headers=_TUS)
