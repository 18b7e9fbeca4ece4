"""Which replica a request's `replica` parameter names, and the backends of a store's replicas.

`replica` is None (the POSIX store), `aws` (the store's first S3 mirror), `gcp` (its first GCS
mirror) or any replica's dss name (`store`, or a mirror's `name` in the store config). `aws` and
`gcp` fall back to the POSIX store when the store has no such mirror: the `hca` client always sends
`replica=aws`, and must work against a store without mirrors.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from ria_store.archive import ArchiveReader
from ria_store.errors import DssError
from ria_store.layout import DEFAULT_OBJECT_TREE_VERSION

from ..backends.base import Backend
from ..config import paths
from ..config.mirrors import PRIMARY_NAME
from ..config.store_config import StoreConfig, read_config
from ..replication.dataset_objects import DatasetObjects
from ..replication.replica import named
from ..replication.store_replicas import StoreReplicas, open_store_replicas
from .errors import ApiError, NeedsThread

logger = logging.getLogger(__name__)

#: the HCA DSS replica names and the mirror URL scheme each stands for
HCA_REPLICAS = {"aws": "s3", "gcp": "gs"}


@dataclass
class ServedReplicas:
    """The replicas of one store as the server reads them: backends made once, each dataset's
    DatasetObjects (and so its layout version) once per replica."""

    config: StoreConfig
    replicas: StoreReplicas
    archives: ArchiveReader = field(default_factory=ArchiveReader)
    _objects: dict[tuple[str, str], DatasetObjects] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.replicas.backends]

    def backend(self, name: str) -> Backend:
        return named(self.replicas.backends, name)

    def resolve(self, wanted: str | None) -> str:
        """The dss name of the replica `wanted` names; ApiError 400 naming the known names."""
        if wanted is None:
            return PRIMARY_NAME
        if wanted in HCA_REPLICAS:
            scheme = HCA_REPLICAS[wanted]
            return next((m.name for m in self.config.mirrors if m.scheme == scheme), PRIMARY_NAME)
        if wanted in self.names:
            return wanted
        known = ", ".join([*HCA_REPLICAS, *self.names])
        raise ApiError(400, "illegal_arguments", f"unknown replica {wanted!r}; known: {known}")

    def order(self, first: str) -> list[str]:
        """`first`, then the other replicas in the store's cost order (the POSIX store first)."""
        return [first] + [n for n in self.names if n != first]

    def objects(self, name: str, dsid: str) -> DatasetObjects:
        """The dataset's keys on replica `name` (a mirror uses the dataset's layout version in the
        POSIX store for datasets it does not hold yet, as the special remote does)."""
        with self._lock:
            found = self._objects.get((name, dsid))
        if found is not None:
            return found
        backend = self.backend(name)
        if name == PRIMARY_NAME:
            objects = DatasetObjects(backend, dsid, self.archives, name=name)
        else:
            version = None
            try:
                version = self.objects(PRIMARY_NAME, dsid).object_tree_version()
            except DssError as e:
                logger.debug("dataset %s not readable in the store; mirror uses its own version: %s",
                             dsid, e)
            objects = DatasetObjects(backend, dsid, self.archives, name=name,
                                     mirror_version=version or DEFAULT_OBJECT_TREE_VERSION)
        with self._lock:
            return self._objects.setdefault((name, dsid), objects)


_cache: dict[Path, tuple[object, ServedReplicas]] = {}
_cache_lock = threading.Lock()


def _config_identity(store_root: Path) -> object:
    try:
        st = os.stat(store_root / paths.CONFIG)
    except FileNotFoundError:
        return None
    except OSError as e:  # read_config names the problem
        return ("error", e.errno)
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def served_replicas(store_root: Path, *, quick: bool = False) -> ServedReplicas:
    """The store's replicas, made again only when its config file changed (a mirror added).
    `quick`: NeedsThread rather than make them (making a cloud client may look up credentials)."""
    identity = _config_identity(store_root)
    with _cache_lock:
        cached = _cache.get(store_root)
    if cached is not None and cached[0] == identity:
        return cached[1]
    if quick:
        raise NeedsThread
    served = ServedReplicas(read_config(store_root), open_store_replicas(store_root))
    with _cache_lock:
        _cache[store_root] = (identity, served)
    return served
