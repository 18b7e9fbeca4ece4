"""Checksums of a file in one pass, named and formatted as ObjectInfo keeps them (lowercase hex)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import zlib
from collections.abc import Iterable
from typing import Any, BinaryIO

import google_crc32c

_READ = 1 << 20
_Crc32c: Any = google_crc32c.Checksum  # untyped library


class Digests:
    """Accumulates the named checksums: `crc32` (zlib, S3's ChecksumCRC32), `crc32c`
    (Castagnoli, what GCS keeps) and any hashlib name (`md5`, `sha256`, ...) a key may carry."""

    def __init__(self, names: Iterable[str]) -> None:
        self.size = 0
        self._crc32: int | None = None
        self._crc32c: Any = None
        self._hashes: dict[str, Any] = {}
        for name in names:
            if name == "crc32":
                self._crc32 = 0
            elif name == "crc32c":
                self._crc32c = _Crc32c()
            else:
                self._hashes[name] = hashlib.new(name)

    def update(self, data: bytes | memoryview) -> None:
        self.size += len(data)
        if self._crc32 is not None:
            self._crc32 = zlib.crc32(data, self._crc32)
        if self._crc32c is not None:
            self._crc32c.update(data)
        for h in self._hashes.values():
            h.update(data)

    def read_from(self, f: BinaryIO) -> Digests:
        while chunk := f.read(_READ):
            self.update(chunk)
        return self

    def hexdigests(self) -> dict[str, str]:
        out = {name: h.hexdigest() for name, h in self._hashes.items()}
        if self._crc32 is not None:
            out["crc32"] = f"{self._crc32:08x}"
        if self._crc32c is not None:
            out["crc32c"] = bytes(self._crc32c.digest()).hex()
        return out


def b64_to_hex(value: object) -> str | None:
    """A base64 checksum as services report them, in hex; None if it is not one."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return base64.b64decode(value, validate=True).hex()
    except (binascii.Error, ValueError):
        return None


def hex_to_b64(value: str) -> str:
    return base64.b64encode(bytes.fromhex(value)).decode()


def is_hex(value: str, length: int) -> bool:
    return len(value) == length and all(c in "0123456789abcdef" for c in value)
