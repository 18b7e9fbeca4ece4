"""GET and HEAD /v1/files/{uuid}: a file version's `X-DSS-*` headers, then its content."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from . import content, dss_mapping, params
from .app_state import file_index, store_root
from .caller import caller, require_read
from .errors import ApiError, NeedsThread
from .file_checksums import checksums_for

logger = logging.getLogger(__name__)

router = APIRouter()


@router.api_route("/v1/files/{uuid}", methods=["GET", "HEAD"])
async def get_file(uuid: str, request: Request) -> Response:
    """A file version (the newest without `version`).

    First on the event loop, as far as nothing may wait (a loose object on the store's disk, a
    fresh index, an anonymous caller or a dss token): a hop to the thread pool and back cost a
    small-file GET more than all its own work (bench/serve_load.py, bench/README.md). Anything
    else runs in the thread pool from the start."""
    try:
        return _get_file(uuid, request, quick=True)
    except NeedsThread:
        return await run_in_threadpool(_get_file, uuid, request, quick=False)


def _get_file(uuid: str, request: Request, *, quick: bool) -> Response:
    params.check_known(request, ("replica", "version"))
    params.check_uuid(uuid)
    replica = params.replica(request)
    version = params.version(request)
    if quick and not _local_credential(request.headers.get("authorization")):
        raise NeedsThread  # a JWT with a new key id makes the gate fetch its issuer's keys
    who = caller(request)
    found = file_index(request).file(uuid, version, quick=quick)
    if found is None:
        if version is None:
            raise ApiError(404, "not_found", f"file {uuid} not found in any bundle of this store")
        raise ApiError(404, "not_found", f"file {uuid} has no version {version}; GET the bundle to see "
                       "its files' versions")
    require_read(request, who, found.dataset_id)
    root = store_root(request)
    headers = dss_mapping.dss_headers(found.file_version, found.size, found.content_type,
                                      checksums_for(root, found.dataset_id, found.row))
    return content.respond(request, root, found.dataset_id, found.row, replica, headers, quick=quick)


def _local_credential(authorization: str | None) -> bool:
    """None, or a dss token (Bearer or Basic): identified from the store's files, no network."""
    if authorization is None:
        return True
    scheme, _, value = authorization.strip().partition(" ")
    return scheme.lower() == "basic" or (scheme.lower() == "bearer" and value.strip().startswith("dss_"))
