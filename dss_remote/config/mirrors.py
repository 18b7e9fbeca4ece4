"""Mirrors of a store (S3, GCS, SFTP, a directory, read-only HTTP): config entries, validated strictly."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

from ria_store.errors import ConfigError
from ria_store.urls import redact_url, unsafe_prefix

#: the name the POSIX store itself has among the replicas (in messages and the repair queue)
PRIMARY_NAME = "store"
#: mirror URL schemes and what reaches them
SCHEMES = {"s3": "S3 (boto3)", "gs": "Google Cloud Storage", "file": "another POSIX directory",
           "sftp": "a directory over SFTP (ssh keys from the agent or ~/.ssh)",
           "http": "a web server serving a copy of the store (read-only)", "https": "the same over TLS",
           "memory": "fsspec in-memory file system (tests)"}
#: schemes nothing can be written to: their mirrors are read-only whatever the config says
READ_ONLY_SCHEMES = frozenset({"http", "https"})
#: schemes reached through a bucket service, the only ones with endpoint_url/region/storage_class
_BUCKET_SCHEMES = frozenset({"s3", "gs"})
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]")
_FIELDS = ("url", "name", "endpoint_url", "region", "storage_class", "read_only")
_SECRET_HINT = re.compile(r"secret|password|token|credential|access_key|private", re.I)


@dataclass(frozen=True)
class Mirror:
    """One mirror: where it is and how to reach it; never credentials (those come from the
    standard chains: boto3's env/profiles/instance roles, Google's ADC, ssh's agent and ~/.ssh,
    ~/.netrc for http).

    A read-only mirror (every http(s) mirror, or one marked `read_only`) is read in cost order
    like any other, but never written: writes, the write quorum, CHECKPRESENT and REMOVE count
    only the writable replicas."""

    url: str
    name: str
    endpoint_url: str | None = None
    region: str | None = None
    storage_class: str | None = None
    read_only: bool = False

    @property
    def scheme(self) -> str:
        return self.url.split(":", 1)[0]

    @property
    def writable(self) -> bool:
        return not self.read_only and self.scheme not in READ_ONLY_SCHEMES

    def to_json(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if v is not None and k != "read_only"}
        if not self.writable and self.scheme not in READ_ONLY_SCHEMES:
            out["read_only"] = True  # implied for http(s), so not written there
        return out


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
    shown = redact_url(url)  # never echo a secret someone put in a url
    if parts.scheme == "sftp" and parts.password is not None:
        raise ConfigError(f"{where}: mirror url {shown!r} carries a password; remove it (dss logs in "
                          "with your ssh agent, your ~/.ssh keys, or the key DSS_SSH_KEY names)")
    userinfo_ok = parts.scheme == "sftp"  # a user name is no secret, and ssh needs one
    if ("@" in parts.netloc and not userinfo_ok) or parts.query or parts.fragment:
        raise ConfigError(f"{where}: mirror url {shown!r} must not carry credentials, a query or a "
                          "fragment; credentials come from AWS_PROFILE/AWS_*, Google ADC or ~/.netrc")
    path = parts.path.strip("/")
    if unsafe_prefix(path):
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
    if parts.scheme in ("http", "https", "sftp"):
        try:
            parts.port  # noqa: B018 - raises on a port that is not a number
        except ValueError as e:
            raise ConfigError(f"{where}: mirror url {url!r} has an invalid port ({e})") from e
        if not parts.hostname:
            raise ConfigError(f"{where}: mirror url {url!r} names no host; use "
                              f"{parts.scheme}://host[:port]/path")
        if parts.scheme == "sftp" and not path:
            raise ConfigError(f"{where}: mirror url {url!r} names no directory; use "
                              "sftp://[user@]host[:port]/absolute/path")
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
        want = bool if k == "read_only" else str
        if v is not None and not isinstance(v, want):
            raise ConfigError(f"{where}: {k!r} must be {'true or false' if want is bool else 'a string'}")
    url = check_mirror_url(entry.get("url", ""), where)
    scheme = url.split(":", 1)[0]
    read_only = entry.get("read_only")
    if scheme in READ_ONLY_SCHEMES and read_only is False:
        raise ConfigError(f"{where}: {scheme}:// mirrors are read-only (HTTP has no writes); remove "
                          "\"read_only\": false, or use an s3://, gs://, sftp:// or file:// url")
    bucket_only = sorted(k for k in ("endpoint_url", "region", "storage_class") if entry.get(k))
    if bucket_only and scheme not in _BUCKET_SCHEMES:
        raise ConfigError(f"{where}: {', '.join(bucket_only)} only apply to s3:// and gs:// mirrors; "
                          f"remove them from the {scheme}:// mirror")
    name = entry.get("name") or default_name(url)
    if not _NAME_RE.fullmatch(name) or name == PRIMARY_NAME:
        raise ConfigError(f"{where}: mirror name {name!r} must be letters, digits, '._-' (at most 63) "
                          f"and not {PRIMARY_NAME!r}")
    endpoint = entry.get("endpoint_url")
    return Mirror(url=url, name=name,
                  endpoint_url=_check_endpoint(endpoint, where) if endpoint else None,
                  region=entry.get("region") or None, storage_class=entry.get("storage_class") or None,
                  read_only=bool(read_only) or scheme in READ_ONLY_SCHEMES)


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
    """`write_quorum`: "all" (default) or how many of the `replicas` writable replicas must take a
    write, 1..replicas (read-only mirrors are never written, so never count)."""
    if value in (None, "all"):
        return replicas
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= replicas:
        raise ConfigError(f"{where}: write_quorum {value!r} must be \"all\" or a number from 1 to "
                          f"{replicas} (the store plus its writable mirrors)")
    return value
