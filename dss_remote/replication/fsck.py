"""`dss fsck`: compare a store's replicas key by key; verify cloud copies without downloading them.

Without `--deep`, a cloud object is checked against its key's size and against the checksums
the service keeps (S3 `ChecksumCRC32`, whole-object or composite; GCS `crc32c`/`md5Hash`): each
must equal what dss recorded from the source file at upload, and a service md5 must equal an MD5
key's digest.
With `--deep`, every object is downloaded and hashed (the key's checksum, else the recorded one),
and so is every key packed in a replica's archive (the member is extracted, which checks its
size and the archive's CRC32, then hashed with the key's checksum).

Leftovers of interrupted writes (temp files, unfinished multipart uploads, empty key directories:
leftovers.py) are reported with their age: "leftover" when older than the safe age (`dss sync`
removes them), "in-progress" when fresher (maybe a running writer's; not a problem). On the POSIX
store, an alias link leading outside the store's dataset directories is "unsafe": dss refuses it,
but `datalad clone ria+file://...#~alias` would follow it.

A key packed in a replica's `archives/archive.7z` is held by that replica, as the special remote
sees it: it is never "missing" there. Each replica's archive is indexed (its header, by ranged
reads on a bucket): an archive that does not parse is "corrupt", one that another replica has
and this one lacks is "missing" (`dss sync` copies it).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from ria_store import archive_write
from ria_store.archive import ArchiveIndex, ArchiveReader, ArchiveSource, Member
from ria_store.errors import ArchiveError, DssError, KeyFormatError, NotFoundError, one_line
from ria_store.keys import AnnexKey, parse_key, unsanitize_key
from ria_store.layout import (
    ALIAS_DIR,
    ARCHIVE_PATH,
    OBJECTS_DIR,
    archive_members,
    dataset_relpath,
    object_relpath,
)
from ria_store.store import unsafe_aliases

from ..backends.base import Backend, ObjectInfo
from ..backends.checksums import Digests
from ..config.mirrors import PRIMARY_NAME
from . import leftovers
from .store_replicas import StoreReplicas

logger = logging.getLogger(__name__)

#: parallel HEAD/GET requests per replica during fsck
WORKERS = 8
#: finding kinds that are no problem (fsck exits 0 with them): worth knowing, nothing to fix
NOT_PROBLEMS = frozenset({"unverified", "in-progress"})


@dataclass(frozen=True)
class Finding:
    """One problem: `kind` is missing, extra, corrupt, unverified, unreachable, leftover,
    in-progress or unsafe."""

    kind: str
    replica: str
    dataset: str
    path: str
    key: str | None
    detail: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        what = self.key or self.path
        return f"{self.kind}\t{self.replica}\t{self.dataset}\t{what}\t{self.detail}"


@dataclass
class DatasetScan:
    """What each reachable replica holds of one dataset: its object tree ({relpath: info}) and
    the index of its archive (None: no archive, or one that does not parse)."""

    dataset: str
    objects: dict[str, dict[str, ObjectInfo]]
    keys: dict[str, AnnexKey]
    archives: dict[str, ArchiveIndex | None] = field(default_factory=dict)
    #: replicas that have an archive file, readable or not
    with_archive: set[str] = field(default_factory=set)
    #: where each replica's readable archive is read from, and the reader that indexed it
    sources: dict[str, tuple[ArchiveSource, ArchiveReader]] = field(default_factory=dict)

    def in_archive(self, replica: str, key: AnnexKey) -> bool:
        """Whether the replica's archive holds `key` at the size the key says."""
        index = self.archives.get(replica)
        member = None if index is None else index.first(archive_members(key))
        return member is not None and key.expected_size in (None, member.size)


def key_of(relpath: str, version: str, ds_rel: str) -> AnnexKey | None:
    """The key an object path stands for, or None if the path is not where a key lives."""
    name = relpath.rsplit("/", 1)[-1]
    try:
        key = parse_key(unsanitize_key(name))
    except KeyFormatError:
        return None
    return key if relpath == f"{ds_rel}/{object_relpath(key, version)}" else None


def scan_dataset(sr: StoreReplicas, dsid: str, names: Iterable[str],
                 findings: list[Finding]) -> DatasetScan:
    """List each named replica's objects; a replica that cannot list (http) is asked key by key
    for every key the listable replicas hold, so those are listed too even when not named."""
    names = list(names)
    ds_rel = dataset_relpath(dsid)
    scan = DatasetScan(dsid, {}, {})
    rs = sr.for_dataset(dsid)
    unlisted = [n for n in names if not sr.named(n).listable]
    for name, backend in sr.backends:
        if not backend.listable or (name not in names and not unlisted):
            continue
        objects = rs.named(name)
        try:
            version = objects.object_tree_version()
            listing = {o.relpath: o for o in backend.iter_objects(f"{ds_rel}/{OBJECTS_DIR}")}
            archive = objects.archive()
            if archive is not None:
                scan.with_archive.add(name)
                scan.archives[name] = objects.archives.index(archive)
                scan.sources[name] = (archive, objects.archives)
        except ArchiveError as e:
            findings.append(Finding("corrupt", name, dsid, f"{ds_rel}/{ARCHIVE_PATH}", None, one_line(e)))
            scan.archives[name] = None
        except DssError as e:
            findings.append(Finding("unreachable", name, dsid, ds_rel, None, one_line(e)))
            continue
        held: dict[str, ObjectInfo] = {}
        for rel, info in listing.items():
            key = key_of(rel, version, ds_rel)
            if key is None:
                if name in names:
                    findings.append(Finding("extra", name, dsid, rel, None,
                                            "not a key object at its RIA path (left in place)"))
                continue
            scan.keys[rel] = key
            held[rel] = info
        if name in names:
            scan.objects[name] = held
    for name in unlisted:
        try:
            scan.objects[name] = _probe(sr.named(name), sorted(scan.keys))
        except DssError as e:
            findings.append(Finding("unreachable", name, dsid, ds_rel, None, one_line(e)))
    return scan


def _probe(backend: Backend, relpaths: list[str]) -> dict[str, ObjectInfo]:
    """{relpath: info} of those of `relpaths` that `backend` holds, asked one by one."""
    with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="dss-fsck-probe") as pool:
        infos = list(pool.map(backend.info, relpaths))
    return {rel: info for rel, info in zip(relpaths, infos, strict=True) if info is not None}


def _shallow(backend: Backend, info: ObjectInfo, key: AnnexKey) -> tuple[str, str] | None:
    """(kind, detail) if the object is corrupt or unverifiable without reading it."""
    expected = key.expected_size
    if expected is not None and info.size != expected:
        return "corrupt", f"{info.size} bytes, the key says {expected}"
    if not backend.keeps_checksums:
        return None  # a file system (POSIX, SFTP, HTTP) keeps no checksum: size only; `--deep` hashes
    checksum = key.checksum
    if not info.recorded and not (checksum is not None and checksum[0] in info.checksums):
        info = backend.info(info.relpath) or info  # S3 listings carry no metadata: HEAD it
    if checksum is not None and checksum[0] in info.checksums and info.checksums[checksum[0]] != checksum[1]:
        return "corrupt", f"the service's {checksum[0]} {info.checksums[checksum[0]]} is not the key's"
    common = set(info.checksums) & set(info.recorded)
    for name in sorted(common):
        if info.checksums[name] != info.recorded[name]:
            return "corrupt", (f"the service's {name} {info.checksums[name]} differs from the "
                               f"{info.recorded[name]} recorded at upload")
    if not common and not (checksum is not None and checksum[0] in info.checksums):
        return "unverified", "no checksum recorded at upload to compare with; run with --deep"
    return None


def _deep(backend: Backend, info: ObjectInfo, key: AnnexKey) -> tuple[str, str] | None:
    expected = key.expected_size
    checksum = key.checksum
    with tempfile.TemporaryFile(prefix="dss-fsck-") as tmp:
        n = backend.get_file(info.relpath, tmp.fileno())
        if expected is not None and n != expected:
            return "corrupt", f"{n} bytes read, the key says {expected}"
        tmp.seek(0)
        computed = Digests(["crc32", "crc32c", "md5", *([checksum[0]] if checksum else [])]
                           ).read_from(tmp).hexdigests()
    if checksum is not None:
        got = computed[checksum[0]]
        return None if got == checksum[1] else ("corrupt", f"content {checksum[0]} {got} is not the key's")
    recorded = info.recorded or (backend.info(info.relpath) or info).recorded
    for name, value in recorded.items():
        if name in computed and computed[name] != value:
            return "corrupt", f"content {name} {computed[name]} differs from {value} recorded at upload"
    return None


def member_key(member: Member) -> AnnexKey | None:
    """The key an archive member holds, or None if the member is not at a key's place."""
    return archive_write.member_key(member.name)


def verify_member(source: ArchiveSource, reader: ArchiveReader, member: Member,
                 key: AnnexKey) -> tuple[str, str] | None:
    """Extract one packed key (size and CRC32 checked against the archive's header) and hash it
    with the key's checksum."""
    expected = key.expected_size
    if expected is not None and member.size != expected:
        return "corrupt", f"the member has {member.size} bytes, the key says {expected}"
    checksum = key.checksum
    with tempfile.TemporaryFile(prefix="dss-fsck-") as tmp:
        try:
            reader.extract(source, member, tmp.fileno())
        except ArchiveError as e:
            return "corrupt", one_line(e)
        if checksum is None:
            return None
        tmp.seek(0)
        got = Digests([checksum[0]]).read_from(tmp).hexdigests()[checksum[0]]
    return None if got == checksum[1] else ("corrupt", f"content {checksum[0]} {got} is not the key's")


def _deep_archive(scan: DatasetScan, name: str, pool: ThreadPoolExecutor,
                  progress: Callable[[int], None] | None) -> list[Finding]:
    """--deep for the keys packed in replica `name`'s archive."""
    index = scan.archives.get(name)
    if index is None or name not in scan.sources:
        return []
    source, reader = scan.sources[name]
    where = f"{dataset_relpath(scan.dataset)}/{ARCHIVE_PATH}"
    members = [(m, k) for m in index.members.values() if (k := member_key(m)) is not None]
    jobs = [(m, k, pool.submit(_checked_member, source, reader, m, k)) for m, k in members]
    findings = []
    for member, key, job in jobs:
        result = job.result()
        if progress is not None:
            progress(1)
        if result is not None:
            findings.append(Finding(result[0], name, scan.dataset, f"{where}:{member.name}", key.text,
                                    result[1]))
    return findings


def _checked_member(source: ArchiveSource, reader: ArchiveReader, member: Member,
                    key: AnnexKey) -> tuple[str, str] | None:
    try:
        return verify_member(source, reader, member, key)
    except NotFoundError:
        return "missing", "the archive vanished during the check"
    except DssError as e:
        return "unreachable", one_line(e)


def leftover_findings(sr: StoreReplicas, datasets: Iterable[str], names: Iterable[str],
                      max_age: timedelta, now: datetime | None = None) -> list[Finding]:
    """A finding for every leftover of an interrupted write on the named replicas."""
    found, errors = leftovers.find(sr, datasets, names, now)
    out = [Finding("unreachable", name, dsid, "", None, f"listing leftovers: {one_line(e)}")
           for name, dsid, e in errors]
    for f in found:
        kind, detail = leftovers.describe(f, max_age)
        out.append(Finding(kind, f.replica, f.dataset, f.leftover.relpath, None, detail))
    return out


def alias_findings(root: Path) -> list[Finding]:
    """An "unsafe" finding for each alias link of the store at `root` that leads outside it."""
    return [Finding("unsafe", PRIMARY_NAME, "", f"{ALIAS_DIR}/{name}", None,
                    f"alias link points outside the store's dataset directories (to {target!r}); dss "
                    f"refuses it but `datalad clone ria+file://{root}#~{name}` follows it: remove the "
                    f"link (rm {root / ALIAS_DIR / name})")
            for name, target in unsafe_aliases(root)]


def fsck(sr: StoreReplicas, datasets: Iterable[str], replicas: Iterable[str] | None = None, *,
         deep: bool = False, progress: Callable[[int], None] | None = None,
         verify: bool = True, leftover_age: timedelta | None = None) -> list[Finding]:
    """Every problem found in `datasets` on the named replicas (all by default), leftovers of
    interrupted writes judged by `leftover_age` (default: the store's config); without `verify`,
    only which objects are missing where (listings only, as `dss sync` needs)."""
    names = list(replicas) if replicas is not None else [n for n, _ in sr.backends]
    for n in names:
        sr.named(n)  # a typo must not read as "all clean"
    datasets = list(datasets)
    findings: list[Finding] = []
    root = sr.primary.local_root
    if verify and root is not None and PRIMARY_NAME in names:
        findings += alias_findings(root)
    with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="dss-fsck") as pool:
        for dsid in datasets:
            scan = scan_dataset(sr, dsid, names, findings)
            union = set().union(*(set(h) for h in scan.objects.values())) if scan.objects else set()
            for name, held in scan.objects.items():
                backend = sr.named(name)
                for rel in sorted(union - set(held)):
                    if scan.in_archive(name, scan.keys[rel]):
                        continue  # packed in this replica's archive: held, as the remote sees it
                    others = [n for n, h in scan.objects.items() if rel in h]
                    findings.append(Finding("missing", name, dsid, rel, scan.keys[rel].text,
                                            f"held by {', '.join(others)}"))
                if scan.with_archive and name not in scan.with_archive:
                    findings.append(Finding("missing", name, dsid, f"{dataset_relpath(dsid)}/{ARCHIVE_PATH}",
                                            None, f"held by {', '.join(sorted(scan.with_archive))} "
                                            "(`dss sync` copies it)"))
                if not verify:
                    continue
                check = _deep if deep else _shallow
                jobs = [(rel, pool.submit(_checked, check, backend, info, scan.keys[rel]))
                        for rel, info in sorted(held.items())]
                for rel, job in jobs:
                    result = job.result()
                    if progress is not None:
                        progress(1)
                    if result is not None:
                        findings.append(Finding(result[0], name, dsid, rel, scan.keys[rel].text, result[1]))
                if deep:
                    findings.extend(_deep_archive(scan, name, pool, progress))
    if verify:
        max_age = sr.config.leftover_age if leftover_age is None else leftover_age
        unreachable = {f.replica for f in findings if f.kind == "unreachable"}  # said once is enough
        findings += leftover_findings(sr, datasets, [n for n in names if n not in unreachable], max_age,
                                      datetime.now(timezone.utc))
    return findings


def _checked(check: Callable[[Backend, ObjectInfo, AnnexKey], tuple[str, str] | None],
             backend: Backend, info: ObjectInfo, key: AnnexKey) -> tuple[str, str] | None:
    try:
        return check(backend, info, key)
    except NotFoundError:
        return "missing", "vanished during the check"
    except DssError as e:
        return "unreachable", one_line(e)
