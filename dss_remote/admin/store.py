"""Store-level admin operations behind `dss init`, `dss adopt` and `dss mirror add|remove|list`."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ria_store import sharing
from ria_store import store as ria
from ria_store.atomic import makedirs_durable
from ria_store.errors import ConfigError, DssError, NotFoundError, from_os_error, one_line
from ria_store.layout import VERSION_FILE

from ..backends.base import Backend
from ..config import paths
from ..config.mirrors import Mirror, parse_mirror, parse_mirrors
from ..config.store_config import StoreConfig, read_config, write_config
from ..hook.install import adopt as install_hooks
from ..replication.store_replicas import mirror_backend
from .sharing import Shared, check_can_init, check_group, make_shared_root, share_store

logger = logging.getLogger(__name__)


def init_store(root: Path, mirrors: Sequence[Mirror] = (), group: str | None = None) -> str:
    """Create (or adopt) a RIA store with our config; return 'created', 'adopted' or 'exists'.

    Idempotent: an existing `dss/config.json` is validated, never overwritten; `mirrors` are
    added to it (each checked by writing the store's top-level files to it). With `group`, the
    store is shared by that Unix group (admin/sharing.py); a store that already holds datasets
    is shared with `adopt_store` instead.
    """
    gid = None
    if group is not None:
        gid = check_group(group)
        check_can_init(root, gid)
        if not root.exists():
            make_shared_root(root, gid)
    created = ria.create_store(root)
    if gid is not None:
        share_store(root, gid)
    existed = (root / paths.CONFIG).exists()
    cfg = read_config(root) if existed else StoreConfig()
    if not existed:
        write_config(root, cfg)
    for m in mirrors:
        if m.url not in {have.url for have in read_config(root).mirrors}:
            add_mirror(root, m)
    if created:
        return "created"
    return "exists" if existed else "adopted"


@dataclass(frozen=True)
class Adopted:
    """What `adopt_store` did: the sharing (None for a store no group shares) and each dataset's hook."""

    shared: Shared | None
    hooks: list[tuple[str, str]]


def adopt_store(root: Path, group: str | None = None) -> Adopted:
    """Install our post-update hook in every dataset of the store; with `group`, or when the store
    is shared by a group already, (re)apply the sharing first (admin/sharing.py). Idempotent."""
    store = ria.open_store(root)
    gid = check_group(group) if group is not None else sharing.shared_gid(store.path)
    shared = share_store(store.path, gid) if gid is not None else None
    return Adopted(shared, install_hooks(store.path))


def mirror_from_args(url: str, name: str | None = None, endpoint_url: str | None = None,
                     region: str | None = None, storage_class: str | None = None, *,
                     read_only: bool = False) -> Mirror:
    entry: dict[str, str | bool | None] = {
        "url": url, "name": name, "endpoint_url": endpoint_url, "region": region,
        "storage_class": storage_class, "read_only": read_only or None}
    return parse_mirror({k: v for k, v in entry.items() if v is not None}, "mirror")


def seed_mirror(root: Path, mirror: Mirror, cfg: StoreConfig) -> None:
    """Make the mirror a RIA store root: its layout version and our config, written there.
    This is also the reachability check: a wrong bucket, endpoint or credential fails here.
    A read-only mirror is only read: it must already serve the store's layout version."""
    backend = mirror_backend(mirror)
    version = (root / VERSION_FILE).read_bytes()  # open_store() has checked it
    if not mirror.writable:
        _check_read_only_mirror(backend, mirror, version)
        return
    try:
        if backend.local_root is not None:  # a directory mirror: like a bucket, but we may make it
            makedirs_durable(backend.local_root)
        backend.write_bytes(VERSION_FILE, version)
        backend.write_bytes(paths.CONFIG, cfg.dumps().encode())
    except OSError as e:
        raise from_os_error(e, f"mirror {mirror.name} ({mirror.url})", writing=True) from e
    except DssError as e:
        raise DssError(f"mirror {mirror.name} ({mirror.url}) is not usable: {one_line(e)}") from e


def _check_read_only_mirror(backend: Backend, mirror: Mirror, version: bytes) -> None:
    try:
        served = backend.read_bytes(VERSION_FILE)
    except NotFoundError as e:
        raise DssError(f"mirror {mirror.name} ({mirror.url}) serves no {VERSION_FILE}; point the url at "
                       "a copy of the store's root directory (dss only reads a read-only mirror)") from e
    except DssError as e:
        raise DssError(f"mirror {mirror.name} ({mirror.url}) is not readable: {one_line(e)}") from e
    if served.strip() != version.strip():
        raise DssError(f"mirror {mirror.name} ({mirror.url}) serves {VERSION_FILE} "
                       f"{served.strip()[:20]!r}, the store has {version.strip()!r}; it is not a copy "
                       "of this store (fix the url or the copy)")


def add_mirror(root: Path, mirror: Mirror) -> StoreConfig:
    store = ria.open_store(root)
    cfg = read_config(store.path)
    for have in cfg.mirrors:
        if have.url == mirror.url or have.name == mirror.name:
            raise ConfigError(f"{paths.CONFIG} already has a mirror {have.name} ({have.url}); "
                              "remove it first or pick another --name")
    new = dataclasses.replace(cfg, mirrors=(*cfg.mirrors, mirror))
    parse_mirrors([m.to_json() for m in new.mirrors], paths.CONFIG)
    seed_mirror(store.path, mirror, new)
    write_config(store.path, new)
    for other in cfg.mirrors:  # keep every mirror's copy of the config current
        _push_config(store.path, other, new)
    return new


def remove_mirror(root: Path, name_or_url: str) -> StoreConfig:
    store = ria.open_store(root)
    cfg = read_config(store.path)
    keep = tuple(m for m in cfg.mirrors if name_or_url not in (m.name, m.url))
    if len(keep) == len(cfg.mirrors):
        names = ", ".join(f"{m.name} ({m.url})" for m in cfg.mirrors) or "none"
        raise NotFoundError(f"no mirror {name_or_url!r} in {store.path / paths.CONFIG} (mirrors: {names})")
    quorum = cfg.write_quorum
    new = dataclasses.replace(cfg, mirrors=keep)
    if isinstance(quorum, int) and quorum > new.writable_replicas:
        new = dataclasses.replace(new, write_quorum="all")
    write_config(store.path, new)
    for other in keep:
        _push_config(store.path, other, new)
    return new


def set_quorum(root: Path, quorum: str) -> StoreConfig:
    store = ria.open_store(root)
    cfg = read_config(store.path)
    value: str | int = int(quorum) if quorum.isdigit() else quorum
    new = dataclasses.replace(cfg, write_quorum=value)
    new.quorum  # noqa: B018 - validates
    write_config(store.path, new)
    for other in new.mirrors:
        _push_config(store.path, other, new)
    return new


def _push_config(root: Path, mirror: Mirror, cfg: StoreConfig) -> None:
    if not mirror.writable:
        return  # whatever fills a read-only mirror copies the config with the rest
    try:
        mirror_backend(mirror).write_bytes(paths.CONFIG, cfg.dumps().encode())
    except DssError as e:  # the store's own copy is authoritative; `dss sync` catches up
        logger.warning("could not update %s on mirror %s: %s (run `dss sync` later)",
                       paths.CONFIG, mirror.name, e)
