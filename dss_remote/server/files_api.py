"""GET and HEAD /v1/files/{uuid}: a file version's `X-DSS-*` headers, then its content."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from ria_store.errors import DssError

from ..access.gate import Identity
from ..service import file_pool
from . import content, dss_mapping, params
from .app_state import file_index, store_root
from .caller import caller, gate_of, require_read
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
        if quick:
            raise NeedsThread  # the file pool is read in the thread pool
        deposited = _deposited(request, who, uuid, version)
        if deposited is not None:
            return deposited
        if version is None:
            raise ApiError(404, "not_found", f"file {uuid} not found in any bundle of this store")
        raise ApiError(404, "not_found", f"file {uuid} has no version {version}; GET the bundle to see "
                       "its files' versions")
    require_read(request, who, found.dataset_id)
    root = store_root(request)
    headers = dss_mapping.dss_headers(found.file_version, found.size, found.content_type,
                                      checksums_for(root, found.dataset_id, found.row))
    return content.respond(request, root, found.dataset_id, found.row, replica, headers, quick=quick)


def _deposited(request: Request, who: Identity | None, uuid: str, version: str | None) -> Response | None:
    """A file version deposited with PUT /v1/files and in no bundle yet, served from the file
    pool: its bytes to its depositor or an admin (to anyone else it does not exist); its HEAD to
    anyone who names its uuid (the hca client polls HEAD without a token while a large copy runs,
    as the DSS lets it: headers only, never the bytes)."""
    root = store_root(request)
    try:
        record = file_pool.lookup(root, uuid, version)
    except DssError:
        return None
    mine = who is not None and ((record is not None and record.owner == who.user)
                                or gate_of(request).is_admin(who))
    if record is None or not (mine or request.method == "HEAD"):
        return None
    path = file_pool.object_path(root, record.key)
    if not path.is_file():
        return None
    headers = dss_mapping.dss_headers(record.version, record.size, record.content_type, record.checksums)
    headers["X-DSS-CREATOR-UID"] = str(record.creator_uid)
    return FileResponse(path, headers=headers, media_type=record.content_type)


def _local_credential(authorization: str | None) -> bool:
    """None, or a dss token (Bearer or Basic): identified from the store's files, no network."""
    if authorization is None:
        return True
    scheme, _, value = authorization.strip().partition(" ")
    return scheme.lower() == "basic" or (scheme.lower() == "bearer" and value.strip().startswith("dss_"))
