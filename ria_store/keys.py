"""git-annex keys: parse and validate, escape for file names, sizes and checksums they carry."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from .errors import KeyFormatError

# doc/internals/key_format.mdwn: BACKEND[-sNNNN][-mNNNN][-SNNNN-CNNNN]--NAME
_KEY_RE = re.compile(r"(?P<backend>[A-Za-z0-9_]+)(?P<fields>(?:-[smSC][0-9]+)*)--(?P<name>.+)", re.S)
_FIELD_RE = re.compile(r"-([smSC])([0-9]+)")
_BAD_CHARS = re.compile(r"[\s\x00-\x1f\x7f]")
# Annex/Locations.hs keyFile, applied character by character, so the mapping is one-to-one.
_ESCAPES = str.maketrans({"/": "%", "%": "&s", "&": "&a", ":": "&c"})
# A sanitized key is one path component; most file systems cap a name at 255 bytes.
MAX_NAME_BYTES = 255

# Backends whose key name is (or starts with) the hex digest of the content: name -> hashlib name.
_HASH_BACKENDS = {
    "MD5": "md5", "SHA1": "sha1", "SHA224": "sha224", "SHA256": "sha256", "SHA384": "sha384",
    "SHA512": "sha512", "SHA3_224": "sha3_224", "SHA3_256": "sha3_256", "SHA3_384": "sha3_384",
    "SHA3_512": "sha3_512", "BLAKE2B512": "blake2b", "BLAKE2S256": "blake2s",
}


@dataclass(frozen=True)
class AnnexKey:
    """A parsed git-annex key; `str()` gives back the exact key text."""

    text: str
    backend: str
    name: str
    size: int | None = None
    mtime: int | None = None
    chunk_size: int | None = None
    chunk_num: int | None = None

    def __str__(self) -> str:
        return self.text

    @property
    def non_chunk(self) -> str:
        """The key without `-S<n>-C<n>`: all chunks of a key share its hash directory."""
        if self.chunk_size is None:
            return self.text
        fields = "".join(f"-{f}{v}" for f, v in (("s", self.size), ("m", self.mtime)) if v is not None)
        return f"{self.backend}{fields}--{self.name}"

    @property
    def expected_size(self) -> int | None:
        """Size of the content this key names (of this chunk, for a chunk key), if the key says."""
        if self.chunk_size is None or self.chunk_num is None:
            return self.size
        if self.size is None:
            return None
        start = self.chunk_size * (self.chunk_num - 1)
        return max(0, min(self.chunk_size, self.size - start))

    @property
    def checksum(self) -> tuple[str, str] | None:
        """`(hashlib name, hex digest)` of the content, for hash backends; None for a chunk key."""
        if self.chunk_num is not None:
            return None
        base = self.backend[:-1] if self.backend.endswith("E") else self.backend
        algo = _HASH_BACKENDS.get(base)
        if algo is None:
            return None
        digest = self.name.split(".", 1)[0] if self.backend.endswith("E") else self.name
        if len(digest) != 2 * hashlib.new(algo).digest_size or not re.fullmatch(r"[0-9a-f]+", digest):
            return None
        return algo, digest


def parse_key(text: str) -> AnnexKey:
    """Parse and validate `text` as a key; raise KeyFormatError naming what is wrong."""
    if not isinstance(text, str) or not text:
        raise KeyFormatError("malformed key '': empty (expected BACKEND[-sSIZE]--NAME)")
    if _BAD_CHARS.search(text):
        raise KeyFormatError(
            f"malformed key {text!r}: contains whitespace or control characters "
            "(git-annex keys never do; check what passed it)")
    m = _KEY_RE.fullmatch(text)
    if m is None:
        raise KeyFormatError(
            f"malformed key {text!r}: expected BACKEND[-sSIZE][-mMTIME][-SCHUNK-CNUM]--NAME "
            "(see git-annex doc/internals/key_format)")
    fields: dict[str, int] = {}
    for f, v in _FIELD_RE.findall(m.group("fields")):
        if f in fields:
            raise KeyFormatError(f"malformed key {text!r}: field -{f} appears twice")
        fields[f] = int(v)
    if ("S" in fields) != ("C" in fields):
        raise KeyFormatError(f"malformed key {text!r}: chunk fields -S and -C must come together")
    if fields.get("C") == 0 or fields.get("S") == 0:
        raise KeyFormatError(f"malformed key {text!r}: chunk size and number start at 1")
    # git-annex hashes (and names objects by) its own serialization; a key it would write differently
    # (`-s010`, `-m1-s2`) would land in another directory than git-annex's.
    canonical = "".join(f"-{f}{fields[f]}" for f in "smSC" if f in fields)
    if canonical != m.group("fields"):
        raise KeyFormatError(
            f"malformed key {text!r}: fields out of order or zero-padded; git-annex writes it as "
            f"'{m.group('backend')}{canonical}--{m.group('name')}'")
    key = AnnexKey(text, m.group("backend"), m.group("name"), fields.get("s"), fields.get("m"),
                   fields.get("S"), fields.get("C"))
    if len(sanitize_key(text).encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
        raise KeyFormatError(
            f"malformed key {text[:40]!r}...: longer than {MAX_NAME_BYTES} bytes as a file name "
            "(use a backend without the file extension, e.g. SHA256 instead of SHA256E)")
    return key


def sanitize_key(key: str) -> str:
    """git-annex's keyFile escaping, as ORA applies it: one path component, one-to-one."""
    return key.translate(_ESCAPES)


_UNESCAPE = re.compile(r"&[sac]|%")
_UNESCAPES = {"%": "/", "&s": "%", "&a": "&", "&c": ":"}


def unsanitize_key(name: str) -> str:
    """The key a `sanitize_key`d file name stands for (the exact inverse)."""
    return _UNESCAPE.sub(lambda m: _UNESCAPES[m.group(0)], name)
