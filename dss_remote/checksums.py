"""Checksums of a file in one pass, named and formatted as ObjectInfo keeps them (lowercase hex)."""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO

import google_crc32c

#: names this module computes: zlib crc32 (S3's ChecksumCRC32), Castagnoli crc32c (GCS), md5
NAMES = ("crc32", "crc32c", "md5")
_READ = 1 << 20


class Digests:
    """Accumulates crc32, crc32c, md5 and, optionally, the hashlib digests a key names."""

    def __init__(self, extra: Iterable[str] = ()) -> None:
        self._crc32 = 0
        self._crc32c: Any = google_crc32c.Checksum()  # type: ignore[no-untyped-call]
        self._md5 = hashlib.md5()
        self._extra = {name: hashlib.new(name) for name in extra if name != "md5"}

    def update(self, data: bytes | memoryview) -> None:
        self._crc32 = zlib.crc32(data, self._crc32)
        self._crc32c.update(data)
        self._md5.update(data)
        for h in self._extra.values():
            h.update(data)

    def hexdigests(self) -> dict[str, str]:
        out = {"crc32": f"{self._crc32:08x}", "crc32c": self._crc32c.digest().hex(),
               "md5": self._md5.hexdigest()}
        out.update((name, h.hexdigest()) for name, h in self._extra.items())
        return out

    def read_from(self, f: BinaryIO) -> dict[str, str]:
        while chunk := f.read(_READ):
            self.update(chunk)
        return self.hexdigests()


def file_digests(path: Path, extra: Iterable[str] = ()) -> dict[str, str]:
    with open(path, "rb") as f:
        return Digests(extra).read_from(f)
