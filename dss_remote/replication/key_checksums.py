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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO

from ria_store.atomic import create_exclusive
from ria_store.errors import CorruptError, from_os_error
from ria_store.keys import AnnexKey, parse_key, sanitize_key
from ria_store.layout import check_dataset_id, dirhash_lower

from ..backends.checksums import DSS_NAMES, DssDigests, s3_etag_part_size
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
    if have is not None and have != sums:
        raise CorruptError(f"checksum record {path}: {', '.join(differing(have, sums))} differ from "
                           f"the content's; {_fix(dataset_id)}")


def differing(a: KeyChecksums, b: KeyChecksums) -> list[str]:
    """The names of the fields in which `a` and `b` differ."""
    return [name for name in ("size", *DSS_NAMES) if getattr(a, name) != getattr(b, name)]


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


def _names(key: AnnexKey) -> list[str]:
    """DSS_NAMES and the checksum the key carries, if it is another one."""
    checksum = key.checksum
    extra = [checksum[0]] if checksum is not None and checksum[0] not in DSS_NAMES else []
    return [*DSS_NAMES, *extra]


def _checked(key: AnnexKey, size: int, got: int, hexes: Mapping[str, str]) -> KeyChecksums:
    """The checksums of what was read, once it is the size expected and agrees with the key."""
    if got != size:
        raise CorruptError(f"{key}: read {got} bytes where {size} were expected "
                           "(the file changed while it was read); no checksums recorded")
    sums = KeyChecksums.from_hex(size, hexes)
    _check_against_key(key, sums, hexes)
    return sums


def compute(f: BinaryIO, size: int, key: AnnexKey) -> KeyChecksums:
    """The checksums of `size` bytes read from `f` (one pass), checked against `key`: its size and
    the checksum its name carries (hashed in the same pass when it is none of the four);
    CorruptError on a mismatch."""
    digests = DssDigests(size, _names(key)).read_from(f)
    return _checked(key, size, digests.size, digests.hexdigests())


#: below this, one pass in one thread; above, the names are hashed in parallel lanes
LANES_FROM = 16 << 20


def _lanes(names: list[str], size: int) -> list[list[str]]:
    """The names split so that no thread does all the work: MD5 (the ETag's, and a whole-file
    one for an MD5 key of several parts) is the slowest of them, as slow as the other three
    together, so it gets a lane of its own, and so does any other hash a key carries."""
    if size < LANES_FROM:
        return [names]
    rest = [n for n in names if n not in DSS_NAMES]
    if rest == ["md5"] and size <= s3_etag_part_size(size):
        return [["sha256", "sha1", "crc32c"], ["s3_etag", "md5"]]  # one part: the ETag is the MD5
    return [["sha256", "sha1", "crc32c"], ["s3_etag"], *([rest] if rest else [])]


def compute_file(path: Path, key: AnnexKey) -> KeyChecksums:
    """`compute` over a local file; a large one is read by one thread per lane (hashlib releases
    the GIL, so they run on as many cores; the page cache serves the second reader), so the pass
    takes about as long as its slowest hash, not all of them."""
    try:
        size = os.stat(path).st_size
    except OSError as e:
        raise from_os_error(e, f"local file {path}") from e
    lanes = _lanes(_names(key), size)

    def lane(names: list[str]) -> DssDigests:
        try:
            with open(path, "rb") as f:
                return DssDigests(size, names).read_from(f)
        except OSError as e:
            raise from_os_error(e, f"local file {path}") from e

    if len(lanes) == 1:
        done = [lane(lanes[0])]
    else:
        with ThreadPoolExecutor(max_workers=len(lanes), thread_name_prefix="dss-hash") as pool:
            done = list(pool.map(lane, lanes))
    hexes: dict[str, str] = {}
    for d in done:
        hexes.update(d.hexdigests())
    short = [d.size for d in done if d.size != size]
    return _checked(key, size, short[0] if short else size, hexes)
