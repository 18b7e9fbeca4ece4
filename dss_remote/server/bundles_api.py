"""GET /v1/bundles/{uuid} (a bundle version's files, paged) and GET /v1/bundles/all."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from ..access.gate import Identity
from ..history import times
from . import dss_mapping, params
from .app_state import file_index, store_root
from .caller import caller, gate_of, require_read
from .errors import ApiError
from .file_checksums import checksums_for
from .file_index import FileIndex
from .paging import next_url, page

logger = logging.getLogger(__name__)

router = APIRouter()

BUNDLE_PAGE = (10, 500, 500)  # per_page: least, most, default (the DSS's)
ALL_PAGE = (10, 500, 100)
Caller = Annotated[Identity | None, Depends(caller)]


def resolve_version(index: FileIndex, uuid: str, version: str | None) -> str:
    """The bundle version asked for (the newest without one); 404 naming what exists."""
    versions = index.bundle_versions(uuid)
    if not versions:
        raise ApiError(404, "not_found", f"bundle {uuid} not found: no dataset with this id has bundle "
                       "versions in this store")
    if version is None:
        return versions[-1]
    if version not in versions:
        raise ApiError(404, "not_found", f"bundle {uuid} has no version {version}; list its versions "
                       f"with GET /v1/bundles/all?prefix={uuid}")
    return version


def bundle_files(request: Request, index: FileIndex, uuid: str, version: str, *, start: int,
                 count: int) -> list[dict[str, Any]]:
    root = store_root(request)
    return [dss_mapping.file_version_doc(f.path, f.file_uuid, f.file_version, size=f.size,
                                         content_type=f.content_type,
                                         checksums=checksums_for(root, uuid, f.row))
            for f in index.bundle_files(uuid, version, start, count)]


@router.get("/v1/bundles/all")
def get_bundles_all(request: Request, who: Caller) -> Response:
    """Every bundle version the caller may read, by uuid then version; paged by `search_after`."""
    params.check_known(request, ("replica", "prefix", "per_page", "search_after"))
    replica = params.replica(request)
    prefix = params.uuid_prefix(request)
    per_page = params.integer(request, "per_page", ALL_PAGE[2], ALL_PAGE[0], ALL_PAGE[1])
    after_text = params.single(request, "search_after")
    cursor = params.bundle_fqid(after_text, "search_after") if after_text else None
    index, gate = file_index(request), gate_of(request)
    readable: dict[str, bool] = {}
    found: list[dict[str, str]] = []
    has_more = False
    while not has_more:
        chunk = index.all_bundles(prefix, cursor, 500)
        for dsid, version in chunk:
            cursor = (dsid, version)
            if dsid not in readable:
                readable[dsid] = gate.may_read(who, dsid)
            if not readable[dsid]:
                continue
            if len(found) == per_page:
                has_more = True
                break
            found.append({"uuid": dsid, "version": version})
        if len(chunk) < 500:
            break
    last = f"{found[-1]['uuid']}.{found[-1]['version']}" if found else None
    following = ({"replica": replica, "prefix": prefix or None, "per_page": per_page, "search_after": last}
                 if has_more else None)
    body = {"bundles": found, "has_more": has_more, "page_count": len(found), "per_page": per_page,
            "search_prefix": prefix, "token": "", "search_after": last if has_more else None,
            "link": next_url(request, following) if following else None,
            "event_timestamp": times.format_utc(times.now())}
    return page(request, body, "bundles", following)


@router.get("/v1/bundles/{uuid}")
def get_bundle(uuid: str, request: Request, who: Caller) -> Response:
    """A bundle version (the newest without `version`): its files, `per_page` from `start_at`."""
    params.check_known(request, ("replica", "version", "per_page", "start_at"))
    params.check_uuid(uuid)
    replica = params.replica(request)
    asked = params.version(request)
    per_page = params.integer(request, "per_page", BUNDLE_PAGE[2], BUNDLE_PAGE[0], BUNDLE_PAGE[1])
    start = params.integer(request, "start_at", 0, 0, 10**9)
    # access first: whether a private bundle exists is not told to those who may not read it
    require_read(request, who, uuid)
    index = file_index(request)
    version = resolve_version(index, uuid, asked)
    total = index.file_count(uuid, version) or 0
    if start and start >= total:
        raise ApiError(400, "illegal_arguments", f"start_at {start} is past the last file of bundle "
                       f"{uuid}.{version} ({total} files); start from 0")
    files = bundle_files(request, index, uuid, version, start=start, count=per_page)
    body = {"bundle": {"uuid": uuid, "version": version, "creator_uid": dss_mapping.UNKNOWN_CREATOR,
                       "files": files}}
    following = ({"replica": replica, "version": version, "per_page": per_page,
                  "start_at": start + per_page} if start + per_page < total else None)
    return page(request, body, "bundle.files", following)
