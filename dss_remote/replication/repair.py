"""`dss repair`: fix what `dss fsck` found, from a replica whose copy verifies.

A missing or corrupt key object is copied (verified) from another replica. A replica's
`archives/archive.7z` that is missing, does not parse, or holds a member that fails `--deep`
is replaced as a whole by another replica's archive, downloaded to a temp file and checked
first: it must parse, and the members found bad must extract and match their keys there.
Without such an archive a bad member's key gets a loose copy, which reads prefer.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from ria_store.archive import ArchiveReader, ArchiveSource, load_index
from ria_store.errors import DssError, NotFoundError, one_line
from ria_store.keys import AnnexKey, parse_key
from ria_store.layout import ARCHIVE_PATH, archive_members, dataset_relpath

from .fsck import Finding, verify_member
from .replica import Failures, Replica, first_success
from .store_replicas import StoreReplicas

logger = logging.getLogger(__name__)


def source_for(sr: StoreReplicas, dsid: str, key: AnnexKey, exclude: str,
               dst: str) -> str:
    """Fetch a verified copy of `key` into `dst` from the first replica other than `exclude`
    that has a good one; return its name. DssError names every replica tried."""
    def error(failures: Failures) -> DssError:
        tried = failures.line() or "no other replica"
        if failures.all_absent():
            return NotFoundError(f"{key} is on no other replica ({tried})")
        return DssError(f"no good copy of {key} on any other replica: {tried}")

    others = [r for r in sr.for_dataset(dsid).replicas if r.name != exclude]
    source, _ = first_success(others, lambda r: r.retrieve(key, Path(dst)), error, f"repair {key}: copy")
    return source.name


def copy_key(sr: StoreReplicas, dsid: str, key: AnnexKey, target: str) -> str:
    """Copy a verified copy of `key` onto replica `target`, replacing what is there."""
    fd, tmp = tempfile.mkstemp(prefix="dss-repair-")
    os.close(fd)
    try:
        source = source_for(sr, dsid, key, target, tmp)
        sr.for_dataset(dsid).named(target).store(key, Path(tmp), replace=True)
        return source
    finally:
        os.unlink(tmp)


def _check_archive(path: Path, name: str, keys: Iterable[AnnexKey]) -> None:
    """DssError unless the archive at `path` parses and each of `keys` extracts and verifies."""
    index = load_index(path)  # ArchiveError (a DssError) if it does not parse
    source, reader = ArchiveSource.local(path), ArchiveReader()
    for key in keys:
        member = index.first(archive_members(key))
        if member is None:
            raise DssError(f"{name}'s archive does not hold {key}")
        bad = verify_member(source, reader, member, key)
        if bad is not None:
            raise DssError(f"{name}'s archive: {key}: {bad[1]}")


def copy_archive(sr: StoreReplicas, dsid: str, target: str, keys: Iterable[AnnexKey] = ()) -> str:
    """Replace replica `target`'s archive with the first other replica's that parses and holds
    `keys` intact; return that replica's name. DssError names every replica tried."""
    rel = f"{dataset_relpath(dsid)}/{ARCHIVE_PATH}"
    keys = list(keys)
    rs = sr.for_dataset(dsid)
    dst = rs.named(target)
    fd, tmp = tempfile.mkstemp(prefix="dss-repair-", suffix=".7z")

    def download(r: Replica) -> None:
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        r.backend.get_file(rel, fd)
        _check_archive(Path(tmp), r.name, keys)

    def error(failures: Failures) -> DssError:
        return DssError(f"no good copy of {rel} on any other replica: "
                        f"{failures.line() or 'no other replica'}")

    try:
        others = [r for r in rs.replicas if r.name != target]
        source, _ = first_success(others, download, error, f"repair {target}'s {rel}: copy")
        dst.backend.put_file(Path(tmp), rel)
        return source.name
    finally:
        os.close(fd)
        os.unlink(tmp)


def _is_archive(f: Finding) -> bool:
    where = f"{dataset_relpath(f.dataset)}/{ARCHIVE_PATH}"
    return f.path == where or f.path.startswith(f"{where}:")


def repair(sr: StoreReplicas, findings: Iterable[Finding],
           progress: Callable[[int], None] | None = None) -> tuple[list[str], list[str]]:
    """Fix missing and corrupt objects and archives from good replicas; (done lines, failed lines)."""
    done: list[str] = []
    failed: list[str] = []
    archives: dict[tuple[str, str], list[Finding]] = {}
    keys: list[Finding] = []
    for f in findings:
        if f.kind not in ("missing", "corrupt"):
            continue
        if not sr.named(f.replica).writable:
            failed.append(f"{f.replica}: {f.key or f.path} ({f.kind}): a read-only mirror, which dss "
                          "never writes; update the copy it serves (e.g. from the store), then fsck again")
        elif _is_archive(f):
            archives.setdefault((f.replica, f.dataset), []).append(f)
        elif f.key is not None:
            keys.append(f)
    for (replica, dsid), found in archives.items():
        bad = [parse_key(f.key) for f in found if f.key is not None]
        rel = f"{dataset_relpath(dsid)}/{ARCHIVE_PATH}"
        try:
            source = copy_archive(sr, dsid, replica, bad)
            kinds = ", ".join(sorted({f.kind for f in found}))
            done.append(f"{replica}: {rel} ({kinds}) copied from {source}")
        except DssError as e:
            if not bad:
                failed.append(f"{replica}: {rel}: {one_line(e)}")
            else:  # a loose copy of each bad member's key: reads take it before the archive
                logger.info("%s: %s; repairing its bad members as loose objects", replica, one_line(e))
                keys.extend(f for f in found if f.key is not None)
        if progress is not None:
            progress(1)
    for f in keys:
        key = parse_key(f.key or "")
        try:
            source = copy_key(sr, f.dataset, key, f.replica)
            done.append(f"{f.replica}: {f.key} ({f.kind}) copied from {source}")
        except DssError as e:
            failed.append(f"{f.replica}: {f.key}: {one_line(e)}")
        if progress is not None:
            progress(1)
    return done, failed
