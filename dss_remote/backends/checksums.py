"""Checksums of a file in one pass, named and formatted as ObjectInfo keeps them (lowercase hex)."""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import zlib
from collections.abc import Iterable, Sequence
from typing import Any, BinaryIO

import google_crc32c

_READ = 1 << 20
_Crc32c: Any = google_crc32c.Checksum  # untyped library


class Digests:
    """Accumulates the named checksums: `crc32` (zlib, S3's ChecksumCRC32), `crc32c`
    (Castagnoli, what GCS keeps) and any hashlib name (`md5`, `sha256`, ...) a key may carry.

    With `part_size`, `crc32` is computed part by part (the whole-object value follows from the
    part CRCs by `crc32_combine`, so every byte is still hashed once) and `crc32-composite` is
    added: what S3 reports for a multipart upload in parts of that size (`crc32_composite`)."""

    def __init__(self, names: Iterable[str], *, part_size: int | None = None) -> None:
        if part_size is not None and part_size <= 0:
            raise ValueError(f"part size must be positive, not {part_size}")
        self.size = 0
        self._crc32: int | None = None
        self._crc32c: Any = None
        self._hashes: dict[str, Any] = {}
        self._part_size = part_size
        self._part_crcs: list[int] = []  # the closed parts'
        self._part_crc = 0  # the open part's CRC32 so far
        self._part_fill = 0  # the open part's bytes so far
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
            if self._part_size is None:
                self._crc32 = zlib.crc32(data, self._crc32)
            else:
                self._update_parts(memoryview(data), self._part_size)
        if self._crc32c is not None:
            self._crc32c.update(data)
        for h in self._hashes.values():
            h.update(data)

    def _update_parts(self, view: memoryview, part_size: int) -> None:
        while view:
            n = min(len(view), part_size - self._part_fill)
            self._part_crc = zlib.crc32(view[:n], self._part_crc)
            self._part_fill += n
            view = view[n:]
            if self._part_fill == part_size:
                self._crc32 = crc32_combine(self._crc32 or 0, self._part_crc, part_size)
                self._part_crcs.append(self._part_crc)
                self._part_crc = self._part_fill = 0

    def read_from(self, f: BinaryIO) -> Digests:
        while chunk := f.read(_READ):
            self.update(chunk)
        return self

    def hexdigests(self) -> dict[str, str]:
        out = {name: h.hexdigest() for name, h in self._hashes.items()}
        if self._crc32 is not None:
            whole, parts = self._crc32, self._part_crcs
            if self._part_fill:  # the last part, shorter than the others
                whole = crc32_combine(whole, self._part_crc, self._part_fill)
                parts = [*parts, self._part_crc]
            out["crc32"] = f"{whole:08x}"
            if parts:
                out["crc32-composite"] = crc32_composite(parts)
        if self._crc32c is not None:
            out["crc32c"] = bytes(self._crc32c.digest()).hex()
        return out


def crc32_composite(part_crcs: Sequence[int]) -> str:
    """S3's COMPOSITE CRC32 of an object uploaded in parts with these CRC32s, as `<hex>-<parts>`:
    the CRC32 of the parts' CRC32s, each as 4 big-endian bytes, one after the other. (S3 reports
    it base64-encoded, with the `-<parts>` suffix in HeadObject and GetObject.)"""
    joined = b"".join(crc.to_bytes(4, "big") for crc in part_crcs)
    return f"{zlib.crc32(joined):08x}-{len(part_crcs)}"


# zlib's CRC-32 register (bit-reflected, polynomial 0xEDB88320) is linear over GF(2) once the data's
# contribution is taken out: crc32(a + b) == Z(crc32(a)) ^ crc32(b), where Z is the map a register
# undergoes while len(b) zero bytes pass through it. A map is kept as the images of the 32
# one-bit registers (columns of a 32x32 bit matrix).
_CRC32_POLY = 0xEDB88320
_ZERO_BIT = (_CRC32_POLY, *(1 << (i - 1) for i in range(1, 32)))  # one zero bit shifted in


def _apply(columns: Sequence[int], register: int) -> int:
    out = 0
    for column in columns:
        if not register:
            break
        if register & 1:
            out ^= column
        register >>= 1
    return out


@functools.lru_cache(maxsize=32)
def _zero_bytes_map(nbytes: int) -> tuple[int, ...]:
    """Z for `nbytes` zero bytes: the one-bit map raised to the power 8 * nbytes by squaring."""
    result = tuple(1 << i for i in range(32))
    power: tuple[int, ...] = _ZERO_BIT
    bits = 8 * nbytes
    while bits:
        if bits & 1:
            result = tuple(_apply(power, column) for column in result)
        power = tuple(_apply(power, column) for column in power)
        bits >>= 1
    return result


def crc32_combine(crc_a: int, crc_b: int, len_b: int) -> int:
    """`zlib.crc32(a + b)` from `zlib.crc32(a)`, `zlib.crc32(b)` and `len(b)`, without the bytes."""
    return _apply(_zero_bytes_map(len_b), crc_a) ^ crc_b


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


#: the names and order of the checksums the HCA DSS keeps of every file (lower-case hex each)
DSS_NAMES = ("sha256", "sha1", "crc32c", "s3_etag")
#: the DSS's S3 part size, and S3's part limit, which makes it grow for files past 625 GiB
S3_ETAG_PART = 64 << 20
S3_MAX_PARTS = 10_000
_MIB = 1 << 20


def s3_etag_part_size(size: int, part: int = S3_ETAG_PART) -> int:
    """The part size of the DSS's S3 ETag for a file of `size` bytes: `part` while the file fits
    in S3_MAX_PARTS parts, else size / S3_MAX_PARTS rounded up to whole MiB.

    The rule of HumanCellAtlas/dcplib `dcplib/s3_multipart.py` `get_s3_multipart_chunk_size`
    (AWS_MIN_CHUNK_SIZE 64 MiB, AWS_MAX_MULTIPART_COUNT 10000), which the DSS and the hca client
    use for the `s3_etag` they write; `part` is a parameter so tests can make multipart ETags of
    small files."""
    if size <= S3_MAX_PARTS * part:
        return part
    per_part = -(-size // S3_MAX_PARTS)
    return -(-per_part // _MIB) * _MIB


class S3Etag:
    """The ETag S3 gives an upload of this content in parts of `part_size`: the plain MD5 hex
    when it is one part (or empty), else `md5(part md5 digests joined)-<parts>` (dcplib
    `checksumming_io/s3_etag.py`; unlike that one, a chunk may span any number of parts)."""

    def __init__(self, part_size: int) -> None:
        if part_size <= 0:
            raise ValueError(f"part size must be positive, not {part_size}")
        self._part_size = part_size
        self._parts: list[bytes] = []
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._fill = 0

    def update(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            if self._fill == self._part_size:  # close a full part only once more bytes come
                self._parts.append(self._md5.digest())
                self._md5 = hashlib.md5(usedforsecurity=False)
                self._fill = 0
            n = min(len(view), self._part_size - self._fill)
            self._md5.update(view[:n])
            self._fill += n
            view = view[n:]

    def hexdigest(self) -> str:
        if not self._parts:
            return self._md5.hexdigest()
        digests = [*self._parts, self._md5.digest()]
        joined = hashlib.md5(b"".join(digests), usedforsecurity=False).hexdigest()
        return f"{joined}-{len(digests)}"


class DssDigests:
    """Checksums of `size` bytes fed to `update`, in one pass: by default the four the DSS keeps
    (`DSS_NAMES`); `names` may pick some of them and add hashlib names (the checksum a key
    carries), so a file can be hashed in parallel lanes, each with a share of the names.

    The size must be known first: the S3 ETag's part size depends on it. `md5` next to
    `s3_etag` of one part is the ETag itself, never a second MD5 pass over the same bytes."""

    def __init__(self, size: int, names: Iterable[str] = DSS_NAMES, *, part: int = S3_ETAG_PART) -> None:
        wanted = list(names)
        self.size = 0
        self._crc32c: Any = _Crc32c() if "crc32c" in wanted else None
        part_size = s3_etag_part_size(size, part)
        self._etag = S3Etag(part_size) if "s3_etag" in wanted else None
        self._md5_alias = "md5" in wanted and self._etag is not None and size <= part_size
        self._hashes = {name: hashlib.new(name) for name in wanted
                        if name not in ("crc32c", "s3_etag") and not (name == "md5" and self._md5_alias)}

    def update(self, data: bytes) -> None:
        self.size += len(data)
        if self._crc32c is not None:
            self._crc32c.update(data)  # google-crc32c takes bytes, not a memoryview
        if self._etag is not None:
            self._etag.update(data)
        for h in self._hashes.values():
            h.update(data)

    def read_from(self, f: BinaryIO) -> DssDigests:
        while chunk := f.read(_READ):
            self.update(chunk)
        return self

    def hexdigests(self) -> dict[str, str]:
        """{name: lower-case hex}; `crc32c` as the DSS writes it, always 8 digits."""
        out = {name: h.hexdigest() for name, h in self._hashes.items()}
        if self._crc32c is not None:
            out["crc32c"] = bytes(self._crc32c.digest()).hex()
        if self._etag is not None:
            out["s3_etag"] = self._etag.hexdigest()
            if self._md5_alias and "-" not in out["s3_etag"]:
                out["md5"] = out["s3_etag"]
        return out
