"""`dss checksums`: record the DSS checksums of every key a store holds that has none; verify the rest.

A key is held loose (`annex/objects`) or packed in `archives/archive.7z` (read through the
archive reader, which checks the member's size and CRC32 on the way). Without `verify`, a key
with a record is left alone; with it, the key's content is hashed again and must give the
record (a mismatch is reported, the record left in place: deleting it is the admin's call).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ria_store import store as ria
from ria_store.archive import ArchiveReader, Member, local_archive
from ria_store.errors import DssError, one_line
from ria_store.keys import AnnexKey
from ria_store.layout import ARCHIVE_PATH, OBJECTS_DIR, dataset_relpath

from ..backends.posix import PosixBackend
from . import key_checksums
from .fsck import key_of, member_key
from .key_checksums import KeyChecksums

logger = logging.getLogger(__name__)

#: Outcome.kind values
COMPUTED, ALREADY, VERIFIED, MISMATCH, FAILED = "computed", "already", "verified", "mismatch", "failed"


@dataclass(frozen=True)
class Outcome:
    """What happened to one key; `detail` says why for MISMATCH and FAILED."""

    kind: str
    dataset: str
    key: str
    where: str
    detail: str = ""

    def line(self) -> str:
        return f"{self.kind}\t{self.dataset}\t{self.key}\t{self.detail}"


@dataclass
class Report:
    """Counts per kind, and the outcomes worth listing (mismatches and failures)."""

    counts: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys((COMPUTED, ALREADY, VERIFIED, MISMATCH, FAILED), 0))
    problems: list[Outcome] = field(default_factory=list)

    def add(self, outcome: Outcome) -> None:
        self.counts[outcome.kind] += 1
        if outcome.kind in (MISMATCH, FAILED):
            self.problems.append(outcome)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {**self.counts, "problems": [asdict(p) for p in self.problems]}


@dataclass(frozen=True)
class _Held:
    """One key the store holds, and how to read it."""

    key: AnnexKey
    where: str
    path: Path | None = None  # a loose object
    member: Member | None = None  # else the archive member


def fill(store_root: Path, datasets: Iterable[str], *, verify: bool = False,
         progress: Callable[[int], None] | None = None) -> Report:
    """Record the checksums of every key of `datasets` that has none (with `verify`, also hash
    the others and compare); never raises for one key: each failure is an outcome."""
    store = ria.open_store(store_root)
    report = Report()
    reader = ArchiveReader()
    for dsid in datasets:
        try:
            held = list(_held_keys(store, dsid, reader))
        except DssError as e:
            report.add(Outcome(FAILED, dsid, "", dataset_relpath(dsid), one_line(e)))
            continue
        for item in held:
            report.add(_one(store.path, dsid, item, reader, verify))
            if progress is not None:
                progress(1)
    return report


def _held_keys(store: ria.Store, dsid: str, reader: ArchiveReader) -> Iterator[_Held]:
    """Each key of the dataset once: loose first, then those only in the archive."""
    ds = ria.open_dataset(store, dsid)
    ds_rel = dataset_relpath(dsid)
    seen: set[str] = set()
    backend = PosixBackend(store.path)
    for info in sorted(backend.iter_objects(f"{ds_rel}/{OBJECTS_DIR}"), key=lambda i: i.relpath):
        key = key_of(info.relpath, ds.version, ds_rel)
        if key is not None and key.text not in seen:
            seen.add(key.text)
            yield _Held(key, info.relpath, path=store.path / info.relpath)
    source = local_archive(ds.path / ARCHIVE_PATH)
    index = None if source is None else reader.index(source)
    if index is None:
        return
    for name in sorted(index.members):
        member = index.members[name]
        key = member_key(member)
        if key is not None and key.text not in seen:
            seen.add(key.text)
            yield _Held(key, f"{ds_rel}/{ARCHIVE_PATH}:{name}", member=member)


def _one(root: Path, dsid: str, item: _Held, reader: ArchiveReader, verify: bool) -> Outcome:
    def outcome(kind: str, detail: str = "") -> Outcome:
        return Outcome(kind, dsid, item.key.text, item.where, detail)

    try:
        have = key_checksums.read(root, dsid, item.key.text)
    except DssError as e:
        return outcome(MISMATCH if verify else FAILED, one_line(e))
    if have is not None and not verify:
        return outcome(ALREADY)
    try:
        sums = _compute(root, dsid, item, reader)
        if have is None:
            key_checksums.record(root, dsid, item.key.text, sums)
            return outcome(COMPUTED)
    except DssError as e:
        return outcome(FAILED, one_line(e))
    if sums == have:
        return outcome(VERIFIED)
    path = key_checksums.record_path(root, dsid, item.key.text)
    differ = ", ".join(key_checksums.differing(have, sums))
    return outcome(MISMATCH, f"record {path}: {differ} differ from the content's; "
                   f"delete it and run `dss checksums {root} --dataset {dsid}`")


def _compute(root: Path, dsid: str, item: _Held, reader: ArchiveReader) -> KeyChecksums:
    if item.path is not None:
        return key_checksums.compute_file(item.path, item.key)
    source = local_archive(root / dataset_relpath(dsid) / ARCHIVE_PATH)
    if source is None or item.member is None:
        raise DssError(f"{item.where}: the archive vanished during the run; run `dss checksums` again")
    # extracted to a temp file: the reader checks size and CRC32 before we hash what it wrote
    with tempfile.TemporaryFile(prefix="dss-checksums-") as tmp:
        try:
            reader.extract(source, item.member, tmp.fileno())
            tmp.seek(0)
            return key_checksums.compute(tmp, os.fstat(tmp.fileno()).st_size, item.key)
        except DssError:
            raise
        except OSError as e:
            raise DssError(f"{item.where}: extraction to a temp file failed ({e}); free space "
                           "in the temp directory (TMPDIR) and retry") from e
