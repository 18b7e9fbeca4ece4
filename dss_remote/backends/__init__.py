"""Backends by URL: which transports dss can read and write, and the Backend that reaches each."""

from __future__ import annotations

from pathlib import Path

from ria_store.errors import UrlError
from ria_store.urls import StoreUrl, parse_store_url

from .base import Backend
from .posix import PosixBackend

__all__ = ["Backend", "PosixBackend", "backend_for", "check_usable_url"]


def check_usable_url(url: str) -> StoreUrl:
    """Parse a store URL and refuse transports this version has no backend for."""
    su = parse_store_url(url)
    if not su.is_local:
        raise UrlError(
            f"url {url}: the dss remote reaches stores through a mounted path so far; mount the "
            "store and set url=ria+file:///path (or per clone: git config remote.NAME.dss-url "
            "ria+file:///path), or use DataLad's ora remote for ria+ssh/ria+http")
    return su


def backend_for(url: str) -> Backend:
    """The backend rooted at the store `url` names."""
    return PosixBackend(Path(check_usable_url(url).path), url)
