"""Our bundles in HCA DSS terms (pure): file uuids and versions, and manifest rows as DSS file_versions.

The mapping is written down in docs/serve.md: a bundle is a dataset (uuid = DataLad dataset id), a
bundle version is our bundle version id, a file is a path of the dataset (uuid5 of a fixed namespace
and `<dataset id>/<path>`), a file version is the bundle version in which the path got its content.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any

#: the namespace of file uuids; never change it: every file uuid a client kept derives from it
FILE_NAMESPACE = uuid.UUID("5b0d5c0e-7d3a-4b8e-9f51-2c6a1e8d4f17")
#: files the DSS (and issue 20's search) treats as metadata: JSON of at most 1 MiB
INDEXED_MAX = 1 << 20
#: the DSS's creator_uid is an integer account id; our manifests do not record who pushed
UNKNOWN_CREATOR = 0
#: manifest row types that are files with content in this bundle
SERVED_TYPES = ("annex", "git")
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
CHECKSUM_NAMES = ("sha256", "sha1", "crc32c", "s3_etag")


def file_uuid(dataset_id: str, path: str) -> str:
    """The stable uuid of a path of a dataset (the same in every version)."""
    return str(uuid.uuid5(FILE_NAMESPACE, f"{dataset_id}/{path}"))


def is_served(row: Mapping[str, Any]) -> bool:
    """Whether a manifest row is a DSS file: annexed and git files are; subdatasets (their own
    bundles, no bytes here) and plain symlinks (a path, not content) are left out."""
    return row.get("type") in SERVED_TYPES


def content_id(row: Mapping[str, Any]) -> str:
    """What names a row's content: its annex key, or its git blob id."""
    return str(row.get("key") or row.get("git_blob") or "")


def is_indexed(path: str, size: int | None) -> bool:
    """DSS `indexed`: a JSON file small enough to be read as metadata."""
    return path.lower().endswith(".json") and size is not None and size <= INDEXED_MAX


def file_version_doc(name: str, fuuid: str, fversion: str, *, size: int, content_type: str,
                     checksums: Mapping[str, str]) -> dict[str, Any]:
    """One entry of a DSS bundle's `files[]`."""
    doc: dict[str, Any] = {"name": name, "uuid": fuuid, "version": fversion, "size": size,
                           "content-type": content_type, "indexed": is_indexed(name, size),
                           "creator_uid": UNKNOWN_CREATOR}
    for algo in CHECKSUM_NAMES:
        doc[algo] = checksums.get(algo, "")
    return doc


def dss_headers(fversion: str, size: int, content_type: str, checksums: Mapping[str, str]
                ) -> dict[str, str]:
    """The `X-DSS-*` headers of GET/HEAD /files/{uuid}."""
    return {"X-DSS-VERSION": fversion, "X-DSS-SIZE": str(size), "X-DSS-CONTENT-TYPE": content_type,
            "X-DSS-CREATOR-UID": str(UNKNOWN_CREATOR),
            "X-DSS-SHA256": checksums.get("sha256", ""), "X-DSS-SHA1": checksums.get("sha1", ""),
            "X-DSS-CRC32C": checksums.get("crc32c", ""), "X-DSS-S3-ETAG": checksums.get("s3_etag", "")}
