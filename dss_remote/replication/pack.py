"""`dss pack`: a dataset's loose keys into `archives/archive.7z`, as DataLad's ORA reads it.

One run, under the dataset's pack lock (two packs of one dataset never interleave):

1. list the loose objects; those written within `min_age` stay loose (a job may still be adding
   to the dataset), those the archive already holds are "already packed";
2. hard-link the others into a staging tree `dss/tmp/pack/<id>/<mixed dirhash>/<KEY>/<KEY>`
   (a copy where a link is not allowed), and have 7-Zip write a NEW archive beside the old one,
   `archives/.dss-tmp-pack-<pid>-<random>.7z`: the old members as they are plus the staged ones
   (ria_store.archive_write);
3. verify the new file (every member's size and CRC32, every key present at its size and with
   its checksum), fsync it and rename it over `archives/archive.7z`: a reader holding the old
   archive open keeps reading it, and no reader ever sees a partial archive;
4. upload it to each writable mirror that holds the dataset;
5. with `remove_loose`: remove each loose object the verified archive holds, on the POSIX store
   and on each mirror that now holds the same archive (its size and 7z start header, which
   carries the CRC of the member table, equal ours).

A key written during the run is not in the listing of step 1, so it stays loose; a loose object
is only ever removed after the archive holding it verified. A kill at any point leaves the old
archive and every loose object; the next run removes what the killed one left (the temp archive,
the staging tree), under the lock.
"""

from __future__ import annotations

import errno
import logging
import os
import secrets
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from ria_store import archive_sidecar, archive_write
from ria_store import store as ria
from ria_store.archive import ArchiveIndex, ArchiveReader, local_archive
from ria_store.atomic import TMP_PREFIX, fsync_dir, makedirs_durable
from ria_store.errors import ArchiveError, DssError, KeyFormatError, WriteError, from_os_error, one_line
from ria_store.keys import AnnexKey, parse_key, unsanitize_key
from ria_store.layout import (
    ARCHIVE_PATH,
    OBJECTS_DIR,
    VERSION_FILE,
    archive_members,
    dataset_relpath,
    object_relpath,
    parse_version_file,
)
from ria_store.locks import FileLock
from ria_store.sharing import file_mode, is_shared

from ..backends.base import Backend
from ..config import paths
from .store_replicas import StoreReplicas

logger = logging.getLogger(__name__)

#: the new archive while it is written and verified, `archives/<this>-<pid>-<random>.7z` (a temp
#: name: never listed, never mirrored; `dss sync` removes an old one, the next pack any)
TMP_ARCHIVE_PREFIX = f"{TMP_PREFIX}pack-"
#: bytes of the 7z start header: signature, version, and the offset, size and CRC of the header
_START_HEADER = 32


@dataclass(frozen=True)
class Loose:
    """One loose object of the dataset."""

    key: AnnexKey
    rel: str  # relative to the dataset directory
    size: int
    mtime: float


@dataclass
class PackResult:
    """What one dataset's pack did (or, in a dry run, would do)."""

    dataset: str
    dry_run: bool = False
    #: keys added to the archive, and their bytes
    packed: int = 0
    packed_bytes: int = 0
    #: loose keys the archive held already
    already: int = 0
    #: loose keys left alone as younger than --min-age
    young: int = 0
    #: loose objects removed from the POSIX store (or that would be), and the inodes that frees
    removed: int = 0
    inodes_freed: int = 0
    archive_bytes: int = 0
    #: per mirror, what happened to it
    mirrors: dict[str, str] = field(default_factory=dict)
    #: what did not work (the run went on where it was safe to)
    problems: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return dict(vars(self))

    def line(self) -> str:
        verb = "would pack" if self.dry_run else "packed"
        out = f"{self.dataset}: {verb} {self.packed} key(s), {self.packed_bytes} bytes"
        if self.already:
            out += f"; {self.already} already packed"
        if self.young:
            out += f"; {self.young} younger than --min-age left loose"
        if self.removed:
            gone = "would remove" if self.dry_run else "removed"
            out += f"; {gone} {self.removed} loose object(s), {self.inodes_freed} inode(s)"
        return out


def pack(sr: StoreReplicas, dsid: str, *, min_age: timedelta, remove_loose: bool = False,
         dry_run: bool = False, progress: Callable[[int], None] | None = None) -> PackResult:
    """Pack dataset `dsid` of the store `sr` reaches (its POSIX store must be on this machine)."""
    root = sr.primary.local_root
    if root is None:
        raise DssError(f"{sr.primary.url} is not a directory on this machine: run `dss pack` on a "
                       "node that mounts the store")
    dataset = ria.open_dataset(ria.open_store(root), dsid)
    dsdir = dataset.path
    result = PackResult(dsid, dry_run=dry_run)
    lock = dataset_lock(root, dsid)
    if not dry_run:  # a dry run only looks: it writes no lock file
        take(lock, dsid)
    try:
        if not dry_run:
            clear_leftovers(root, dsdir, dsid)
        archive_path = dsdir / ARCHIVE_PATH
        index = _current_index(archive_path)
        cutoff = time.time() - min_age.total_seconds()
        new: list[Loose] = []
        held: list[Loose] = []
        for obj in _loose(dsdir, dataset.version):
            member = None if index is None else index.first(archive_members(obj.key))
            if member is not None and member.size == obj.size:
                held.append(obj)
                result.already += 1
            elif obj.mtime > cutoff:
                result.young += 1
            else:
                new.append(obj)
        result.packed = len(new)
        result.packed_bytes = sum(o.size for o in new)
        gone = new + held if remove_loose else []
        result.removed = len(gone)
        result.inodes_freed = _inodes_freed(dsdir, [o.rel for o in gone])
        result.archive_bytes = archive_path.stat().st_size if index is not None else 0
        if dry_run or (not new and not gone):
            return result
        exe = archive_write.sevenzip_program()
        if new:
            _write_verified(exe, root, dsdir, dsid, has_old=index is not None, new=new, held=held,
                            progress=progress)
        elif gone:
            _verify_in_place(archive_path, [o.key for o in held], progress)
        result.archive_bytes = archive_path.stat().st_size
        to_mirrors(sr, dsid, archive_path, [o.key for o in gone], mirrors=result.mirrors,
                   problems=result.problems)
        if gone:
            _remove_loose(sr.primary, dsid, gone, result)
        return result
    finally:
        lock.release()


def dataset_lock(root: Path, dsid: str) -> FileLock:
    """The lock `dss pack` and `dss gc` hold while they rewrite a dataset's archive."""
    return FileLock(root / paths.PACK_LOCKS / f"{dsid}.lock")


def take(lock: FileLock, dsid: str) -> None:
    if not lock.acquire(wait=False):
        raise DssError(f"another `dss pack` or `dss gc` is rewriting dataset {dsid} (it holds "
                       f"{lock.path}); wait for it to finish")


# -- listing ----------------------------------------------------------------------------------
def _loose(dsdir: Path, version: str) -> list[Loose]:
    """The loose key objects of the dataset (temp files of writes in flight are not keys)."""
    top = dsdir / OBJECTS_DIR
    out: list[Loose] = []
    errors: list[OSError] = []
    for dirpath, _dirs, names in os.walk(top, onerror=errors.append):
        for name in names:
            if name.startswith(TMP_PREFIX):
                continue
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, dsdir)
            try:
                key = parse_key(unsanitize_key(name))
            except KeyFormatError:
                continue
            if rel != object_relpath(key, version):
                continue  # not where this key lives: fsck reports it, pack leaves it
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                continue  # dropped meanwhile
            if key.expected_size is not None and st.st_size != key.expected_size:
                logger.warning("%s has %d bytes, its key says %d: not packed (`dss fsck`)", path,
                               st.st_size, key.expected_size)
                continue
            out.append(Loose(key, rel, st.st_size, st.st_mtime))
    for err in errors:
        if not (isinstance(err, FileNotFoundError) and err.filename == str(top)):
            raise from_os_error(err, f"listing {top}")
    return sorted(out, key=lambda o: o.rel)


def _inodes_freed(dsdir: Path, rels: list[str]) -> int:
    """Files in `rels`, plus the directories of the object tree their removal leaves empty."""
    if not rels:
        return 0
    top = dsdir / OBJECTS_DIR
    gone = {str(dsdir / r) for r in rels}
    entries: dict[str, list[str]] = {}
    for dirpath, dirs, names in os.walk(top):
        entries[dirpath] = [os.path.join(dirpath, n) for n in dirs + names]
    freed = len(gone)
    for dirpath in sorted(entries, key=len, reverse=True):  # innermost first
        if dirpath != str(top) and all(e in gone for e in entries[dirpath]):
            gone.add(dirpath)
            freed += 1
    return freed


def _current_index(archive_path: Path) -> Any:
    source = local_archive(archive_path)
    if source is None:
        return None
    try:
        return ArchiveReader().index(source)
    except ArchiveError as e:
        raise ArchiveError(f"{one_line(e)}; nothing was packed onto it (`dss fsck --deep` then "
                           "`dss repair` restores it from a mirror)") from e


# -- writing ----------------------------------------------------------------------------------
def clear_leftovers(root: Path, dsdir: Path, dsid: str) -> None:
    """What a killed pack or gc of this dataset left: its staging tree and every temp file in
    `archives/` (the archive's and the member table's; only pack and gc write there, and both
    hold this dataset's lock, which we hold now)."""
    shutil.rmtree(root / paths.PACK_STAGING / dsid, ignore_errors=True)
    for p in (dsdir / "archives").glob(f"{TMP_PREFIX}*"):
        unlink_quietly(p)


def unlink_quietly(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def _stage(staging: Path, dsdir: Path, objs: list[Loose]) -> None:
    """The member tree: a hard link per key (a copy where linking is not allowed: another file
    system, or protected_hardlinks and someone else's object)."""
    for obj in objs:
        dst = staging / archive_members(obj.key)[0]
        dst.parent.mkdir(parents=True, exist_ok=True)
        src = dsdir / obj.rel
        try:
            os.link(src, dst)
        except OSError as e:
            if e.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                raise from_os_error(e, f"staging {src}", writing=True) from e
            try:
                shutil.copyfile(src, dst)
            except OSError as e2:
                raise from_os_error(e2, f"staging {src}", writing=True) from e2


def _write_verified(exe: str, root: Path, dsdir: Path, dsid: str, *, has_old: bool, new: list[Loose],
                    held: list[Loose], progress: Callable[[int], None] | None) -> None:
    archive_path = dsdir / ARCHIVE_PATH
    tmp = temp_archive(dsdir)
    staging = root / paths.PACK_STAGING / dsid
    try:
        makedirs_durable(staging)
        makedirs_durable(tmp.parent)
        _stage(staging, dsdir, new)
        archive_write.write_archive(exe, archive_path if has_old else None, staging, tmp)
        index, problems = archive_write.verify(tmp, [o.key for o in new + held], progress)
        if problems:
            raise ArchiveError(
                f"the new archive of dataset {dsid} failed verification ({len(problems)} problem(s), "
                f"first: {problems[0].line()}); it was not published: the old archive and the loose "
                "objects are unchanged (`dss fsck --deep` finds what is damaged, `dss repair` "
                "restores it from a mirror)")
        publish_archive(tmp, archive_path, index)
    except OSError as e:
        raise from_os_error(e, f"packing dataset {dsid}", writing=True) from e
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        unlink_quietly(tmp)
        unlink_quietly(tmp.with_name(tmp.name + ".tmp"))


def publish_archive(tmp: Path, archive_path: Path, index: ArchiveIndex) -> None:
    """Make the verified `tmp` the dataset's archive: read-only, on disk, renamed over the old;
    then save its member table beside it for readers (archive_sidecar.py)."""
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fchmod(fd, file_mode(0o444, is_shared(archive_path.parent)))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, archive_path)
    fsync_dir(archive_path.parent)
    archive_sidecar.save(archive_path, index)


def temp_archive(dsdir: Path) -> Path:
    """A fresh temp name for a new archive of the dataset (beside the old one)."""
    return dsdir / "archives" / f"{TMP_ARCHIVE_PREFIX}{os.getpid()}-{secrets.token_hex(6)}.7z"


def _verify_in_place(archive_path: Path, keys: list[AnnexKey], progress: Callable[[int], None] | None
                     ) -> None:
    """Nothing new to pack, but loose copies to remove: check the archive that holds them first."""
    _, problems = archive_write.verify(archive_path, keys, progress)
    if problems:
        raise ArchiveError(f"archive {archive_path} fails verification ({problems[0].line()}, "
                           f"{len(problems)} problem(s)); no loose object was removed: `dss fsck "
                           "--deep` then `dss repair`")


# -- mirrors and removal -----------------------------------------------------------------------
def to_mirrors(sr: StoreReplicas, dsid: str, archive_path: Path, keys: list[AnnexKey], *,
               mirrors: dict[str, str], problems: list[str]) -> None:
    """Upload the archive to each writable mirror that holds the dataset; with `keys`, remove
    their loose copies there once the mirror's archive is ours."""
    ds_rel = dataset_relpath(dsid)
    rel = f"{ds_rel}/{ARCHIVE_PATH}"
    size = archive_path.stat().st_size
    with open(archive_path, "rb") as f:
        head = f.read(_START_HEADER)
    for name, backend in sr.backends[1:]:
        if not backend.writable:
            mirrors[name] = "read-only mirror: left as it is"
            continue
        try:
            version = _mirror_version(backend, ds_rel)
            if version is None:
                mirrors[name] = "does not hold the dataset yet (`dss sync` copies it)"
                continue
            if not _same_archive(backend, rel, size, head):
                backend.put_file(archive_path, rel)
            if not _same_archive(backend, rel, size, head):
                raise DssError("the uploaded archive does not read back as ours")
            removed = 0
            for key in keys:
                obj = f"{ds_rel}/{object_relpath(key, version)}"
                if backend.info(obj) is not None:
                    backend.remove(obj)
                    removed += 1
            mirrors[name] = f"archive up to date; {removed} loose object(s) removed"
        except DssError as e:
            mirrors[name] = f"not updated: {one_line(e)}"
            problems.append(f"mirror {name}: {one_line(e)}; its loose objects stay: run "
                                   "`dss sync`, then `dss pack --remove-loose` again")


def _mirror_version(backend: Backend, ds_rel: str) -> str | None:
    rel = f"{ds_rel}/{VERSION_FILE}"
    try:
        text = backend.read_bytes(rel).decode("utf-8", "replace")
    except FileNotFoundError:
        return None
    return parse_version_file(text, f"{backend.url}/{rel}")[0]


def _same_archive(backend: Backend, rel: str, size: int, head: bytes) -> bool:
    info = backend.info(rel)
    if info is None or info.size != size:
        return False
    return backend.read_range(rel, 0, _START_HEADER) == head


def _remove_loose(primary: Backend, dsid: str, gone: list[Loose], result: PackResult) -> None:
    ds_rel = dataset_relpath(dsid)
    failed: list[str] = []
    for obj in gone:
        try:
            primary.remove(f"{ds_rel}/{obj.rel}")
        except DssError as e:
            failed.append(f"{ds_rel}/{obj.rel}: {one_line(e)}")
    if failed:
        raise WriteError(f"{len(failed)} loose object(s) of dataset {dsid} could not be removed "
                         f"(first: {failed[0]}); they are packed and verified: fix that, then run "
                         "`dss pack --remove-loose` again")
