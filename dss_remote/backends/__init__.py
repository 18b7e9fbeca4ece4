"""Backends by URL: which transports dss can read and write, and the Backend that reaches each."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from ria_store.errors import UrlError
from ria_store.urls import StoreUrl, parse_store_url

from .base import Backend
from .posix import PosixBackend

__all__ = ["Backend", "PosixBackend", "backend_for", "backend_for_url", "check_usable_url"]


def check_usable_url(url: str, *, read_only_ok: bool = False) -> StoreUrl:
    """Parse a store URL and refuse transports this version has no backend for (ria+http(s) is
    read-only: fine for reading, where `read_only_ok`)."""
    su = parse_store_url(url)
    if su.is_local or (read_only_ok and su.scheme in ("http", "https")):
        return su
    how = "read-only over ria+http(s) (a store or a mirror bucket served over HTTP), " if read_only_ok else ""
    raise UrlError(
        f"url {url}: the dss remote reaches stores through a mounted path, {how}and the store's "
        "mirrors; mount the store and set url=ria+file:///path (or per clone: git config "
        "remote.NAME.dss-url ria+file:///path), or use DataLad's ora remote for ria+ssh")


def backend_for(url: str) -> Backend:
    """The backend rooted at the store `url` names (read-only for ria+http(s))."""
    su = check_usable_url(url, read_only_ok=True)
    if su.is_local:
        return PosixBackend(Path(su.path), url)
    from .http import HttpBackend  # noqa: PLC0415 - aiohttp costs ~0.2 s to import

    port = f":{su.port}" if su.port else ""
    return HttpBackend(f"{su.scheme}://{su.host}{port}{su.path.rstrip('/')}")


def backend_for_url(url: str, *, endpoint_url: str | None = None, region: str | None = None,
                    storage_class: str | None = None, writable: bool = True) -> Backend:
    """The backend of a mirror url (s3://, gs://, file://, http(s)://, sftp://, or any fsspec
    protocol); `writable` False makes it refuse writes. Cloud SDKs and network libraries are
    imported only when a url needs them."""
    backend = _backend_for_url(url, endpoint_url, region, storage_class)
    if not writable:
        backend.writable = False
    return backend


def _backend_for_url(url: str, endpoint_url: str | None, region: str | None,
                     storage_class: str | None) -> Backend:
    scheme = url.split(":", 1)[0]
    if scheme == "s3":
        from .s3 import S3Backend  # noqa: PLC0415 - boto3 costs ~0.3 s to import

        return S3Backend(url, endpoint_url=endpoint_url, region=region, storage_class=storage_class)
    if scheme == "gs":
        from .gcs import GcsBackend  # noqa: PLC0415 - google-cloud-storage costs ~0.5 s

        return GcsBackend(url, endpoint_url=endpoint_url, storage_class=storage_class)
    if scheme == "file":
        return PosixBackend(Path(urlsplit(url).path), url)
    if scheme in ("http", "https"):
        from .http import HttpBackend  # noqa: PLC0415 - aiohttp costs ~0.2 s to import

        return HttpBackend(url)
    if scheme == "sftp":
        from .sftp import SftpBackend  # noqa: PLC0415 - asyncssh costs ~0.3 s to import

        return SftpBackend(url)
    from .fsspec_backend import FsspecBackend  # noqa: PLC0415

    return FsspecBackend(url)
