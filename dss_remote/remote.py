"""git-annex-remote-dss: the external special remote protocol mapped onto a ReplicaSet.

This is the only place that builds annexremote's RemoteError: every verb turns our DssError
(and, as a last resort, any bug) into a one-line failure reply instead of killing the process.
"""

from __future__ import annotations

import functools
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from annexremote import Master, ProtocolError, RemoteError, SpecialRemote

from ria_store.archive import ArchiveReader
from ria_store.errors import DssError, UrlError, one_line
from ria_store.keys import parse_key
from ria_store.layout import check_dataset_id

from .backends import backend_for, check_usable_url
from .config import paths
from .config.settings import SETTINGS, Resolver, read_git_remote_config
from .replication.replica_set import ReplicaSet
from .replication.store_replicas import load_config, load_served_config, open_replicas

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


def _verb(func: F) -> F:
    """Turn expected failures (DssError) and, defensively, bugs into RemoteError replies."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except RemoteError:
            raise
        except DssError as e:
            logger.debug("%s failed: %s", func.__name__, e, exc_info=True)
            raise RemoteError(one_line(e)) from e
        except Exception as e:  # a bug must not take down the remote (and -J siblings with it)
            logger.debug("internal error in %s", func.__name__, exc_info=True)
            raise RemoteError(one_line(
                f"internal error in dss remote ({type(e).__name__}: {e}); rerun with "
                "DSS_DEBUG=1 and `git annex --debug` and report it")) from e

    return wrapper  # type: ignore[return-value]


class DssRemote(SpecialRemote):
    """The dss special remote; see the module docstring."""

    def __init__(self, annex: Master) -> None:
        super().__init__(annex)
        self.configs = {s.name: s.description for s in SETTINGS.values()}
        self._archives = ArchiveReader()
        self._replicas: ReplicaSet | None = None
        self._store: Path | None = None  # the store's path, when it is reached as a file system
        self._store_url: str | None = None
        self._dsid: str | None = None

    # GETINFO is only asked by `git annex info`; compute it then, not on every start-up.
    @property
    def info(self) -> dict[str, str]:
        return self._info()

    @info.setter
    def info(self, value: dict[str, str]) -> None:
        pass

    # -- setup ----------------------------------------------------------------------------
    @_verb
    def initremote(self) -> None:
        url = self.annex.getconfig("url")
        if not url:
            raise UrlError("url= is required, e.g. `git annex initremote NAME type=external "
                           "externaltype=dss encryption=none url=ria+file:///data/store`")
        check_usable_url(url)
        archive_id = self.annex.getconfig("archive-id")
        if not archive_id:
            archive_id = self._datalad_id() or self.annex.getuuid()
            self.annex.setconfig("archive-id", archive_id)
        check_dataset_id(archive_id)

    def _datalad_id(self) -> str | None:
        git_dir = self.annex.getgitdir()
        res = subprocess.run(["git", f"--git-dir={git_dir}", "config", "--blob",
                              ":.datalad/config", "datalad.dataset.id"],
                             capture_output=True, text=True, check=False)
        return res.stdout.strip() or None

    @_verb
    def prepare(self) -> None:
        git: dict[str, str] = {}
        try:
            name = self.annex.getgitremotename()
            git = read_git_remote_config(self.annex.getgitdir(), name)
        except ProtocolError as e:  # git-annex before 8.20210127: no per-clone overrides
            logger.debug("no git remote name: %s", e)
        resolver = Resolver(git, self.annex.getconfig)  # git config > annex config > default
        url = resolver.url()  # the store's own config can only be read once we know the store
        if not url:
            raise UrlError("this remote has no url; run `git annex enableremote NAME "
                           "url=ria+file:///path/to/store`")
        su = check_usable_url(url, read_only_ok=True)
        if not su.is_local:
            # Cloned over ria+http(s) (DataLad's ora-url): where the remote's own store path is
            # mounted, read and write it there; the read-only web copy is for nodes without it.
            own = resolver.get("url")
            if own and own != url and own.startswith("ria+file:") and Path(
                    check_usable_url(own).path).is_dir():
                url, su = own, check_usable_url(own)
        cache_dir = Path(self.annex.getgitdir()) / paths.CLONE_CONFIG_CACHE
        store = Path(su.path) if su.is_local else None
        store_cfg = (load_config(store, cache_dir) if store is not None
                     else load_served_config(backend_for(url), url, cache_dir))
        dsid = resolver.get("archive-id")
        if not dsid:
            raise DssError("this remote has no archive-id; run `git annex enableremote NAME "
                           "archive-id=<dataset id>`")
        check_dataset_id(dsid)
        self._store, self._store_url, self._dsid = store, url, dsid
        self._replicas = open_replicas(url, store_cfg).for_dataset(dsid, self._archives)
        logger.debug("prepared: store %s dataset %s replicas %s", store, dsid,
                     [r.name for r in self._replicas.replicas])

    @property
    def replicas(self) -> ReplicaSet:
        if self._replicas is None:
            raise DssError("remote used before PREPARE (a git-annex protocol error)")
        return self._replicas

    # -- transfers ------------------------------------------------------------------------
    @_verb
    def transfer_store(self, key: str, local_file: str) -> None:
        self.replicas.store(parse_key(key), Path(local_file), self.annex.progress)

    @_verb
    def transfer_retrieve(self, key: str, local_file: str) -> None:
        self.replicas.retrieve(parse_key(key), Path(local_file), self.annex.progress)

    @_verb
    def checkpresent(self, key: str) -> bool:
        return self.replicas.present(parse_key(key))

    @_verb
    def remove(self, key: str) -> None:
        self.replicas.remove(parse_key(key))

    def close(self) -> None:
        """Shut down the replica set's writer threads; git-annex has closed the conversation."""
        if self._replicas is not None:
            self._replicas.close()

    # -- cheap queries --------------------------------------------------------------------
    def getcost(self) -> int:
        return 100  # a mounted file system, as git-annex's own directory remote

    def getavailability(self) -> str:
        return "global"  # a store is shared by every clone and cluster node that mounts it

    def whereis(self, key: str) -> str | None:
        try:
            return self.replicas.whereis(parse_key(key))
        except DssError as e:  # WHEREIS has no failure message; never crash on it
            logger.debug("whereis %s: %s", key, e)
            return None

    def _info(self) -> dict[str, str]:
        if self._replicas is None or self._store_url is None or self._dsid is None:
            return {}
        info = {"store": str(self._store or self._store_url), "dataset id": self._dsid,
                "replicas": " ".join(f"{r.name}={r.url}" for r in self.replicas.replicas),
                "write quorum": str(self.replicas.quorum)}
        objects = self.replicas.replicas[0]
        try:
            version = objects.object_tree_version()
            info["object tree"] = {"1": "v1 (hashdirlower)", "2": "v2 (hashdirmixed)"}[version]
            source = objects.archive()
            index = None if source is None else objects.archives.index(source)
            info["archive"] = "none" if index is None else f"{len(index.members)} members"
        except DssError as e:
            info["status"] = one_line(e)
        return info


def main() -> None:
    """Entry point of `git-annex-remote-dss`."""
    output = sys.stdout
    sys.stdout = sys.stderr  # stray prints must never corrupt the protocol
    master = Master(output)
    remote = DssRemote(master)
    master.LinkRemote(remote)
    _setup_logging(master)
    try:
        master.Listen()
    finally:
        remote.close()


def _setup_logging(master: Master) -> None:
    level = os.environ.get("DSS_DEBUG", "")
    handler = master.LoggingHandler()
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    targets = [logging.getLogger()] if level == "2" else [
        logging.getLogger("dss_remote"), logging.getLogger("ria_store")]
    for log in targets:
        log.addHandler(handler)
        log.setLevel(logging.DEBUG if level else logging.WARNING)
