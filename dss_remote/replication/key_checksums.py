"""The four HCA DSS checksums of a key, computed once and kept in the POSIX store beside it.

A record is `dss/checksums/<dataset id>/<hash dir>/<escaped KEY>.json`, the hash dir being
git-annex's lower dirhash of the key (`abc/def/`, 4096 x 4096 directories), so no directory
of a large dataset gets more than a few entries. Records are immutable: written once
(`create_exclusive`: the complete file appears at once, never replaced), mode 0444, the
group's in a group-shared store. They are derived data the POSIX store keeps and `dss sync`
does not mirror: a store rebuilt from a mirror recomputes them with `dss checksums`.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO

from ria_store.atomic import create_exclusive
from ria_store.errors import CorruptError, DssError, from_os_error
from ria_store.keys import AnnexKey, parse_key, sanitize_key
from ria_store.layout import check_dataset_id, dirhash_lower

from ..backends.checksums import DSS_NAMES, DssDigests
from ..config import paths

logger = logging.getLogger(__name__)

_HEX = {"sha256": re.compile(r"[0-9a-f]{64}"), "sha1": re.compile(r"[0-9a-f]{40}"),
        "crc32c": re.compile(r"[0-9a-f]{8}"), "s3_etag": re.compile(r"[0-9a-f]{32}(-[1-9][0-9]*)?")}


@dataclass(frozen=True)
class KeyChecksums:
    """What the DSS API reports of a file's content: its size and four lower-case hex checksums."""

    size: int
    sha256: str
    sha1: str
    crc32c: str
    s3_etag: str

    @classmethod
    def from_hex(cls, size: int, sums: Mapping[str, str]) -> KeyChecksums:
        return cls(size, sums["sha256"], sums["sha1"], sums["crc32c"], sums["s3_etag"])


def record_path(store_root: Path, dataset_id: str, key: str) -> Path:
    """Where the record of `key` in dataset `dataset_id` lives (no I/O)."""
    check_dataset_id(dataset_id)
    k = parse_key(key)
    return store_root / paths.CHECKSUMS / dataset_id / f"{dirhash_lower(k)}{sanitize_key(k.text)}.json"


def _fix(dataset_id: str) -> str:
    return f"delete it and run `dss checksums STORE --dataset {dataset_id}`"


def read(store_root: Path, dataset_id: str, key: str) -> KeyChecksums | None:
    """The recorded checksums of `key`, or None when none is recorded yet; CorruptError naming
    the file and the fix when the record is not one."""
    path = record_path(store_root, dataset_id, key)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise from_os_error(e, f"checksum record {path}") from e
    try:
        return _parse(json.loads(data), key)
    except ValueError as e:
        raise CorruptError(f"checksum record {path} is corrupt ({e}); {_fix(dataset_id)}") from e


def _parse(doc: object, key: str) -> KeyChecksums:
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    if doc.get("key") != key:
        raise ValueError(f"it names key {doc.get('key')!r}")
    missing = [name for name in ("size", *DSS_NAMES) if name not in doc]
    if missing:
        raise ValueError(f"no {', '.join(missing)}")
    size = doc["size"]
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ValueError(f"size {size!r} is not a byte count")
    for name in DSS_NAMES:
        value = doc[name]
        if not isinstance(value, str) or not _HEX[name].fullmatch(value):
            raise ValueError(f"{name} {value!r} is not lower-case hex of its length")
    return KeyChecksums.from_hex(size, doc)


def _dumps(key: str, sums: KeyChecksums) -> bytes:
    return (json.dumps({"key": key, **asdict(sums)}, indent=1) + "\n").encode()


def record(store_root: Path, dataset_id: str, key: str, sums: KeyChecksums) -> None:
    """Keep `sums` as the record of `key`, once. CorruptError, nothing written, when they
    contradict the key (its size, or the checksum its name carries); a record already there
    stays, and must agree (else CorruptError naming it and the fix)."""
    _check_against_key(parse_key(key), sums)
    path = record_path(store_root, dataset_id, key)
    data = _dumps(key, sums)
    try:
        if create_exclusive(path, data, mode=0o444):
            return
    except OSError as e:
        raise from_os_error(e, f"checksum record {path}", writing=True) from e
    have = read(store_root, dataset_id, key)
    if have != sums:
        raise CorruptError(f"checksum record {path} says {have}, the content gives {sums}; "
                           f"{_fix(dataset_id)}")


def _check_against_key(key: AnnexKey, sums: KeyChecksums, extra: Mapping[str, str] | None = None) -> None:
    expected = key.expected_size
    if expected is not None and sums.size != expected:
        raise CorruptError(f"{key}: the content has {sums.size} bytes, the key says {expected} "
                           "(corrupt object: `dss fsck` then `dss repair`); no checksums recorded")
    checksum = key.checksum
    if checksum is None:
        return
    algo, want = checksum
    got = {"sha256": sums.sha256, "sha1": sums.sha1, **(extra or {})}.get(algo)
    if algo == "md5" and got is None and "-" not in sums.s3_etag:
        got = sums.s3_etag  # one part: the ETag is the MD5
    if got is None:
        return  # checked by `compute`, which hashed it beside the four
    if got != want:
        raise CorruptError(f"{key}: the content's {algo} is {got}, not the key's (corrupt object: "
                           "`dss fsck` then `dss repair`); no checksums recorded")


def compute(f: BinaryIO, size: int, key: AnnexKey) -> KeyChecksums:
    """The checksums of `size` bytes read from `f` (one pass), checked against `key`: its size and
    the checksum its name carries (hashed in the same pass when it is none of the four);
    CorruptError on a mismatch."""
    checksum = key.checksum
    digests = DssDigests(size, extra=[checksum[0]] if checksum else [])
    hexes = digests.read_from(f).hexdigests()
    sums = KeyChecksums.from_hex(digests.size, hexes)
    if digests.size != size:
        raise CorruptError(f"{key}: read {digests.size} bytes where {size} were expected "
                           "(the file changed while it was read); no checksums recorded")
    _check_against_key(key, sums, hexes)
    return sums


def compute_file(path: Path, key: AnnexKey) -> KeyChecksums:
    """`compute` over a local file."""
    try:
        with open(path, "rb") as f:
            return compute(f, os.fstat(f.fileno()).st_size, key)
    except DssError:
        raise
    except OSError as e:
        raise from_os_error(e, f"local file {path}") from e
