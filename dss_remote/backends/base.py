"""The Backend contract: a namespace of immutable objects under a root, addressed by relative path.

A backend knows nothing of git-annex or RIA; it stores bytes under POSIX-style relative paths
(`a/b/c`, never absolute, never `..`). Contract, which every implementation's tests check:

- `put_file` publishes an object atomically: readers see the old state or the complete new
  object, never a partial one; on failure nothing new is visible.
- `info` answers None for an absent object and raises UnavailableError when it cannot tell.
- `get_file` raises NotFoundError for an absent object, writes the bytes to an open file
  descriptor and returns how many it wrote.
- `read_range(relpath, start, length)` reads like `os.pread`: up to `length` bytes from byte
  `start`, fewer only where the object ends (b"" from its end on); NotFoundError if absent,
  ValueError for a negative start or length. It lets archives be indexed and read where they lie.
- `remove` succeeds when the object is already absent.
- `iter_objects(prefix)` lists every object under `prefix/` (recursively), with sizes and
  checksums, without reading content; a backend that cannot list (`listable` False: plain
  HTTP) raises UnavailableError saying so.
- `iter_leftovers(prefix)` lists what interrupted writes (kill -9, a full disk) left under
  `prefix/`: temp files (`.dss-tmp-*`), unfinished multipart uploads, directories that hold no file;
  each with the time it was last written, never an object. `remove_leftover` removes one (fine if
  gone; a directory only while it is still empty; a temp file's directories it leaves empty go too,
  as with `remove`). Whether a leftover is old enough that no writer can still be busy with it is
  the caller's to decide. A backend whose writes leave nothing listable yields nothing (GCS: an
  unfinished resumable upload is a session, not an object, and expires after a week; a read-only
  backend is never written).
- A read-only backend (`writable` False) refuses `put_file`, `write_bytes` and `remove` with a
  WriteError naming the fix, before anything is sent.
- Checksums are lowercase hex, named `md5`, `sha256`, `crc32` (zlib), `crc32c` (Castagnoli), and
  `crc32-composite` (`<hex>-<parts>`: S3's CRC32 of a multipart upload, the CRC32 of its parts'
  CRC32s). `ObjectInfo.checksums` are what the service itself keeps and recomputes from the
  stored bytes (S3 `ChecksumCRC32`, GCS `crc32c`/`md5Hash`); `ObjectInfo.recorded` are what dss
  computed from the source file at upload and stored beside the object (metadata). Comparing the
  two where both have a name verifies a cloud copy without downloading it. A POSIX file has neither.
- Errors are DssError subclasses with one-line messages naming the backend and the fix:
  AccessError for credentials/permissions, UnavailableError for anything that makes presence
  undecidable (unreachable endpoint, missing bucket, timeouts: bounded, never a hang).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from ria_store.errors import AccessError, UnsafePathError

Progress = Callable[[int], None]


@dataclass(frozen=True)
class ObjectInfo:
    """What a backend knows about a stored object without reading it."""

    relpath: str
    size: int
    #: checksums the storage service keeps for the stored bytes, {name: lowercase hex}
    checksums: Mapping[str, str] = field(default_factory=dict)
    #: checksums dss recorded at upload, computed from the source file, {name: lowercase hex}
    recorded: Mapping[str, str] = field(default_factory=dict)
    #: an opaque token that changes when the object is replaced (S3 ETag, GCS generation, inode and
    #: mtime of a file); None where the backend has none. Caches of what an object holds key on it.
    revision: str | None = None


#: Leftover.kind of a temp file an interrupted write left (POSIX, SFTP, other file systems)
TEMP_FILE = "temp file"
#: Leftover.kind of an S3 multipart upload that was neither completed nor aborted
UPLOAD = "unfinished upload"
#: Leftover.kind of a directory holding no file (only, maybe, empty directories)
EMPTY_DIR = "empty directory"


@dataclass(frozen=True)
class Leftover:
    """Something an interrupted write left behind: never an object, never read."""

    #: TEMP_FILE, UPLOAD or EMPTY_DIR
    kind: str
    #: where it is (an upload: the object it was for; a directory: its path)
    relpath: str
    #: when it was last written (a file's or directory's mtime, an upload's start), timezone-aware
    touched: datetime
    #: what the backend needs besides the path to remove it (an S3 upload id)
    token: str | None = None


class Backend(ABC):
    """Base class: see the module docstring for the contract."""

    #: a directory on this machine holding the objects (enables archive reads by offset)
    local_root: Path | None = None
    #: False for read-only transports (e.g. plain HTTP) and mirrors configured `read_only`
    writable: bool = True
    #: False where objects cannot be listed (plain HTTP): fsck then checks them key by key
    listable: bool = True
    #: True where the service keeps checksums of the stored bytes (S3, GCS): fsck compares them
    keeps_checksums: bool = False
    #: "posix", "s3", "gcs", "memory", ...: for messages and for choosing a replica order
    kind: str = "posix"
    #: True where `presign_get` hands out URLs (S3, GCS): the server then redirects to the bucket
    presigns: bool = False

    def __init__(self, url: str) -> None:
        self.url = url

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    def presign_get(self, relpath: str, seconds: int) -> str:
        """A URL anyone holding it may GET the object from for `seconds`, with no credentials of
        their own; AccessError where this backend cannot make one (the server then streams)."""
        raise AccessError(f"replica {self.url}: a {self.kind} backend cannot hand out presigned URLs "
                          "(only S3 and GCS mirrors can); the server streams its objects itself")

    @abstractmethod
    def info(self, relpath: str) -> ObjectInfo | None:
        """Size of the object, None if absent; UnavailableError if that cannot be told."""

    @abstractmethod
    def get_file(self, relpath: str, dst_fd: int, progress: Progress | None = None) -> int:
        """Write the object's bytes to `dst_fd` (at its current offset); return the count."""

    @abstractmethod
    def read_range(self, relpath: str, start: int, length: int) -> bytes:
        """Up to `length` bytes from byte `start`, fewer only at the end (see the module docstring)."""

    @abstractmethod
    def put_file(self, src: Path, relpath: str, progress: Progress | None = None) -> None:
        """Publish the content of local file `src` as `relpath`, atomically."""

    @abstractmethod
    def remove(self, relpath: str) -> None:
        """Delete the object; fine if absent."""

    @abstractmethod
    def read_bytes(self, relpath: str) -> bytes:
        """The whole content of a small object (config, version files); NotFoundError if absent."""

    @abstractmethod
    def write_bytes(self, relpath: str, data: bytes) -> None:
        """Publish a small object atomically."""

    @abstractmethod
    def iter_objects(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every object under `prefix/` (recursively, any order); nothing if there is none."""

    @abstractmethod
    def iter_leftovers(self, prefix: str) -> Iterator[Leftover]:
        """What interrupted writes left under `prefix/` (see the module docstring)."""

    @abstractmethod
    def remove_leftover(self, leftover: Leftover) -> None:
        """Remove what `iter_leftovers` listed; fine if it is gone already."""


def empty_dirs(dirs: Mapping[str, datetime], files: Iterable[str]) -> Iterator[tuple[str, datetime]]:
    """From a listing below some top directory (`dirs`: every directory below it with its mtime,
    `files`: every other entry), the topmost directories that hold no file anywhere beneath them,
    each with the newest mtime among the directories in it (when it was last written)."""
    full: set[str] = set()
    for f in files:
        d = f.rpartition("/")[0]
        while d in dirs and d not in full:
            full.add(d)
            d = d.rpartition("/")[0]
    newest: dict[str, datetime] = {}
    for d in dirs:
        if d in full:
            continue
        top = d
        while (up := top.rpartition("/")[0]) in dirs and up not in full:
            top = up
        newest[top] = max(newest.get(top, dirs[d]), dirs[d])
    return iter(sorted(newest.items()))


def check_range(start: int, length: int) -> None:
    """Refuse a range no caller should ask for: a negative start or length is a bug."""
    if start < 0 or length < 0:
        raise ValueError(f"invalid byte range: start {start}, length {length} (both must be >= 0)")


def check_relpath(relpath: str) -> str:
    """Refuse paths that are absolute, empty or climb with `..`: backends never leave their root."""
    if (not relpath or relpath[0] == "/" or "\\" in relpath or "\x00" in relpath
            or ".." in relpath.split("/")):
        raise UnsafePathError(f"refusing object path {relpath!r}: it must be relative and stay "
                              "inside the store (a bug or a malicious key; report it)")
    return relpath
