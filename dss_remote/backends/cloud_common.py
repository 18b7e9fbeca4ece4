"""What the bucket backends share: parsing `scheme://bucket/prefix` and writing downloads to an fd."""

from __future__ import annotations

from urllib.parse import urlsplit

from ria_store.atomic import write_all
from ria_store.errors import ConfigError, CorruptError, DssError, UnavailableError, WriteError, one_line
from ria_store.urls import unsafe_prefix

from .base import Progress


def split_bucket_url(url: str, scheme: str) -> tuple[str, str]:
    """`s3://bucket/a/b` -> ("bucket", "a/b"); the prefix may be empty, never climbs."""
    parts = urlsplit(url)
    if parts.scheme != scheme or not parts.netloc or parts.query or parts.fragment:
        raise ConfigError(f"mirror url {url!r} is not a {scheme}:// url; use {scheme}://bucket/prefix")
    prefix = parts.path.strip("/")
    if unsafe_prefix(prefix):
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


# One wording for the failures both services share (the messages users grep for and tests check).

def unreachable(url: str, endpoint: str, cause: BaseException) -> UnavailableError:
    return UnavailableError(f"replica {url}: cannot reach {endpoint} ({type(cause).__name__}); check the "
                            "network or the mirror's endpoint url")


class MissingBucket(UnavailableError):
    """The bucket itself does not exist (not an outage: retrying will not help)."""


def missing_bucket(url: str, bucket: str) -> UnavailableError:
    return MissingBucket(f"replica {url}: bucket {bucket} does not exist (create it or fix the "
                         "mirror url)")


def checksum_refused(url: str, what: str, detail: str) -> CorruptError:
    return CorruptError(f"replica {url}: the service refused{what}: the bytes it received do not match "
                        f"the checksum of the source ({detail}); nothing was stored, retry the upload")


def download_corrupt(url: str, what: str, cause: BaseException) -> CorruptError:
    return CorruptError(f"replica {url}:{what} arrived with a checksum mismatch ({one_line(cause)}); "
                        "retry, and run `dss fsck` on the mirror if it persists")


def service_failed(url: str, op: str, what: str, detail: str) -> UnavailableError:
    return UnavailableError(f"replica {url}: the service failed on {op}{what} ({detail}); retry later")


def op_failed(url: str, op: str, what: str, detail: str) -> DssError:
    cls = WriteError if op in ("write", "delete") else UnavailableError
    return cls(f"replica {url}: {op}{what} failed ({detail}); check the mirror's url and settings")
