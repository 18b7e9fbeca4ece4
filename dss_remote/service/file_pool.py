"""Files deposited over the write API before a bundle takes them: the store's file pool.

`PUT /v1/files/{uuid}?version=` names content (a staged bucket object, or a direct upload);
the server checks it, names it by its SHA256E key and keeps it here until a bundle version takes
it into a dataset (then it goes to every replica of that dataset, as a `git annex copy` would):

- `dss/files/objects/<hash dir>/<key>`: the content, 0444, once per key;
- `dss/files/records/<file uuid>/<version>.json`: what one file version is (key, size, the four
  DSS checksums, content type, creator, who deposited it). Immutable: the same uuid and version
  with other content is refused (409), with the same content it is the same file (200).

Nothing here is mirrored: a key reaches the mirrors with the first bundle that holds it.
"""

from __future__ import annotations

import json
import logging
import mimetypes
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ria_store.atomic import fsync_dir, makedirs_durable, write_bytes_atomic
from ria_store.errors import DssError, NotFoundError, from_os_error
from ria_store.keys import parse_key
from ria_store.layout import dirhash_lower
from ria_store.listing import list_dir
from ria_store.locks import FileLock

from ..backends.checksums import DSS_NAMES, DssDigests
from ..config import paths
from ..history import bundles, times

logger = logging.getLogger(__name__)

_UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
#: git-annex's annex.maxextensionlength default, and how many extensions SHA256E keeps (.tar.gz)
_MAX_EXT, _EXTS = 4, 2
_EXT_RE = re.compile(rf"[A-Za-z0-9]{{1,{_MAX_EXT}}}")


class VersionConflict(DssError):
    """A file (or bundle) version that exists with other content: 409."""


class ChecksumMismatch(DssError):
    """Declared checksums that the bytes do not have: 422."""


@dataclass(frozen=True)
class FileRecord:
    """One deposited file version."""

    uuid: str
    version: str
    key: str
    size: int
    checksums: Mapping[str, str]
    content_type: str
    creator_uid: int
    owner: str | None
    created: str
    source: str

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["checksums"] = dict(self.checksums)
        return out

    @classmethod
    def from_json(cls, obj: Any) -> FileRecord:
        if not isinstance(obj, dict):
            raise ValueError("not an object")
        rec = cls(**{k: obj[k] for k in cls.__dataclass_fields__})
        parse_key(rec.key)
        return rec


def check_uuid(value: str) -> str:
    if not _UUID_RE.fullmatch(value):
        raise DssError(f"{value!r} is not a lower-case uuid like 6b3b29b4-3c4d-4a57-9f0e-8d7a1b2c3d4e")
    return value


def key_for(sha256: str, size: int, name: str) -> str:
    """The SHA256E key git-annex gives content with this sha256 and size under this file name
    (the name's last extensions, at most two of at most four letters or digits each, as
    git-annex's defaults keep: `x.tar.gz` -> `.tar.gz`, `x.nii.gz` -> `.nii.gz`)."""
    base = name.rsplit("/", 1)[-1]
    parts = base.split(".")[1:]
    kept: list[str] = []
    for part in reversed(parts):
        if len(kept) == _EXTS or not _EXT_RE.fullmatch(part):
            break
        kept.insert(0, part)
    ext = "".join(f".{p}" for p in kept)
    return str(parse_key(f"SHA256E-s{size}--{sha256}{ext}"))


def pool_dir(root: Path) -> Path:
    return root / paths.FILE_POOL


def object_path(root: Path, key: str) -> Path:
    return pool_dir(root) / "objects" / dirhash_lower(key) / key


def _record_path(root: Path, uuid: str, version: str) -> Path:
    return pool_dir(root) / "records" / check_uuid(uuid) / f"{version}.json"


def lookup(root: Path, uuid: str, version: str | None = None) -> FileRecord | None:
    """A deposited file version (the newest without `version`); None when there is none."""
    directory = pool_dir(root) / "records" / check_uuid(uuid)
    if version is None:
        names = [n for n in list_dir(directory) if n.endswith(".json")]
        if not names:
            return None
        version = names[-1][:-5]
    bundles.parse_version(version)
    path = directory / f"{version}.json"
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise from_os_error(e, str(path)) from e
    try:
        return FileRecord.from_json(json.loads(data))
    except (ValueError, TypeError, KeyError, DssError) as e:
        raise DssError(f"file record {path} is damaged ({e}); deposit the file again under a new "
                       "version") from e


def digest_file(path: Path) -> tuple[int, dict[str, str]]:
    """(size, the four DSS checksums) of a local file, in one read."""
    size = path.stat().st_size
    digests = DssDigests(size)
    with open(path, "rb") as f:
        digests.read_from(f)
    return size, digests.hexdigests()


def check_declared(declared: Mapping[str, str], actual: Mapping[str, str], source: str) -> None:
    """Each declared checksum must be the bytes' own (the uploader is not trusted)."""
    wrong = [n for n in DSS_NAMES if n in declared and declared[n].strip().lower() != actual[n]]
    if wrong:
        detail = ", ".join(f"{n} declared {declared[n]!r}, the bytes have {actual[n]}" for n in wrong)
        raise ChecksumMismatch(f"{source}: the checksums declared for it do not match its bytes "
                               f"({detail}); upload it again")


def deposit(root: Path, staged: Path, *, uuid: str, version: str, name: str,
            declared: Mapping[str, str], content_type: str | None, creator_uid: int, owner: str | None,
            source: str, need_sha256: bool = False,
            replicate: Callable[[Path], None] | None = None) -> tuple[FileRecord, bool]:
    """Take the local file `staged` (under the store, on its file system) as file `uuid` at
    `version`: (its record, whether it is new). `staged` is consumed either way. Declared
    checksums are checked against the bytes; `need_sha256` refuses content that declares none.
    `replicate` puts the pool object on the other replicas before the record makes it visible
    (pool_mirrors.replicate); when it fails, no record is written."""
    check_uuid(uuid)
    bundles.parse_version(version)
    try:
        if need_sha256 and "sha256" not in declared:
            raise ChecksumMismatch(f"{source} declares no hca-dss-sha256 (as a tag or metadata); "
                                   "stage it with `hca upload`, or tag it hca-dss-sha256=<hex>")
        size, sums = digest_file(staged)
        check_declared(declared, sums, source)
        key = key_for(sums["sha256"], size, name)
        # no type given: the one the name says, as manifests of pushed datasets have it
        ctype = content_type or mimetypes.guess_type(name, strict=False)[0] or "application/octet-stream"
        record = FileRecord(uuid, version, key, size, sums, ctype, creator_uid, owner,
                            times.format_utc(times.now()), source)
        path = _record_path(root, uuid, version)
        makedirs_durable(path.parent)
        with FileLock(path.parent / ".lock"):
            old = lookup(root, uuid, version)
            if old is not None:
                if old.key != key:
                    raise VersionConflict(f"file {uuid} version {version} exists with other content "
                                          f"({old.key}); deposit this content under a new version")
                return old, False
            _publish_object(root, key, staged, sums)
            if replicate is not None:
                replicate(object_path(root, key))
            write_bytes_atomic(path, json.dumps(record.to_json(), sort_keys=True).encode(), mode=0o444)
    finally:
        staged.unlink(missing_ok=True)
    logger.info("file %s.%s deposited as %s (%d bytes)", uuid, version, key, size)
    return record, True


def _publish_object(root: Path, key: str, staged: Path, sums: Mapping[str, str]) -> None:
    """The pool's object of `key`, from `staged` (renamed in, or dropped when already there)."""
    final = object_path(root, key)
    if final.exists():
        _size, have = digest_file(final)
        if have["sha256"] == sums["sha256"]:
            return
        # a damaged pool object is replaced by the good bytes, never kept
        logger.warning("pool object %s is damaged; replacing it", final)
    makedirs_durable(final.parent)
    os.chmod(staged, 0o444)
    with open(staged, "rb") as f:
        os.fsync(f.fileno())
    os.replace(staged, final)
    fsync_dir(final.parent)


def verified_object(root: Path, record: FileRecord) -> Path:
    """The pool object of a record, checked to be that content; NotFoundError (a 4xx the client
    acts on, never a 5xx it would retry) when it is gone or damaged."""
    path = object_path(root, record.key)
    try:
        size, sums = digest_file(path)
    except FileNotFoundError as e:
        raise NotFoundError(f"file {record.uuid}.{record.version}: its content {record.key} is gone "
                           "from the file pool; deposit it again") from e
    if sums["sha256"] != record.checksums.get("sha256") or size != record.size:
        logger.error("pool object %s is damaged", path)
        raise NotFoundError(f"file {record.uuid}.{record.version}: the pool's copy of {record.key} is "
                            "damaged; deposit it again")
    return path


def staging_file(root: Path, prefix: str) -> tuple[int, Path]:
    """A new temp file under the store's uploads directory (same file system as the pool)."""
    import tempfile  # noqa: PLC0415

    directory = root / paths.UPLOADS
    makedirs_durable(directory)
    fd, name = tempfile.mkstemp(prefix=f".dss-tmp-{prefix}-", dir=directory)
    return fd, Path(name)
