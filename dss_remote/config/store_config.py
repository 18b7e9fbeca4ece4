"""The store's own settings file, `dss/config.json`: read strictly, written atomically.

Fields: `version` (format, 1), `mirrors` (list of mirror entries, see mirrors.py),
`write_quorum` ("all" or a number of replicas), the optional `delivery` (webhook retry schedule,
see delivery_policy.py) and the optional `leftover_age_hours` (how old a temp file, unfinished
upload or empty directory of an interrupted write must be before `dss sync`/`dss repair` remove
it: no writer is still busy with it; default 6) and the optional `server` (what `dss serve` needs:
CORS origins, presigned URL lifetime, private callbacks; see server_settings.py) and the optional
`search` (which files are read into search documents; see search_settings.py). It never holds
credentials.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from ria_store.atomic import write_bytes_atomic
from ria_store.errors import ConfigError, from_os_error

from . import paths
from .delivery_policy import DeliveryPolicy, parse_delivery
from .mirrors import Mirror, parse_mirrors, parse_quorum
from .search_settings import SearchSettings, parse_search
from .server_settings import ServerSettings, parse_server

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
#: hours after its last write from which a leftover of an interrupted write is removed
DEFAULT_LEFTOVER_AGE_HOURS = 6.0
_FIELDS = {"version", "mirrors", "write_quorum", "delivery", "leftover_age_hours", "server",
           "search"}


@dataclass(frozen=True)
class StoreConfig:
    """A validated `dss/config.json`."""

    mirrors: tuple[Mirror, ...] = ()
    #: "all" or a number
    write_quorum: str | int = "all"
    version: int = FORMAT_VERSION
    delivery: DeliveryPolicy = field(default_factory=DeliveryPolicy)
    #: a temp file, unfinished upload or empty directory last written longer ago is a leftover
    leftover_age_hours: float = DEFAULT_LEFTOVER_AGE_HOURS
    server: ServerSettings = field(default_factory=ServerSettings)
    search: SearchSettings = field(default_factory=SearchSettings)

    @property
    def leftover_age(self) -> timedelta:
        return timedelta(hours=self.leftover_age_hours)

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
        if self.leftover_age_hours != DEFAULT_LEFTOVER_AGE_HOURS:
            out["leftover_age_hours"] = self.leftover_age_hours
        if not self.server.is_default():
            out["server"] = self.server.to_json()
        if not self.search.is_default():
            out["search"] = self.search.to_json()
        return out

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n"


def parse_config(text: str, where: str) -> StoreConfig:
    """Validate the JSON of a store config; ConfigError names the field and the fix."""
    try:
        cfg = json.loads(text)
    except json.JSONDecodeError as e:
        # e.msg may end in "at" ("Unterminated string starting at"): name the place apart from it
        raise ConfigError(f"{where} is not valid JSON ({e.msg}: line {e.lineno} column {e.colno}); "
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
    age = parse_leftover_age(cfg.get("leftover_age_hours", DEFAULT_LEFTOVER_AGE_HOURS), where)
    server = parse_server(cfg["server"], where) if "server" in cfg else ServerSettings()
    search = parse_search(cfg["search"], where) if "search" in cfg else SearchSettings()
    config = StoreConfig(mirrors=mirrors, write_quorum=quorum, delivery=delivery, leftover_age_hours=age,
                         server=server, search=search)
    parse_quorum(quorum, config.writable_replicas, where)
    return config


def parse_leftover_age(value: Any, where: str) -> float:
    """`leftover_age_hours`: a number of hours, 0 or more."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1e6:
        raise ConfigError(f"{where}: leftover_age_hours {value!r} must be a number of hours, 0 or "
                          f"more (default {DEFAULT_LEFTOVER_AGE_HOURS:g})")
    return float(value)


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
