"""The store's own settings file, `dss/config.json`: read strictly, written atomically."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from ria_store.atomic import write_bytes_atomic
from ria_store.errors import ConfigError, from_os_error

logger = logging.getLogger(__name__)

CONFIG_RELPATH = "dss/config.json"
FORMAT_VERSION = 1
_FIELDS = {"version", "mirrors"}


def default_config() -> dict[str, Any]:
    return {"version": FORMAT_VERSION, "mirrors": []}


def parse_config(text: str, where: str) -> dict[str, Any]:
    """Validate the JSON of a store config; ConfigError names the field and the fix."""
    try:
        cfg = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{where} is not valid JSON ({e.msg} at line {e.lineno} column {e.colno}); "
                          "fix the file or restore it from a mirror") from e
    if not isinstance(cfg, dict):
        raise ConfigError(f"{where} must hold a JSON object, not {type(cfg).__name__}")
    unknown = sorted(set(cfg) - _FIELDS)
    if unknown:
        raise ConfigError(f"{where} has unknown field(s) {', '.join(map(repr, unknown))} "
                          f"(known: {', '.join(sorted(_FIELDS))}); remove them or upgrade dss-remote")
    if cfg.get("version") != FORMAT_VERSION:
        raise ConfigError(f"{where} has format version {cfg.get('version')!r}; this dss-remote "
                          f"reads version {FORMAT_VERSION} (upgrade dss-remote)")
    mirrors = cfg.get("mirrors", [])
    if not isinstance(mirrors, list):
        raise ConfigError(f"{where}: 'mirrors' must be a list")
    if mirrors:
        # Never ignore a mirror silently: content would not reach it.
        raise ConfigError(f"{where} lists mirrors, which this dss-remote cannot write yet; "
                          "upgrade dss-remote")
    return cfg


def read_config(store_root: Path) -> dict[str, Any]:
    """The store's config; the default when the store has none (a store DataLad created)."""
    path = store_root / CONFIG_RELPATH
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return default_config()
    except OSError as e:
        raise from_os_error(e, str(path)) from e
    return parse_config(text, str(path))


def write_config(store_root: Path, cfg: dict[str, Any]) -> None:
    parse_config(json.dumps(cfg), CONFIG_RELPATH)
    path = store_root / CONFIG_RELPATH
    try:
        write_bytes_atomic(path, (json.dumps(cfg, indent=2, sort_keys=True) + "\n").encode())
    except OSError as e:
        raise from_os_error(e, str(path), writing=True) from e
