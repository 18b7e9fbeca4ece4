"""A bundle version written over the API, as an ordinary version of an ordinary DataLad dataset.

The content first goes to every replica of the dataset (ReplicaSet.store, as `git annex copy
--to` would), then one commit on the dataset's branch holds the files as git-annex symlinks and
one commit on its `git-annex` branch says the store's special remote holds their keys; both
branches move in one compare-and-swap transaction (ria_store.repo_write), so a reader sees the
whole version or none of it. A branch that moved meanwhile (a `datalad push`, another writer)
makes the writer build again on the new tips, up to a few times, then 409. The version is then
recorded with the id the client chose and published exactly as the post-update hook does after
a push (event, webhooks, mirroring of the git side).

A new uuid makes a new dataset: `.datalad/config` with the DataLad dataset id = the bundle uuid,
and a dss special remote (`autoenable=true`, the store's URL) registered on its git-annex branch,
so `datalad clone` + `datalad get` work with no further step.
"""

from __future__ import annotations

import logging
import os
import time
import uuid as uuidlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from ria_store import annex_branch, bare_repo, repo_write
from ria_store import store as ria
from ria_store.errors import DssError
from ria_store.keys import AnnexKey, parse_key
from ria_store.locks import FileLock
from ria_store.sharing import shared_gid

from ..config import paths
from ..history import bundle_store, bundles
from ..hook import post_update
from ..hook.install import install_hook
from ..replication.replica_set import ReplicaSet
from ..replication.store_replicas import StoreReplicas, open_store_replicas
from .file_pool import VersionConflict, staging_file

logger = logging.getLogger(__name__)

#: builds on moved branches before a writer gets 409
ATTEMPTS = 5
_MAIN = "refs/heads/main"
_ANNEX = "refs/heads/git-annex"
_ORA_UUID = "datalad.ora-remote.uuid"
#: the name of the special remote a dataset made over the API registers (`<sibling>-storage` is
#: DataLad's convention; clones see this name)
STORAGE_NAME = "dss-storage"
_SYMLINK = "120000"
_GENERIC_TYPE = "application/octet-stream"


@dataclass(frozen=True)
class BundleFile:
    """One file of a bundle version: its path, annex key and DSS identity."""

    name: str
    key: str
    size: int
    file_uuid: str
    file_version: str
    content_type: str
    #: the dataset whose version holds the file, when it is not a deposit (its content is copied
    #: from that dataset's replicas when this one has none)
    from_dataset: str | None = None


@dataclass(frozen=True)
class Written:
    """What `write_version` did: the version, its commit, and whether it is new."""

    dataset_id: str
    version: str
    commit: str
    created: bool
    new_dataset: bool


def _new_dataset_files(dsid: str) -> dict[str, tuple[str, bytes]]:
    """What `datalad create` commits (the dataset id, git-annex's backend and largefiles)."""
    return {
        ".datalad/config": ("100644", f'[datalad "dataset"]\n\tid = {dsid}\n'.encode()),
        ".datalad/.gitattributes": ("100644", b"config annex.largefiles=nothing\n"),
        ".gitattributes": ("100644", b"* annex.backend=SHA256E\n**/.git* annex.largefiles=nothing\n"),
    }


def _is_machinery(path: str) -> bool:
    """Paths a PUT bundle keeps from the branch: the dataset's own, never a bundle's files."""
    return path.startswith(".datalad/") or (("/" not in path) and path.startswith(".git"))


def same_files(manifest: bundles.Manifest, files: Sequence[BundleFile]) -> bool:
    """Whether a recorded version holds exactly these files (names and keys)."""
    have = {str(r["path"]): str(r.get("key")) for r in manifest.files if r.get("type") == "annex"}
    return have == {f.name: f.key for f in files}


def _storage_uuid(repo: Path, dsid: str) -> str:
    value = repo_write._run(repo, "config", "--default", "", "--get", _ORA_UUID).decode().strip()
    if not value:
        raise DssError(f"dataset {dsid} names no storage remote ({_ORA_UUID} in its bare repo): it was "
                       "not made with `dss create-sibling` or `datalad create-sibling-ria`; push it "
                       "once with DataLad, then write to it")
    return value


def _half_made(repo: Path) -> bool:
    """A bare repo with no branch and no storage remote: a creation that was interrupted."""
    if repo_write._run(repo, "config", "--default", "", "--get", _ORA_UUID).decode().strip():
        return False
    return not repo_write._run(repo, "for-each-ref", "--count=1", "refs/heads/").strip()


def _create_dataset(root: Path, dsid: str) -> tuple[Path, str]:
    """A new dataset directory and bare repo with our hook; (its repo, its storage uuid). Each
    step is idempotent and the storage uuid is set last, so an interrupted creation is finished
    by the next write (`_half_made`)."""
    store = ria.open_store(root)
    repo = ria.create_dataset(store, dsid)
    bare_repo.init_bare(repo, "group" if shared_gid(root) is not None else None)
    install_hook(repo)
    repo_write._run(repo, "symbolic-ref", "HEAD", _MAIN)
    storage = str(uuidlib.uuid4())
    bare_repo.set_config(repo, _ORA_UUID, storage)
    return repo, storage


def _annex_commit(repo: Path, tip: str | None, keys: Sequence[str], *, storage: str, dsid: str,
                  store_url: str, new: bool) -> repo_write.CommitSpec:
    when = annex_branch.timestamp()
    logs = {annex_branch.location_log_path(k): k for k in keys}
    old = repo_write.read_paths(repo, tip, list(logs))
    files: dict[str, tuple[str, bytes]] = {}
    for path in logs:
        before = old.get(path, b"")
        after = annex_branch.with_present(before, storage, when)
        if after != before:
            files[path] = ("100644", after)
    if new:
        files["uuid.log"] = ("100644", annex_branch.uuid_log_line(
            storage, f"[{STORAGE_NAME}] dss store {store_url}", when).encode())
        files["remote.log"] = ("100644", annex_branch.remote_log_line(storage, {
            "type": "external", "externaltype": "dss", "encryption": "none", "autoenable": "true",
            "name": STORAGE_NAME, "url": store_url, "archive-id": dsid}, when).encode())
    keep = repo_write.tree_listing(repo, tip) if tip else {}
    for path in files:
        keep.pop(path, None)
    return repo_write.CommitSpec(_ANNEX, tip, "update by dss write API", keep, files)


def _tree_commit(repo: Path, parent: str | None, base: str | None, *, keep_path: Callable[[str], bool],
                 files: Sequence[BundleFile], extra: Mapping[str, tuple[str, bytes]], message: str
                 ) -> repo_write.CommitSpec:
    listing = repo_write.tree_listing(repo, base) if base else {}
    keep = {p: e for p, e in listing.items() if keep_path(p)}
    new: dict[str, tuple[str, bytes]] = dict(extra)
    for f in files:
        keep.pop(f.name, None)
        new[f.name] = (_SYMLINK, annex_branch.symlink_target(f.name, f.key).encode())
    return repo_write.CommitSpec(_MAIN, parent, message, keep, new)


def _put_content(root: Path, dsid: str, files: Sequence[BundleFile], source: Callable[[BundleFile], Path],
                 progress: Callable[[int], None] | None) -> None:
    """Every key on every writable replica of the dataset (quorum as the remote's), from `source`
    (a deposit) or, for a file of another dataset, from that dataset's replicas (verified).

    One key after the other: each waits mostly on its fsyncs (object, directories, checksum
    record), which this machine's file system serialises; 8 threads measured no faster
    (bench/README.md, "Write API")."""
    with open_store_replicas(root) as replicas, replicas.for_dataset(dsid) as rs:
        for i, f in enumerate({f.key: f for f in files}.values()):
            key = parse_key(f.key)
            if not rs.present(key):
                if f.from_dataset is None or f.from_dataset == dsid:
                    rs.store(key, source(f))
                else:
                    _copy_across(root, replicas, f.from_dataset, key, rs)
            if progress is not None:
                progress(i + 1)


def _copy_across(root: Path, replicas: StoreReplicas, other: str, key: AnnexKey, rs: ReplicaSet) -> None:
    """A key of dataset `other` into this dataset's replicas, through a verified local copy."""
    fd, tmp = staging_file(root, "across")
    os.close(fd)
    try:
        with replicas.for_dataset(other) as theirs:
            theirs.retrieve(key, tmp)
        rs.store(key, tmp)
    finally:
        tmp.unlink(missing_ok=True)


def write_version(root: Path, dsid: str, files: Sequence[BundleFile], version: str, *,
                  source: Callable[[BundleFile], Path], creator_uid: int, writer: str | None,
                  base_version: str | None = None, removed: Sequence[str] = (),
                  progress: Callable[[int], None] | None = None) -> Written:
    """Write bundle version `version` of dataset `dsid` holding `files` (PUT), or, with
    `base_version`, that version's files less `removed` plus `files` (PATCH). `source` gives the
    local content of a file whose key no replica has yet."""
    bundles.parse_version(version)
    lock_path = root / paths.WRITE_LOCKS / f"{dsid}.lock"
    with FileLock(lock_path):
        existing = bundle_store.versions(root, dsid) if (root / paths.BUNDLES / dsid).is_dir() else []
        if version in existing:
            if base_version is None and same_files(bundle_store.load(root, dsid, version), files):
                commit = bundle_store.load(root, dsid, version).head.commit
                return Written(dsid, version, commit, False, False)
            raise VersionConflict(f"bundle {dsid} version {version} exists with other files; write "
                                  "under a new version")
        if existing and version <= existing[-1]:
            raise VersionConflict(f"bundle {dsid}: version {version} is not after its newest version "
                                  f"{existing[-1]}; a new version needs a later time")
        store = ria.open_store(root)
        repo = store.dataset_dir(dsid)
        new_dataset = not (repo / "HEAD").is_file() or _half_made(repo)
        if new_dataset:
            repo, storage = _create_dataset(root, dsid)
        else:
            storage = _storage_uuid(repo, dsid)
        _put_content(root, dsid, files, source, progress)
        base_commit = None
        if base_version is not None:
            base_commit = bundle_store.load(root, dsid, base_version).head.commit
        return _commit(root, dsid, repo, files, _Commit(storage, version, new_dataset, base_commit,
                                                        set(removed), creator_uid, writer))


@dataclass(frozen=True)
class _Commit:
    storage: str
    version: str
    new_dataset: bool
    base_commit: str | None
    removed: set[str]
    creator_uid: int
    writer: str | None


def _commit(root: Path, dsid: str, repo: Path, files: Sequence[BundleFile], c: _Commit) -> Written:
    storage, version, new_dataset, base_commit, removed = (c.storage, c.version, c.new_dataset,
                                                           c.base_commit, c.removed)
    creator_uid, writer = c.creator_uid, c.writer
    branch = _branch(repo)
    names = {f.name for f in files}
    store_url = f"ria+file://{root}"
    message = (f"{_subject(version)}\n\nWritten through the DSS API by "
               f"{writer or 'an unknown writer'} (creator_uid {creator_uid}).\n")
    # a generic type says nothing: the row keeps the one its path gives (as for a push)
    identities = {f.name: {"file_uuid": f.file_uuid, "file_version": f.file_version}
                  | ({"content_type": f.content_type} if f.content_type != _GENERIC_TYPE else {})
                  for f in files}
    for _attempt in range(ATTEMPTS):
        tip = bare_repo.rev_parse(repo, branch)
        annex_tip = bare_repo.rev_parse(repo, _ANNEX)
        if tip is not None and _written_earlier(repo, tip, version, files):
            # a write of this version moved the branches, then died before recording it
            # (a kill -9 of the server): record that commit, never a second one
            with bundle_store.lock(root, dsid):
                rec = bundle_store.record(root, dsid, repo, branch, commit=tip, version=version,
                                          identities=identities, lock_held=True)
            if rec is None:  # `dss sync` recorded it meanwhile, under a version of its own
                other = [e.version for e in bundle_store.read_log(root, dsid) if e.commit == tip]
                raise VersionConflict(f"bundle {dsid}: this write was recorded as version "
                                      f"{', '.join(other)} by `dss sync` after an interruption; use it")
            _publish(root, dsid, repo, rec)
            return Written(dsid, version, tip, True, new_dataset)
        first = tip is None
        extra = _new_dataset_files(dsid) if first else {}
        if base_commit is None:  # PUT: the bundle's files, on the dataset's own machinery
            spec = _tree_commit(repo, tip, tip, keep_path=_is_machinery, files=files, extra=extra,
                                message=message)
        else:  # PATCH: the base version's tree, less removed and replaced names
            spec = _tree_commit(repo, tip, base_commit,
                                keep_path=lambda p: p not in removed and p not in names,
                                files=files, extra=extra, message=message)
        spec.branch = branch
        annex = _annex_commit(repo, annex_tip, [f.key for f in files], storage=storage, dsid=dsid,
                              store_url=store_url, new=annex_tip is None)
        made = repo_write.write_commits(repo, [spec, annex], "dss <dss@localhost>", int(time.time()))
        with bundle_store.lock(root, dsid):
            newest = bundle_store.versions(root, dsid)
            if newest and version <= newest[-1]:  # a push recorded one meanwhile
                raise VersionConflict(f"bundle {dsid}: version {newest[-1]} was recorded meanwhile, "
                                      f"after {version}; write under a later version")
            try:
                # git-annex first, then the branch: git moves the refs of one transaction one by one,
                # so a kill -9 between them could leave the branch naming keys git-annex does not
                # know the store holds (`datalad get` fails). This way a kill leaves at most
                # git-annex ahead, saying true things (the keys are in the store already), and the
                # retry builds on it.
                repo_write.move_branches(repo, {_ANNEX: (made[_ANNEX], annex_tip)})
                repo_write.move_branches(repo, {branch: (made[branch], tip)})
            except repo_write.RefMoved as e:
                logger.info("dataset %s: %s; building again", dsid, e)
                continue
            pushed = _record_pushed_parent(root, dsid, repo, branch, tip=tip, version=version)
            rec = bundle_store.record(root, dsid, repo, branch, commit=made[branch], version=version,
                                      identities=identities, lock_held=True)
        if pushed is not None:
            _publish(root, dsid, repo, pushed)
        _publish(root, dsid, repo, rec)
        return Written(dsid, version, made[branch], True, new_dataset)
    raise VersionConflict(f"dataset {dsid} kept changing while version {version} was written "
                          f"({ATTEMPTS} attempts); retry the request")


def _record_pushed_parent(root: Path, dsid: str, repo: Path, branch: str, *, tip: str | None,
                          version: str) -> bundle_store.Recorded | None:
    """A push that landed just before this write, whose hook has not recorded it yet, would never
    be recorded: its hook, waiting for the lock we hold, finds the branch at our commit. Record it
    here, as the version just before ours (under the recording lock, held by the caller)."""
    if tip is None or any(e.commit == tip for e in bundle_store.read_log(root, dsid)):
        return None
    before = bundles.format_version(bundles.parse_version(version) - timedelta(microseconds=1))
    known = bundle_store.versions(root, dsid)
    if known and before <= known[-1]:
        logger.warning("dataset %s: pushed commit %s left unrecorded (no version id between %s and %s); "
                       "`dss sync` records it", dsid, tip[:12], known[-1], version)
        return None
    return bundle_store.record(root, dsid, repo, branch, commit=tip, version=before, lock_held=True)


def _subject(version: str) -> str:
    return f"[DSS] bundle version {version}"


def _written_earlier(repo: Path, tip: str, version: str, files: Sequence[BundleFile]) -> bool:
    """Whether `tip` is this very version, written by an earlier attempt: its subject names the
    version and its tree holds each of `files` as the symlink to its key."""
    subject = repo_write._run(repo, "log", "-1", "--format=%s", tip).decode().strip()
    if subject != _subject(version):
        return False
    listing = repo_write.tree_listing(repo, tip)
    return all(listing.get(f.name) == (_SYMLINK, repo_write.blob_id(
        annex_branch.symlink_target(f.name, f.key).encode())) for f in files)


def _branch(repo: Path) -> str:
    """The dataset's default branch (what HEAD names: main, or master for older datasets)."""
    res = repo_write._run(repo, "symbolic-ref", "-q", "HEAD").decode().strip()
    return res or _MAIN


def _publish(root: Path, dsid: str, repo: Path, rec: bundle_store.Recorded | None) -> None:
    """What the post-update hook does after recording: the event and deliveries, the dumb-HTTP
    info, then webhook delivery and mirroring of the git side, detached."""
    result = post_update.HookResult(root, dsid)
    try:
        bare_repo.update_server_info(repo)
    except DssError as e:
        logger.warning("dataset %s: %s", dsid, e)
    if rec is not None:
        post_update.notify(root, rec, result)
    post_update.spawn_followups(root, dsid, result.queued)
