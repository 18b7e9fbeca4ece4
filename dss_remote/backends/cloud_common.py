"""What the bucket backends share: parsing `scheme://bucket/prefix` and writing downloads to an fd."""

from __future__ import annotations

from urllib.parse import urlsplit

from ria_store.atomic import write_all
from ria_store.errors import ConfigError

from .base import Progress


def split_bucket_url(url: str, scheme: str) -> tuple[str, str]:
    """`s3://bucket/a/b` -> ("bucket", "a/b"); the prefix may be empty, never climbs."""
    parts = urlsplit(url)
    if parts.scheme != scheme or not parts.netloc or parts.query or parts.fragment:
        raise ConfigError(f"mirror url {url!r} is not a {scheme}:// url; use {scheme}://bucket/prefix")
    prefix = parts.path.strip("/")
    if prefix and (".." in prefix.split("/") or "//" in prefix):
        raise ConfigError(f"mirror url {url!r} has an unsafe prefix; use {scheme}://bucket/a/b")
    return parts.netloc, prefix


class FdWriter:
    """A write-only file object on a raw fd (writes in order at its offset), counting the bytes."""

    def __init__(self, fd: int, progress: Progress | None) -> None:
        self.fd = fd
        self.count = 0
        self._progress = progress

    def write(self, data: bytes) -> int:
        write_all(self.fd, data)
        self.count += len(data)
        if self._progress is not None:
            self._progress(self.count)
        return len(data)
