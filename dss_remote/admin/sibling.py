"""Make a dataset publishable to a store: its directory there, the git remote and the dss remote."""

from __future__ import annotations

import logging
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ria_store import bare_repo, sharing
from ria_store import store as ria
from ria_store.errors import ConfigError, DssError, one_line
from ria_store.layout import check_alias, check_dataset_id

from ..backends import check_usable_url
from ..hook.install import install_hook
from .sharing import GIT_SHARED

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sibling:
    """What `create_sibling` set up."""

    dataset_id: str
    git_remote: str
    storage_remote: str
    storage_uuid: str
    dataset_dir: Path
    store_url: str
    #: the Unix group that shares the store, None for a private store
    group: str | None = None


def _git(repo: Path, *args: str, check: bool = True) -> str:
    res = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=False)
    if check and res.returncode != 0:
        raise DssError(f"`git {' '.join(args)}` in {repo} failed: "
                       f"{one_line(res.stderr or res.stdout) or res.returncode}")
    return res.stdout.strip()


def dataset_id(repo: Path) -> str:
    """The DataLad dataset id of `repo`; ConfigError with the fix if it is not a DataLad dataset."""
    cfg = repo / ".datalad" / "config"
    dsid = _git(repo, "config", "-f", str(cfg), "datalad.dataset.id", check=False) if cfg.is_file() else ""
    if not dsid:
        raise ConfigError(f"{repo} is not a DataLad dataset (no datalad.dataset.id in .datalad/config); "
                          "create it with `datalad create` (or `datalad create --force` in an existing repo)")
    return check_dataset_id(dsid)


def create_sibling(repo: Path, name: str, url: str, *, alias: str | None = None,
                   storage_name: str | None = None, shared: str | None = None) -> Sibling:
    """Set up `repo` to publish to the store at `url` (idempotent; see `dss create-sibling --help`).

    In a store shared by a group, the bare repo is `git init --shared=group` unless `shared` says
    otherwise, so every member's push can write to it."""
    su = check_usable_url(url)
    if alias is not None:
        check_alias(alias)
    storage = storage_name or f"{name}-storage"
    if storage == name:
        raise ConfigError(f"the storage remote needs its own name, not {name!r}: pass --storage-name")
    repo = repo.resolve()
    dsid = dataset_id(repo)
    if not _git(repo, "config", "annex.uuid", check=False):
        raise ConfigError(f"{repo} is not a git-annex repository; run `git annex init` there first")
    store = ria.open_store(Path(su.path))
    dsdir = store.dataset_dir(dsid)
    # Check every conflict before writing anything.
    existing_url = _git(repo, "config", f"remote.{name}.url", check=False)
    if existing_url and Path(existing_url) != dsdir:
        raise ConfigError(f"{repo} already has a remote {name!r} with url {existing_url}; choose "
                          "another name or remove it (`git remote remove`)")
    uuid = _git(repo, "config", f"remote.{storage}.annex-uuid", check=False)
    kind = _git(repo, "config", f"remote.{storage}.annex-externaltype", check=False)
    if uuid and kind != "dss":
        raise ConfigError(f"{repo} already has a remote {storage!r} of another type "
                          f"({kind or 'not external'}); choose another --storage-name")
    if alias is not None:
        ria.alias_is_set(store, dsid, alias)

    gid = sharing.shared_gid(store.path)
    if gid is not None and shared is None:
        shared = GIT_SHARED
    ria.create_dataset(store, dsid, alias)
    bare_repo.init_bare(dsdir, shared)
    install_hook(dsdir)
    if uuid:
        _git(repo, "annex", "enableremote", storage, f"url={url}", f"archive-id={dsid}")
    else:
        _git(repo, "annex", "initremote", storage, "type=external", "externaltype=dss",
             "encryption=none", "autoenable=true", f"url={url}", f"archive-id={dsid}")
        uuid = _git(repo, "config", f"remote.{storage}.annex-uuid")

    if not existing_url:
        _git(repo, "remote", "add", name, str(dsdir))
    # git-annex must never treat the bare repo as an annex: content goes through the dss remote.
    _git(repo, "config", f"remote.{name}.annex-ignore", "true")
    _git(repo, "config", f"remote.{name}.datalad-publish-depends", storage)
    # `datalad clone` reads this to find (and re-point) the dataset's storage remote.
    bare_repo.set_config(dsdir, "datalad.ora-remote.uuid", uuid)
    logger.info("dataset %s: sibling %s -> %s, storage %s (%s)", dsid, name, dsdir, storage, uuid)
    return Sibling(dsid, name, storage, uuid, dsdir, url,
                   None if gid is None else sharing.group_name(gid))
