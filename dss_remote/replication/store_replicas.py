"""A store and its mirrors as backends, from the store's config (or a clone's cached copy of it)."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

from ria_store.archive import ArchiveReader
from ria_store.atomic import write_bytes_atomic
from ria_store.errors import DssError, NotFoundError
from ria_store.layout import DEFAULT_OBJECT_TREE_VERSION

from ..backends import backend_for, backend_for_url
from ..backends.base import Backend
from ..config import paths
from ..config.mirrors import PRIMARY_NAME, Mirror
from ..config.store_config import StoreConfig, parse_config, read_config
from .dataset_objects import DatasetObjects
from .remembered import remembering
from .replica import Replica, named
from .replica_set import ReplicaSet

logger = logging.getLogger(__name__)


@dataclass
class StoreReplicas:
    """The POSIX store (first, cheapest) and its mirrors in configured order. `close` (or a
    `with` block) shuts down the writer threads of every dataset's ReplicaSet made here."""

    config: StoreConfig
    backends: list[tuple[str, Backend]]
    _sets: dict[str, ReplicaSet] = field(default_factory=dict)

    @property
    def primary(self) -> Backend:
        return self.backends[0][1]

    def __enter__(self) -> StoreReplicas:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for rs in self._sets.values():
            rs.close()

    def named(self, name: str) -> Backend:
        """The backend of the replica called `name`; DssError naming the replicas there are."""
        return named(self.backends, name)

    def for_dataset(self, dsid: str, archives: ArchiveReader | None = None) -> ReplicaSet:
        """The dataset's ReplicaSet, made once (layout versions are then read once per replica)."""
        if dsid not in self._sets:
            self._sets[dsid] = self._replica_set(dsid, archives or ArchiveReader())
        return self._sets[dsid]

    def _replica_set(self, dsid: str, archives: ArchiveReader) -> ReplicaSet:
        primary = remembering(DatasetObjects(self.primary, dsid, archives, name=PRIMARY_NAME))
        version = DEFAULT_OBJECT_TREE_VERSION
        try:
            version = primary.object_tree_version()
        except DssError as e:  # unmounted here: the mirrors carry their own version files
            logger.debug("store not readable, mirrors use their own layout version: %s", e)
        replicas: list[Replica] = [primary]
        replicas += [remembering(DatasetObjects(b, dsid, archives, name=n, mirror_version=version))
                     for n, b in self.backends[1:]]
        return ReplicaSet(replicas, self.config.quorum)


def mirror_backend(mirror: Mirror) -> Backend:
    """The backend that reaches a mirror as its config entry says (never written if read-only)."""
    return backend_for_url(mirror.url, endpoint_url=mirror.endpoint_url, region=mirror.region,
                           storage_class=mirror.storage_class, writable=mirror.writable)


def open_replicas(url: str, config: StoreConfig) -> StoreReplicas:
    backends: list[tuple[str, Backend]] = [(PRIMARY_NAME, backend_for(url))]
    backends += [(m.name, mirror_backend(m)) for m in config.mirrors]
    return StoreReplicas(config, backends)


def open_store_replicas(store_root: Path) -> StoreReplicas:
    """The replicas of the store at `store_root` (a directory on this machine), as its config says."""
    return open_replicas(f"ria+file://{store_root}", read_config(store_root))


def load_config(store_root: Path, cache_dir: Path | None) -> StoreConfig:
    """The store's config; a node that cannot see the store uses the copy cached by the last run
    that could (under the clone's git dir), so it still finds the mirrors."""
    cache = None
    if cache_dir is not None:
        cache = cache_dir / f"{hashlib.sha1(str(store_root).encode()).hexdigest()[:16]}.json"
    if store_root.is_dir():
        cfg = read_config(store_root)
        if cache is not None:
            text = cfg.dumps()
            try:
                if not cache.is_file() or cache.read_text() != text:
                    write_bytes_atomic(cache, text.encode())
            except OSError as e:
                logger.debug("cannot cache the store config in %s: %s", cache, e)
        return cfg
    if cache is not None and cache.is_file():
        logger.info("store %s not reachable; using its config cached in %s", store_root, cache)
        return parse_config(cache.read_text(), str(cache))
    # Nothing to go on: run without mirrors; every verb then names the missing store.
    logger.debug("store %s not reachable and no cached %s", store_root, paths.CONFIG)
    return StoreConfig()


def load_served_config(backend: Backend, url: str, cache_dir: Path | None) -> StoreConfig:
    """The config of a store reached read-only over HTTP (`dss/config.json` there; none: no
    mirrors); when the server cannot answer, the copy cached by the last run that could."""
    cache = None
    if cache_dir is not None:
        cache = cache_dir / f"{hashlib.sha1(url.encode()).hexdigest()[:16]}.json"
    try:
        text = backend.read_bytes(paths.CONFIG).decode("utf-8", "replace")
    except NotFoundError:
        return StoreConfig()
    except DssError as e:
        if cache is not None and cache.is_file():
            logger.info("store %s not reachable (%s); using its config cached in %s", url, e, cache)
            return parse_config(cache.read_text(), str(cache))
        raise
    cfg = parse_config(text, f"{url}/{paths.CONFIG}")
    if cache is not None:
        try:
            write_bytes_atomic(cache, cfg.dumps().encode())
        except OSError as e:
            logger.debug("cannot cache the store config in %s: %s", cache, e)
    return cfg
