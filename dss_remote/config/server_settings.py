"""The `server` section of a store's config: what `dss serve` needs to know that is not a secret.

Fields (all optional): `cors_origins` (browser origins allowed to call the API, e.g.
`["https://portal.example.org"]`; none by default), `presign_seconds` (how long a presigned S3/GCS
URL the server hands out lives; default 900, at most 43200) and `allow_private_callbacks`
(subscription callbacks to loopback, private, link-local or metadata addresses; false by default:
a callback URL must not be a way into the server's network; tests turn it on).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ria_store.errors import ConfigError

DEFAULT_PRESIGN_SECONDS = 900
MAX_PRESIGN_SECONDS = 43200
_FIELDS = {"cors_origins", "presign_seconds", "allow_private_callbacks"}


@dataclass(frozen=True)
class ServerSettings:
    """A validated `server` section."""

    cors_origins: tuple[str, ...] = ()
    presign_seconds: int = DEFAULT_PRESIGN_SECONDS
    allow_private_callbacks: bool = False

    def is_default(self) -> bool:
        return self == ServerSettings()

    def to_json(self) -> dict[str, Any]:
        return {"cors_origins": list(self.cors_origins), "presign_seconds": self.presign_seconds,
                "allow_private_callbacks": self.allow_private_callbacks}


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
    return ServerSettings(tuple(o.rstrip("/") for o in origins), seconds, private)
