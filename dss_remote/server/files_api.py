"""GET and HEAD /v1/files/{uuid}: a file version's `X-DSS-*` headers, then its content."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from ..access.gate import Identity
from . import content, dss_mapping, params
from .app_state import file_index, store_root
from .caller import caller, require_read
from .errors import ApiError
from .file_checksums import checksums_for

logger = logging.getLogger(__name__)

router = APIRouter()


@router.api_route("/v1/files/{uuid}", methods=["GET", "HEAD"])
def get_file(uuid: str, request: Request, who: Annotated[Identity | None, Depends(caller)]) -> Response:
    """A file version (the newest without `version`)."""
    params.check_known(request, ("replica", "version"))
    params.check_uuid(uuid)
    replica = params.replica(request)
    version = params.version(request)
    found = file_index(request).file(uuid, version)
    if found is None:
        if version is None:
            raise ApiError(404, "not_found", f"file {uuid} not found in any bundle of this store")
        raise ApiError(404, "not_found", f"file {uuid} has no version {version}; GET the bundle to see "
                       "its files' versions")
    require_read(request, who, found.dataset_id)
    root = store_root(request)
    headers = dss_mapping.dss_headers(found.file_version, found.size, found.content_type,
                                      checksums_for(root, found.dataset_id, found.row))
    return content.respond(request, root, found.dataset_id, found.row, replica, headers)
