"""A file's bytes for GET/HEAD /v1/files/{uuid}: the minimal version (loose annex objects and git
blobs from the POSIX store, whole files only). The content engineer's module replaces it: Range,
archive members, and 302 to presigned S3/GCS URLs."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fastapi import Request, Response
from fastapi.responses import FileResponse

from ria_store import bare_repo
from ria_store import store as ria
from ria_store.errors import DssError
from ria_store.layout import object_relpath

from .errors import ApiError
from .params import REPLICAS

logger = logging.getLogger(__name__)


def respond(request: Request,  # noqa: PLR0917 (the signature the content module keeps)
            store_root: Path, dataset_id: str, row: Mapping[str, Any],
            replica: str | None, headers: Mapping[str, str]) -> Response:
    """The content of manifest row `row` of the dataset, with `headers` added."""
    if replica is not None and replica not in REPLICAS:
        raise ApiError(400, "illegal_arguments", f"unknown replica {replica!r}; known: {', '.join(REPLICAS)}")
    media = str(row.get("content_type") or "application/octet-stream")
    try:
        if row.get("type") == "annex":
            ds = ria.open_dataset(ria.open_store(store_root), dataset_id)
            path = ds.path / object_relpath(str(row["key"]), ds.version)
            if not path.is_file():
                raise ApiError(404, "not_found", f"the content of {row['path']} (key {row['key']}) is "
                               f"not in the store {store_root.name}; push it with `datalad push`")
            return FileResponse(path, media_type=media, headers=dict(headers))
        blob = str(row.get("git_blob"))
        data = bare_repo.read_blobs(ds_repo(store_root, dataset_id), [blob]).get(blob)
    except DssError as e:
        logger.warning("dataset %s: %s unreadable: %s", dataset_id, row.get("path"), e)
        raise ApiError(503, "unavailable", f"the content of {row.get('path')} cannot be read from "
                       "the store now; retry later") from e
    if data is None:
        raise ApiError(404, "not_found", f"git blob {blob} of {row.get('path')} is missing from the store")
    body = b"" if request.method == "HEAD" else data
    out = Response(body, media_type=media, headers=dict(headers))
    out.headers["content-length"] = str(len(data))
    return out


def ds_repo(store_root: Path, dataset_id: str) -> Path:
    return ria.open_store(store_root).dataset_dir(dataset_id)
