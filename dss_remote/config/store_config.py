"""The store's own settings file, `dss/config.json`: read strictly, written atomically.

Fields: `version` (format, 1), `mirrors` (list of mirror entries, see mirrors.py),
`write_quorum` ("all" or a number of replicas) and the optional `delivery` (webhook retry schedule,
see delivery_policy.py). It never holds credentials.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ria_store.atomic import write_bytes_atomic
from ria_store.errors import ConfigError, from_os_error

from . import paths
from .delivery_policy import DeliveryPolicy, parse_delivery
from .mirrors import Mirror, parse_mirrors, parse_quorum

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
_FIELDS = {"version", "mirrors", "write_quorum", "delivery"}


@dataclass(frozen=True)
class StoreConfig:
    """A validated `dss/config.json`."""

    mirrors: tuple[Mirror, ...] = ()
    #: "all" or a number
    write_quorum: str | int = "all"
    version: int = FORMAT_VERSION
    delivery: DeliveryPolicy = field(default_factory=DeliveryPolicy)

    @property
    def writable_replicas(self) -> int:
        """The store and its writable mirrors: what writes go to and the quorum counts."""
        return 1 + sum(m.writable for m in self.mirrors)

    @property
    def quorum(self) -> int:
        """How many writable replicas (the store and its writable mirrors) must take a write."""
        return parse_quorum(self.write_quorum, self.writable_replicas, paths.CONFIG)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"version": self.version, "mirrors": [m.to_json() for m in self.mirrors]}
        if self.write_quorum != "all":
            out["write_quorum"] = self.write_quorum
        if not self.delivery.is_default():
            out["delivery"] = self.delivery.to_json()
        return out

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n"


def parse_config(text: str, where: str) -> StoreConfig:
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
    mirrors = tuple(parse_mirrors(cfg.get("mirrors", []), where))
    quorum = cfg.get("write_quorum", "all")
    delivery = parse_delivery(cfg["delivery"], where) if "delivery" in cfg else DeliveryPolicy()
    config = StoreConfig(mirrors=mirrors, write_quorum=quorum, delivery=delivery)
    parse_quorum(quorum, config.writable_replicas, where)
    return config


def config_path(store_root: Path) -> Path:
    return store_root / paths.CONFIG


def read_config(store_root: Path) -> StoreConfig:
    """The store's config; the default when the store has none (a store DataLad created)."""
    path = config_path(store_root)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return StoreConfig()
    except OSError as e:
        raise from_os_error(e, str(path)) from e
    return parse_config(text, str(path))


def write_config(store_root: Path, cfg: StoreConfig) -> None:
    text = cfg.dumps()
    parse_config(text, paths.CONFIG)  # never write what we would refuse to read
    path = config_path(store_root)
    try:
        write_bytes_atomic(path, text.encode())
    except OSError as e:
        raise from_os_error(e, str(path), writing=True) from e
