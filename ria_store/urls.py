"""`ria+` URLs: store URLs and dataset URLs (`<store>#<id>[@version]`, `<store>#~<alias>`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from .errors import UrlError
from .layout import check_alias, check_dataset_id

SCHEMES = ("file", "ssh", "http", "https")
_FIX = "use ria+file:///abs/path, ria+ssh://[user@]host[:port]/abs/path or ria+http(s)://host/path"


@dataclass(frozen=True)
class StoreUrl:
    """A parsed RIA store URL; `path` is the store's absolute path on its host."""

    url: str
    scheme: str
    path: str
    host: str | None = None
    port: int | None = None
    user: str | None = None

    @property
    def is_local(self) -> bool:
        return self.scheme == "file"

    def __str__(self) -> str:
        return self.url


@dataclass(frozen=True)
class DatasetUrl:
    """A parsed RIA dataset URL: the store plus a dataset id or an alias, and an optional version."""

    store: StoreUrl
    dataset_id: str | None
    alias: str | None
    version: str | None


def parse_store_url(url: str) -> StoreUrl:
    """Parse a `ria+<scheme>://` store URL; a fragment is an error (that would be a dataset URL)."""
    if not isinstance(url, str) or not url.startswith("ria+"):
        raise UrlError(f"not a RIA store URL: {url!r} ({_FIX})")
    if "#" in url:
        raise UrlError(
            f"store URL {url!r} has a fragment ({url[url.index('#'):]!r}): a store URL names the "
            "store only; drop '#...' (dataset URLs are for `datalad clone`)")
    try:
        parts = urlsplit(url[len("ria+"):])
        port = parts.port
    except ValueError as e:
        raise UrlError(f"malformed RIA URL {url!r}: {e} ({_FIX})") from e
    scheme = parts.scheme
    if scheme not in SCHEMES:
        raise UrlError(f"unsupported scheme {('ria+' + scheme)!r} in {url!r} ({_FIX})")
    if parts.query:
        raise UrlError(f"RIA URL {url!r} has a query ('?{parts.query}'); drop it")
    path = unquote(parts.path)
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise UrlError(
                f"ria+file URL {url!r} names host {parts.netloc!r}: ria+file is for a path on this "
                "machine; write ria+file:///abs/path or use ria+ssh://host/abs/path")
        if not path.startswith("/"):
            raise UrlError(f"ria+file URL {url!r} needs an absolute path: ria+file:///abs/path")
    elif not parts.hostname:
        raise UrlError(f"RIA URL {url!r} names no host ({_FIX})")
    # DataLad's `ria+ssh://host:/abs/path` needs nothing special: urlsplit sees an empty port there.
    path = "/" + path.strip("/") if path.strip("/") else "/"
    return StoreUrl(url, scheme, path, parts.hostname, port, parts.username)


def parse_dataset_url(url: str) -> DatasetUrl:
    """Parse `<store-url>#<dataset-id>[@version]` or `<store-url>#~<alias>[@version]`."""
    if not isinstance(url, str) or "#" not in url:
        raise UrlError(f"RIA dataset URL {url!r} names no dataset: append '#<dataset-id>' or '#~<alias>'")
    base, frag = url.split("#", 1)
    store = parse_store_url(base)
    version = None
    if "@" in frag:
        frag, version = frag.split("@", 1)
        if not version or not re.fullmatch(r"[A-Za-z0-9._/-]+", version) or ".." in version:
            raise UrlError(f"RIA dataset URL {url!r}: invalid version {version!r} after '@'")
    if frag.startswith("~"):
        return DatasetUrl(store, None, check_alias(frag[1:]), version)
    return DatasetUrl(store, check_dataset_id(frag), None, version)


def unsafe_prefix(path: str) -> bool:
    """A path inside a bucket or directory (a mirror's prefix) that climbs out (`..`) or has empty
    segments: refused both where a mirror is configured and where a backend opens it."""
    return ".." in path.split("/") or "//" in path


def redact_url(url: str) -> str:
    """`url` fit for messages and logs: a password in it becomes `***`, and so does a user name
    standing alone (`https://TOKEN@host/` is how many services pass a token)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    netloc, slash, path = rest.partition("/")
    userinfo, at, host = netloc.rpartition("@")
    if not at:
        return url
    user, colon, _password = userinfo.partition(":")
    shown = f"{user}:***" if colon else "***"
    return f"{scheme}{sep}{shown}@{host}{slash}{path}"
