"""The `server` section of a store's config: what `dss serve` needs to know that is not a secret.

Fields (all optional): `cors_origins` (browser origins allowed to call the API, e.g.
`["https://portal.example.org"]`; none by default), `presign_seconds` (how long a presigned S3/GCS
URL the server hands out lives; default 900, at most 43200) and `allow_private_callbacks`
(subscription callbacks to loopback, private, link-local or metadata addresses; false by default:
a callback URL must not be a way into the server's network; tests turn it on),
`staging_buckets` (the `s3://BUCKET` or `gs://BUCKET[/PREFIX]` a `PUT /v1/files` `source_url` may
name; none by default, so only direct uploads are taken), `async_copy_bytes` (a staged object
larger than this is copied in the background: `PUT /v1/files` answers 202 and the client polls
`HEAD /v1/files`, as the DSS does above 64 MiB; default 64 MiB) and `checkout_dirs` (absolute
directories of the server's file system a checkout may write under; none by default).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ria_store.errors import ConfigError

DEFAULT_PRESIGN_SECONDS = 900
MAX_PRESIGN_SECONDS = 43200
_FIELDS = {"cors_origins", "presign_seconds", "allow_private_callbacks", "staging_buckets",
           "checkout_dirs", "async_copy_bytes"}
DEFAULT_ASYNC_COPY_BYTES = 64 << 20


@dataclass(frozen=True)
class ServerSettings:
    """A validated `server` section."""

    cors_origins: tuple[str, ...] = ()
    presign_seconds: int = DEFAULT_PRESIGN_SECONDS
    allow_private_callbacks: bool = False
    staging_buckets: tuple[str, ...] = ()
    checkout_dirs: tuple[str, ...] = ()
    async_copy_bytes: int = DEFAULT_ASYNC_COPY_BYTES

    def is_default(self) -> bool:
        return self == ServerSettings()

    def to_json(self) -> dict[str, Any]:
        return {"cors_origins": list(self.cors_origins), "presign_seconds": self.presign_seconds,
                "allow_private_callbacks": self.allow_private_callbacks,
                "staging_buckets": list(self.staging_buckets), "checkout_dirs": list(self.checkout_dirs),
                "async_copy_bytes": self.async_copy_bytes}


def parse_server(value: Any, where: str) -> ServerSettings:
    """The `server` section; ConfigError names the field and the fix."""
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: server must be a JSON object like "
                          '{"cors_origins": ["https://portal.example.org"]}')
    unknown = sorted(set(value) - _FIELDS)
    if unknown:
        raise ConfigError(f"{where}: server has unknown field(s) {', '.join(map(repr, unknown))} "
                          f"(known: {', '.join(sorted(_FIELDS))})")
    origins = value.get("cors_origins", [])
    if not isinstance(origins, list) or not all(isinstance(o, str) for o in origins):
        raise ConfigError(f"{where}: server.cors_origins must be a list of origins like "
                          '"https://portal.example.org"')
    for origin in origins:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
            raise ConfigError(f"{where}: server.cors_origins entry {origin!r} is not an origin "
                              "(scheme://host[:port], no path)")
    seconds = value.get("presign_seconds", DEFAULT_PRESIGN_SECONDS)
    if isinstance(seconds, bool) or not isinstance(seconds, int) or not 1 <= seconds <= MAX_PRESIGN_SECONDS:
        raise ConfigError(f"{where}: server.presign_seconds {seconds!r} must be a whole number of "
                          f"seconds from 1 to {MAX_PRESIGN_SECONDS} (default {DEFAULT_PRESIGN_SECONDS})")
    private = value.get("allow_private_callbacks", False)
    if not isinstance(private, bool):
        raise ConfigError(f"{where}: server.allow_private_callbacks must be true or false")
    return ServerSettings(tuple(o.rstrip("/") for o in origins), seconds, private,
                          _staging(value.get("staging_buckets", []), where),
                          _checkout_dirs(value.get("checkout_dirs", []), where),
                          _async_bytes(value.get("async_copy_bytes", DEFAULT_ASYNC_COPY_BYTES), where))


def _async_bytes(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{where}: server.async_copy_bytes {value!r} must be a whole number of bytes "
                          f"(default {DEFAULT_ASYNC_COPY_BYTES})")
    return value


def _strings(value: Any, name: str, where: str, example: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{where}: server.{name} must be a list like [{example!r}]")
    return value


def _staging(value: Any, where: str) -> tuple[str, ...]:
    out = []
    for url in _strings(value, "staging_buckets", where, "s3://my-staging-bucket"):
        parts = urlsplit(url)
        if parts.scheme not in ("s3", "gs") or not parts.netloc or parts.query or parts.fragment:
            raise ConfigError(f"{where}: server.staging_buckets entry {url!r} is not s3://BUCKET[/PREFIX] "
                              "or gs://BUCKET[/PREFIX]")
        out.append(url.rstrip("/"))
    return tuple(out)


def _checkout_dirs(value: Any, where: str) -> tuple[str, ...]:
    out = []
    for path in _strings(value, "checkout_dirs", where, "/scratch/checkouts"):
        if not path.startswith("/") or "/../" in path + "/" or "\0" in path:
            raise ConfigError(f"{where}: server.checkout_dirs entry {path!r} must be an absolute "
                              "directory without `..`")
        out.append(path.rstrip("/") or "/")
    return tuple(out)
