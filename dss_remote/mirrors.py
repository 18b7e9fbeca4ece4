"""Mirrors of a store (S3, GCS, another file system): their config entries, validated strictly."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

from ria_store.errors import ConfigError

#: the name the POSIX store itself has among the replicas (in messages and the repair queue)
PRIMARY_NAME = "store"
#: mirror URL schemes and what reaches them
SCHEMES = {"s3": "S3 (boto3)", "gs": "Google Cloud Storage", "file": "another POSIX directory",
           "memory": "fsspec in-memory file system (tests)"}
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]")
_FIELDS = ("url", "name", "endpoint_url", "region", "storage_class")
_SECRET_HINT = re.compile(r"secret|password|token|credential|access_key|private", re.I)


@dataclass(frozen=True)
class Mirror:
    """One mirror: where it is and how to reach it; never credentials (those come from the
    standard chains: boto3's env/profiles/instance roles, Google's ADC)."""

    url: str
    name: str
    endpoint_url: str | None = None
    region: str | None = None
    storage_class: str | None = None

    @property
    def scheme(self) -> str:
        return self.url.split(":", 1)[0]

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def default_name(url: str) -> str:
    """`s3-<bucket>` style names, unique enough for a store's handful of mirrors."""
    parts = urlsplit(url)
    base = f"{parts.scheme}-{parts.netloc or 'local'}"
    return re.sub(r"[^A-Za-z0-9._-]", "-", base)[:63]


def check_mirror_url(url: str, where: str = "mirror") -> str:
    """Return the normalised mirror URL (no trailing slash) or raise ConfigError naming the fix."""
    if not isinstance(url, str) or not url:
        raise ConfigError(f"{where}: a mirror needs a url such as s3://bucket/prefix or gs://bucket/prefix")
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        known = ", ".join(f"{s}://" for s in SCHEMES)
        scheme = f"{parts.scheme}:" if parts.scheme else "(none)"
        raise ConfigError(f"{where}: mirror url {url!r} has unknown scheme {scheme} (known: {known}); "
                          "use e.g. s3://bucket/prefix or gs://bucket/prefix")
    if "@" in parts.netloc or parts.password or parts.query or parts.fragment:
        raise ConfigError(f"{where}: mirror url {url!r} must not carry credentials, a query or a "
                          "fragment; credentials come from AWS_PROFILE/AWS_* or Google ADC")
    path = parts.path.strip("/")
    if ".." in path.split("/") or "//" in path:
        raise ConfigError(f"{where}: mirror url {url!r} has an unsafe prefix; use s3://bucket/a/b")
    if parts.scheme in ("s3", "gs"):
        if not _BUCKET_RE.fullmatch(parts.netloc):
            raise ConfigError(f"{where}: mirror url {url!r}: {parts.netloc!r} is not a valid bucket "
                              "name (3-222 lowercase letters, digits, '.', '-', '_')")
        return f"{parts.scheme}://{parts.netloc}" + (f"/{path}" if path else "")
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or not path:
            raise ConfigError(f"{where}: mirror url {url!r}: use file:///absolute/path")
        return f"file:///{path}"
    return f"{parts.scheme}://{parts.netloc}" + (f"/{path}" if path else "")


def _check_endpoint(value: str, where: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
        raise ConfigError(f"{where}: endpoint_url {value!r} must be http(s)://host[:port] without "
                          "credentials")
    return value.rstrip("/")


def parse_mirror(entry: Any, where: str) -> Mirror:
    """One `mirrors[]` entry of `dss/config.json` (a URL string or an object)."""
    if isinstance(entry, str):
        entry = {"url": entry}
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: a mirror must be a url string or an object, not {type(entry).__name__}")
    secrets = sorted(k for k in entry if _SECRET_HINT.search(str(k)))
    if secrets:
        raise ConfigError(f"{where}: {', '.join(secrets)} looks like a credential; the store config "
                          "never holds credentials (use AWS_PROFILE/AWS_* or Google ADC); remove it")
    unknown = sorted(set(entry) - set(_FIELDS))
    if unknown:
        raise ConfigError(f"{where} has unknown field(s) {', '.join(map(repr, unknown))} "
                          f"(known: {', '.join(_FIELDS)}); remove them or upgrade dss-remote")
    for k, v in entry.items():
        if v is not None and not isinstance(v, str):
            raise ConfigError(f"{where}: {k!r} must be a string")
    url = check_mirror_url(entry.get("url", ""), where)
    name = entry.get("name") or default_name(url)
    if not _NAME_RE.fullmatch(name) or name == PRIMARY_NAME:
        raise ConfigError(f"{where}: mirror name {name!r} must be letters, digits, '._-' (at most 63) "
                          f"and not {PRIMARY_NAME!r}")
    endpoint = entry.get("endpoint_url")
    return Mirror(url=url, name=name,
                  endpoint_url=_check_endpoint(endpoint, where) if endpoint else None,
                  region=entry.get("region") or None, storage_class=entry.get("storage_class") or None)


def parse_mirrors(entries: Any, where: str) -> list[Mirror]:
    if not isinstance(entries, list):
        raise ConfigError(f"{where}: 'mirrors' must be a list")
    mirrors = [parse_mirror(e, f"{where} mirrors[{i}]") for i, e in enumerate(entries)]
    for attr in ("name", "url"):
        seen: set[str] = set()
        for m in mirrors:
            value = getattr(m, attr)
            if value in seen:
                raise ConfigError(f"{where}: two mirrors share the {attr} {value!r}; each needs its own")
            seen.add(value)
    return mirrors


def parse_quorum(value: Any, replicas: int, where: str) -> int:
    """`write_quorum`: "all" (default) or how many replicas must take a write, 1..replicas."""
    if value in (None, "all"):
        return replicas
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= replicas:
        raise ConfigError(f"{where}: write_quorum {value!r} must be \"all\" or a number from 1 to "
                          f"{replicas} (the store plus its mirrors)")
    return value
