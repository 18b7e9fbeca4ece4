"""Direct uploads, resumable: the core of the tus protocol (https://tus.io/protocols/resumable-upload),
version 1.0.0, with its `creation` extension.

Why tus and not S3-style parts: a producer without a staging bucket wants one streamed request
per file, and to go on from where a cut connection left off; tus is exactly that (POST makes an
upload of a declared length, PATCH appends at `Upload-Offset`, HEAD tells the offset reached),
with maintained clients in many languages (tus-js-client, tuspy, tusd's Go client), and no part
bookkeeping or part-size rules for the producer. The finished upload is then named by
`PUT /v1/files/{uuid}` with `source_url` = the upload's URL.

On disk (under `dss/tmp/uploads/`, never mirrored, never served): `<id>.part` (the bytes so
far) and `<id>.json` (length, owner, metadata, created). An append is flocked, checked against
the part's real size (a stale offset is 409) and fsynced before the new offset is reported;
nothing of an upload is visible in the store until it is finished and deposited.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ria_store.atomic import makedirs_durable, write_all, write_bytes_atomic
from ria_store.errors import DssError, NotFoundError

from ..config import paths
from ..history import times

logger = logging.getLogger(__name__)

#: the largest upload taken (5 TiB, S3's object limit)
MAX_LENGTH = 5 << 40
_ID_RE = re.compile(r"[0-9a-f]{32}")


class OffsetMismatch(DssError):
    """A PATCH at an offset that is not the upload's: 409 (HEAD tells the right one)."""


class TooLong(DssError):
    """More bytes than the upload declared: 413."""


@dataclass(frozen=True)
class Upload:
    id: str
    length: int
    offset: int
    owner: str | None
    metadata: dict[str, str]
    created: str

    @property
    def finished(self) -> bool:
        return self.offset == self.length


def _dir(root: Path) -> Path:
    return root / paths.UPLOADS


def _paths(root: Path, upload_id: str) -> tuple[Path, Path]:
    if not _ID_RE.fullmatch(upload_id):
        raise NotFoundError(f"no upload {upload_id!r}: upload ids are 32 hex digits from POST /v1/uploads")
    return _dir(root) / f"{upload_id}.part", _dir(root) / f"{upload_id}.json"


def create(root: Path, length: int, owner: str | None, metadata: dict[str, str]) -> Upload:
    if not 0 <= length <= MAX_LENGTH:
        raise DssError(f"Upload-Length {length} is not 0 to {MAX_LENGTH} bytes")
    upload_id = secrets.token_hex(16)
    part, meta = _paths(root, upload_id)
    makedirs_durable(part.parent)
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    created = times.format_utc(times.now())
    doc = {"length": length, "owner": owner, "metadata": metadata, "created": created}
    write_bytes_atomic(meta, json.dumps(doc, sort_keys=True).encode(), mode=0o600)
    return Upload(upload_id, length, 0, owner, metadata, created)


def get(root: Path, upload_id: str) -> Upload:
    part, meta = _paths(root, upload_id)
    try:
        doc: dict[str, Any] = json.loads(meta.read_bytes())
        offset = part.stat().st_size
    except FileNotFoundError as e:
        raise NotFoundError(f"no upload {upload_id} (finished, expired or never made); start a new one "
                            "with POST /v1/uploads") from e
    except ValueError as e:
        raise DssError(f"upload {upload_id} is damaged ({e}); start a new one") from e
    return Upload(upload_id, int(doc["length"]), offset, doc.get("owner"), dict(doc.get("metadata") or {}),
                  str(doc.get("created")))


class Appender:
    """One PATCH: `write` each chunk as it arrives, then `close` (fsync); the offset is checked
    under the part's flock when opened."""

    def __init__(self, root: Path, upload_id: str, offset: int) -> None:
        import fcntl  # noqa: PLC0415

        self.upload = get(root, upload_id)
        part, _ = _paths(root, upload_id)
        self.fd = os.open(part, os.O_WRONLY | os.O_APPEND)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            os.close(self.fd)
            raise OffsetMismatch(f"upload {upload_id} is being written by another request; HEAD it for "
                                 "its offset once that one ends") from e
        self.offset = os.fstat(self.fd).st_size
        if offset != self.offset:
            os.close(self.fd)
            raise OffsetMismatch(f"Upload-Offset {offset} is not where upload {upload_id} stands "
                                 f"({self.offset}); HEAD it and go on from there")

    def write(self, data: bytes) -> None:
        if self.offset + len(data) > self.upload.length:
            raise TooLong(f"more bytes than the upload's Upload-Length {self.upload.length}")
        write_all(self.fd, data)
        self.offset += len(data)

    def close(self) -> int:
        """fsync and release; the offset now durable."""
        try:
            os.fsync(self.fd)
        finally:
            os.close(self.fd)
        return self.offset

    def abort(self) -> None:
        """Keep what was written (the upload goes on from there), release the lock."""
        try:
            os.fsync(self.fd)
        except OSError:
            pass
        os.close(self.fd)


def take(root: Path, upload_id: str) -> Path:
    """The finished upload's bytes as a new link the caller consumes; the upload stays until
    `remove` (a deposit refused for its checksums or version leaves it to be named again)."""
    upload = get(root, upload_id)
    if not upload.finished:
        raise DssError(f"upload {upload_id} is not finished ({upload.offset} of {upload.length} bytes); "
                       "PATCH the rest first")
    part, _ = _paths(root, upload_id)
    taken = part.with_name(f".dss-tmp-taken-{upload_id}-{secrets.token_hex(4)}")
    os.link(part, taken)
    return taken


def remove(root: Path, upload_id: str) -> None:
    part, meta = _paths(root, upload_id)
    part.unlink(missing_ok=True)
    meta.unlink(missing_ok=True)
