"""Bundle versions in the store: immutable manifests under `dss/bundles/<dataset-id>/<version>.json`.

A per-dataset lock serialises recording, so versions of one dataset are strictly increasing and each
names its parent. `log.jsonl` beside the manifests lists every version (version, ref, commit, files)
in the order recorded, so listing and finding a branch's last version never parse a manifest.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ria_store import bare_repo
from ria_store.atomic import write_all, write_bytes_atomic
from ria_store.errors import DssError, NotFoundError, from_os_error
from ria_store.layout import check_dataset_id
from ria_store.listing import list_dir
from ria_store.locks import FileLock
from ria_store.sharing import open_created

from ..config import paths
from . import bundles, times

logger = logging.getLogger(__name__)

_LOG = "log.jsonl"
_LOCK = ".lock"


@dataclass(frozen=True)
class Recorded:
    """A bundle version just written, and what changed since its parent."""

    manifest: bundles.Manifest
    path: Path
    changed: list[str]


def bundles_dir(store_root: Path, dsid: str) -> Path:
    return store_root / paths.BUNDLES / check_dataset_id(dsid)


@dataclass(frozen=True)
class LogEntry:
    """One line of a dataset's `log.jsonl`."""

    version: str
    ref: str
    commit: str
    file_count: int
    rebuilt: bool = False


def read_log(store_root: Path, dsid: str) -> list[LogEntry]:
    """Every recorded version of the dataset, in the order recorded; a torn last line is skipped."""
    path = bundles_dir(store_root, dsid) / _LOG
    try:
        lines = path.read_bytes().splitlines()
    except FileNotFoundError:
        return []
    except OSError as e:
        raise from_os_error(e, str(path)) from e
    out = []
    for line in lines:
        try:
            out.append(LogEntry(**json.loads(line)))
        except (ValueError, TypeError):
            logger.warning("%s: skipping a damaged line (run `dss sync` to rebuild it)", path)
    return out


def heads(log: list[LogEntry]) -> dict[str, LogEntry]:
    """Branch -> its newest recorded version."""
    out: dict[str, LogEntry] = {}
    for e in log:
        if e.ref not in out or e.version > out[e.ref].version:
            out[e.ref] = e
    return out


def _append_log(directory: Path, entry: LogEntry) -> None:
    line = json.dumps(asdict(entry), sort_keys=True).encode() + b"\n"
    # group-writable in a group-shared store: every member's push appends to it
    fd = open_created(directory / _LOG, os.O_WRONLY | os.O_APPEND, 0o664)
    try:
        write_all(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def versions(store_root: Path, dsid: str) -> list[str]:
    """The dataset's bundle versions, oldest first."""
    out = []
    for n in list_dir(bundles_dir(store_root, dsid)):
        stem = n[:-5] if n.endswith(".json") else ""
        with contextlib.suppress(DssError):
            bundles.parse_version(stem)
            out.append(stem)
    return sorted(out)


def datasets(store_root: Path) -> list[str]:
    """Datasets that have bundle versions."""
    return [n for n in list_dir(store_root / paths.BUNDLES) if not n.startswith(".")]


def load(store_root: Path, dsid: str, version: str | None = None) -> bundles.Manifest:
    """A manifest (the latest one without `version`); NotFoundError names what exists."""
    if version is None:
        all_versions = versions(store_root, dsid)
        if not all_versions:
            raise NotFoundError(f"dataset {dsid} has no bundle versions in {store_root}; push to it "
                                "(with the dss hook installed: `dss adopt`) or run `dss sync`")
        version = all_versions[-1]
    bundles.parse_version(version)
    path = bundles_dir(store_root, dsid) / f"{version}.json"
    try:
        data = path.read_bytes()
    except FileNotFoundError as e:
        raise NotFoundError(f"no bundle version {dsid}@{version} (see `dss bundles list "
                            f"{store_root} --dataset {dsid}`)") from e
    except OSError as e:
        raise from_os_error(e, str(path)) from e
    try:
        obj = json.loads(data)
    except ValueError as e:
        raise DssError(f"manifest {path} is not valid JSON ({e}); restore it from a mirror "
                       "(`dss sync`)") from e
    try:
        manifest = bundles.Manifest.from_json(obj)
        if (manifest.head.dataset_id, manifest.head.version) != (dsid, version):
            raise ValueError(f"it is {manifest.head.bundle_fqid}")
    except ValueError as e:
        raise DssError(f"manifest {path} is not a dss manifest ({e}); restore it from a mirror "
                       "(`dss sync`)") from e
    return manifest


def _rows(store_root: Path, dsid: str, repo: Path, commit: str, base_version: str | None
          ) -> tuple[list[dict[str, Any]], list[str]]:
    """A version's rows and the paths changed since `base_version`: from that version's manifest
    and `git diff-tree` when it is readable (cost follows the change), else from the whole tree."""
    parent = None
    if base_version is not None:
        try:
            parent = load(store_root, dsid, base_version)
        except DssError as e:
            logger.warning("dataset %s: version %s unreadable (%s); listing the whole tree",
                           dsid, base_version, e)
    if parent is not None:
        try:
            changes = bare_repo.diff_trees(repo, parent.head.commit, commit)
        except DssError as e:  # the parent commit is gone (forced push, then gc)
            logger.warning("dataset %s: cannot diff against the parent version (%s); listing the "
                           "whole tree", dsid, e)
        else:
            wanted = [c.new.sha for c in changes if c.new is not None and bundles.needs_content(c.new)]
            rows = bundles.apply_changes(parent.files, changes, bare_repo.read_blobs(repo, wanted))
            return rows, sorted({c.path for c in changes})
    entries = bare_repo.tree_entries(repo, commit)
    contents = bare_repo.read_blobs(repo, [e.sha for e in entries if bundles.needs_content(e)])
    rows = bundles.rows_of(entries, contents)
    return rows, bundles.changed_paths(None, rows)


def _is_recorded(log: list[LogEntry], ref: str, commit: str, rebuilt: bool) -> bool:
    """Whether `commit` needs no new version of `ref`: it is the branch's head, or (`rebuilt`,
    from the reflog) any version of the branch."""
    head = heads(log).get(ref)
    return (head is not None and head.commit == commit) or (
        rebuilt and any(e.ref == ref and e.commit == commit for e in log))


class VersionRefused(DssError):
    """A version id a writer chose that cannot be recorded (exists, or not after the newest)."""


def lock(store_root: Path, dsid: str) -> FileLock:
    """The lock that serialises recording a dataset's versions (held by `record` unless the
    caller holds it already and says so with `lock_held`)."""
    return FileLock(bundles_dir(store_root, dsid) / _LOCK)


def record(store_root: Path, dsid: str, repo: Path, ref: str, *, commit: str | None = None,
           now: datetime | None = None, rebuilt: bool = False, version: str | None = None,
           identities: Mapping[str, Mapping[str, Any]] | None = None,
           lock_held: bool = False) -> Recorded | None:
    """Record `ref` (at `commit`, default its current head) as a new bundle version.

    None when that commit is already recorded for the branch (nothing moved). `rebuilt` versions,
    made later from the reflog by `dss sync`, carry the push time `now` and never become the head.
    `version` is one a writer of the DSS API chose: it must be new and after the dataset's newest
    (VersionRefused otherwise). `identities` adds fields to the rows of some paths (the DSS file
    uuid and version a writer gave them); later versions keep them while the path is unchanged.
    """
    commit = commit or bare_repo.rev_parse(repo, ref)
    if commit is None:
        logger.info("dataset %s: %s no longer exists; no bundle version", dsid, ref)
        return None
    directory = bundles_dir(store_root, dsid)
    # first without the lock: nothing to record needs no write (a store this user may only read)
    if _is_recorded(read_log(store_root, dsid), ref, commit, rebuilt):
        return None
    with contextlib.nullcontext() if lock_held else lock(store_root, dsid):
        log = read_log(store_root, dsid)
        if _is_recorded(log, ref, commit, rebuilt):
            return None
        all_versions = versions(store_root, dsid)
        if version is not None:
            bundles.parse_version(version)
            if all_versions and version <= all_versions[-1]:
                raise VersionRefused(f"version {version} of dataset {dsid} is not after its newest "
                                     f"version {all_versions[-1]}; a new version needs a later time")
        else:
            when = now or times.now()
            latest = all_versions[-1] if all_versions and not rebuilt else None
            version = bundles.next_version(when, latest)
            while version in all_versions:  # a rebuilt version may land on an existing time
                version = bundles.next_version(bundles.parse_version(version), version)
        earlier = [e for e in log if e.ref == ref and e.version < version]
        parent_version = max(earlier, key=lambda e: e.version).version if earlier else None
        # A branch's first version diffs against the dataset's newest one (a new branch mostly
        # shares its tree with another); its changed paths are then all of its files.
        base = parent_version or (all_versions[-1] if all_versions else None)
        files, changed = _rows(store_root, dsid, repo, commit, base)
        if identities:
            for row in files:
                extra = identities.get(str(row["path"]))
                if extra is not None:
                    row.update(extra)
        if parent_version is None:
            changed = bundles.changed_paths(None, files)
        manifest = bundles.build_manifest(
            bundles.BundleRef(dsid, version, ref, commit, parent_version, times.now()), files,
            rebuilt=rebuilt)
        path = directory / f"{version}.json"
        write_bytes_atomic(path, bundles.dumps_manifest(manifest), mode=0o444)
        _append_log(directory, LogEntry(version, ref, commit, manifest.head.file_count, rebuilt))
    logger.info("dataset %s: bundle version %s (%s at %s, %d files)", dsid, version, ref, commit[:12],
                manifest.head.file_count)
    return Recorded(manifest, path, changed)
