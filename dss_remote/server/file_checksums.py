"""The four DSS checksums of a manifest row, behind one function.

An annexed file: the record the special remote (or `dss checksums`) keeps beside its key
(`replication.key_checksums`); without one yet, what the key itself names (SHA256 -> sha256, SHA1
-> sha1, MD5 of a single-part object -> s3_etag), the rest "" until `dss checksums` runs. A small
git file: all four from its bytes, once per process.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ria_store import bare_repo
from ria_store.errors import DssError, KeyFormatError
from ria_store.keys import parse_key
from ria_store.layout import dataset_relpath

from ..backends.checksums import DSS_NAMES, DssDigests
from ..replication import key_checksums

logger = logging.getLogger(__name__)

#: an S3 ETag is the MD5 of the bytes only for a single-part upload (the DSS's part size)
S3_PART_SIZE = 64 << 20
#: git blobs up to this size are hashed on demand; larger ones are left "" (git holds few such)
GIT_BLOB_HASH_MAX = 16 << 20
_FROM_KEY = {"sha256": "sha256", "sha1": "sha1"}


def checksums_for(store_root: Path, dataset_id: str, row: Mapping[str, Any]) -> dict[str, str]:
    """`{sha256, sha1, crc32c, s3_etag}` of a manifest row's content ("" where not known)."""
    out = dict.fromkeys(("sha256", "sha1", "crc32c", "s3_etag"), "")
    if row.get("type") == "annex":
        try:
            key = parse_key(str(row.get("key")))
        except KeyFormatError:
            return out
        recorded = _recorded(store_root, dataset_id, key.text)
        if recorded is not None:
            return dict(recorded)
        named = key.checksum
        if named is not None:
            algo, digest = named
            if algo in _FROM_KEY:
                out[_FROM_KEY[algo]] = digest
            elif algo == "md5" and key.size is not None and key.size < S3_PART_SIZE:
                out["s3_etag"] = digest
    elif row.get("type") == "git" and isinstance(row.get("git_blob"), str):
        size = row.get("size")
        if isinstance(size, int) and size <= GIT_BLOB_HASH_MAX:
            repo = store_root / dataset_relpath(dataset_id)
            try:
                out.update(_git_blob_checksums(str(repo), str(row["git_blob"])))
            except DssError as e:
                logger.warning("dataset %s: cannot hash git blob %s (%s)", dataset_id, row["git_blob"], e)
    return out


#: records kept in memory per process (a few hundred bytes each)
RECORDS_KEPT = 16384
_records: OrderedDict[tuple[str, str, str], tuple[tuple[str, str], ...]] = OrderedDict()
_records_lock = threading.Lock()


def _recorded(store_root: Path, dataset_id: str, key: str) -> tuple[tuple[str, str], ...] | None:
    """The key's checksum record, from memory once read: a record describes the key's bytes,
    which never change, so only found records are kept (a key without one yet is looked up
    again, so `dss checksums` filling it in shows on the next request)."""
    mark = (str(store_root), dataset_id, key)
    with _records_lock:
        found = _records.get(mark)
        if found is not None:
            _records.move_to_end(mark)
            return found
    try:
        record = key_checksums.read(store_root, dataset_id, key)
    except DssError as e:  # a damaged record: say so in the log, answer what the key names
        logger.warning("dataset %s: %s", dataset_id, e)
        return None
    if record is None:
        return None
    found = tuple((name, getattr(record, name)) for name in DSS_NAMES)
    with _records_lock:
        _records[mark] = found
        while len(_records) > RECORDS_KEPT:
            _records.popitem(last=False)
    return found


@functools.lru_cache(maxsize=4096)
def _git_blob_checksums(repo: str, blob: str) -> tuple[tuple[str, str], ...]:
    # A blob id names its bytes for ever, so the memo never goes stale; failures raise (and so
    # are not memoised).
    data = bare_repo.read_blobs(Path(repo), [blob]).get(blob)
    if data is None:
        raise DssError(f"git blob {blob} is missing from {repo}")
    digests = DssDigests(len(data))
    digests.update(data)
    return tuple(digests.hexdigests().items())
