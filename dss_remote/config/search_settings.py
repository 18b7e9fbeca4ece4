"""The optional `search` section of `dss/config.json`: which files of a bundle version are indexed.

`indexed`: globs (fnmatch, `*` crosses `/`) of the paths whose content is read into the bundle's
search document, default `*.json` and `.datalad/config`; `max_bytes`: larger files are listed in
the manifest part only (default 1 MiB, as the issue and the DSS's checkout cache of JSON files).
A row a writer of the DSS API marked `indexed` keeps that mark whatever the globs say.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ria_store.errors import ConfigError

DEFAULT_INDEXED = ("*.json", ".datalad/config")
DEFAULT_MAX_BYTES = 1 << 20
_FIELDS = {"indexed", "max_bytes"}


@dataclass(frozen=True)
class SearchSettings:
    indexed: tuple[str, ...] = DEFAULT_INDEXED
    max_bytes: int = DEFAULT_MAX_BYTES

    def is_default(self) -> bool:
        return self == SearchSettings()

    def to_json(self) -> dict[str, Any]:
        return {"indexed": list(self.indexed), "max_bytes": self.max_bytes}


def parse_search(obj: Any, where: str) -> SearchSettings:
    """Validate the `search` section; ConfigError names the field and the fix."""
    if not isinstance(obj, dict):
        raise ConfigError(f"{where}: search must be an object like "
                          '{"indexed": ["*.json"], "max_bytes": 1048576}')
    unknown = sorted(set(obj) - _FIELDS)
    if unknown:
        raise ConfigError(f"{where}: search has unknown field(s) {', '.join(map(repr, unknown))} "
                          f"(known: {', '.join(sorted(_FIELDS))}); remove them")
    globs = obj.get("indexed", list(DEFAULT_INDEXED))
    if not isinstance(globs, list) or not all(isinstance(g, str) and g for g in globs):
        raise ConfigError(f"{where}: search.indexed must be a list of path globs such as \"*.json\"")
    size = obj.get("max_bytes", DEFAULT_MAX_BYTES)
    if isinstance(size, bool) or not isinstance(size, int) or not 0 < size <= 1 << 30:
        raise ConfigError(f"{where}: search.max_bytes {size!r} must be a number of bytes from 1 to "
                          f"{1 << 30} (default {DEFAULT_MAX_BYTES})")
    return SearchSettings(tuple(globs), size)
