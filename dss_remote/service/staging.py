"""Content a producer staged in a bucket (`s3://` or `gs://`), fetched for the file pool.

Only the buckets (and prefixes) the store's `server.staging_buckets` names are read: a
`source_url` must never make the server read what its caller may not (another bucket the
server's credentials reach). The object is streamed to a temp file under the store, its
declared `hca-dss-*` checksums (tags or metadata) are read beside it; file_pool.deposit then
checks them against the bytes. Credentials are the server's own (boto3's chain, Google ADC).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ria_store.errors import DssError, NotFoundError

from ..backends.base import check_relpath
from ..backends.cloud_common import MissingBucket
from ..backends.gcs import GcsBackend
from ..backends.s3 import S3Backend
from .file_pool import staging_file

logger = logging.getLogger(__name__)


class SourceNotAllowed(DssError):
    """A source_url the store's config does not allow, or that is not a bucket object."""


@dataclass(frozen=True)
class Staged:
    """A fetched staged object: the local copy, its object name and declared checksums."""

    path: Path
    name: str
    declared: dict[str, str]
    content_type: str | None


def check_source(url: str, allowed: Sequence[str]) -> tuple[str, str, str]:
    """(scheme, bucket, object key) of `url` if one of the `allowed` bucket prefixes holds it."""
    parts = urlsplit(url)
    key = unquote(parts.path.lstrip("/"))
    if parts.scheme not in ("s3", "gs") or not parts.netloc or not key or parts.query or parts.fragment:
        raise SourceNotAllowed(f"source_url {url!r} is not an s3://BUCKET/KEY or gs://BUCKET/KEY object")
    try:
        check_relpath(key)
    except DssError as e:
        raise SourceNotAllowed(f"source_url {url!r}: {e}") from e
    for entry in allowed:
        p = urlsplit(entry)
        prefix = p.path.strip("/")
        if p.scheme == parts.scheme and p.netloc == parts.netloc and (
                not prefix or key.startswith(prefix + "/")):
            return parts.scheme, parts.netloc, key
    named = ", ".join(allowed) or "none"
    raise SourceNotAllowed(f"source_url {url!r} is outside this store's staging buckets ({named}); "
                           "stage the file in one of them, or ask an admin to add the bucket to "
                           "server.staging_buckets in dss/config.json")


@dataclass(frozen=True)
class Source:
    """A staged object, looked at but not read: its size and what its uploader declared."""

    url: str
    backend: S3Backend | GcsBackend
    key: str
    size: int
    declared: dict[str, str]

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]


def look(url: str, allowed: Sequence[str]) -> Source:
    """The staged object's size and declared checksums; NotFoundError, AccessError or
    UnavailableError (one line, naming the bucket) when it cannot be read."""
    scheme, bucket, key = check_source(url, allowed)
    backend = S3Backend(f"s3://{bucket}") if scheme == "s3" else GcsBackend(f"gs://{bucket}")
    try:
        info = backend.info(key)
    except MissingBucket as e:
        raise SourceNotAllowed(f"source_url {url}: the staging bucket {bucket} does not exist; stage "
                               "the file in an existing bucket the store allows") from e
    if info is None:
        raise NotFoundError(f"source_url {url}: no such object; stage it first")
    return Source(url, backend, key, info.size, backend.declared_checksums(key))


def fetch(root: Path, source: Source) -> Staged:
    """Stream the staged object to a temp file under the store."""
    fd, path = staging_file(root, "staged")
    try:
        try:
            source.backend.get_file(source.key, fd)
            os.fsync(fd)
        finally:
            os.close(fd)
    except NotFoundError as e:
        path.unlink(missing_ok=True)
        raise NotFoundError(f"source_url {source.url}: no such object ({e}); stage it first") from e
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return Staged(path, source.name, source.declared, None)
