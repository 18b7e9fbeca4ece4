"""Read keys from a dataset's `archives/archive.7z`, local or in a bucket: index once, members by offset.

DataLad's `export-archive-ora` writes uncompressed (`-mx0`), non-solid archives, so each member's
bytes lie contiguously in the file. We parse the header once per process and archive identity
(archive_index) and copy stored members by byte range, checking the CRC32 the header records:
with pread from a local file, with ranged reads of RANGE_CHUNK bytes from anywhere else (one
request each). Compressed members (an archive someone packed differently) are extracted with the
`7z` program when the archive is local and one is on PATH, else with py7zr, which reads a remote
archive through the same ranged reads. A failed extraction leaves the destination as it was.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
import threading
import zlib
from collections.abc import Callable, Hashable
from pathlib import Path

from .archive_index import (
    FIX,
    ArchiveIndex,
    ArchiveSource,
    Member,
    allow_many_members,
    load_index,
    raise_source_failure,
)
from .atomic import CHUNK, chunk_progress, write_all
from .errors import ArchiveError, DssError, UnavailableError, one_line

__all__ = ["RANGE_CHUNK", "ArchiveIndex", "ArchiveReader", "ArchiveSource", "Member", "load_index",
           "local_archive"]

logger = logging.getLogger(__name__)

#: bytes per ranged read of a remote member (the part size s3transfer downloads in, too)
RANGE_CHUNK = 8 << 20


def local_archive(path: Path) -> ArchiveSource | None:
    """The archive file at `path`, or None when there is none."""
    try:
        return ArchiveSource.local(path)
    except FileNotFoundError:
        return None


class ArchiveReader:
    """Per-process cache of archive indexes by source name; an index is parsed again only when
    the source's identity (size and revision, or inode and mtime) changed. An archive that does
    not parse is remembered too, so each lookup does not re-read it until it changes. Thread-safe."""

    def __init__(self) -> None:
        self._indexes: dict[str, ArchiveIndex] = {}
        self._broken: dict[str, tuple[Hashable, str]] = {}  # name -> (identity, error message)
        self._lock = threading.Lock()

    def index(self, source: ArchiveSource | Path) -> ArchiveIndex | None:
        """The index of the archive, or None when there is no archive file."""
        if isinstance(source, Path):
            found = local_archive(source)
            if found is None:
                self.forget(str(source))
                return None
            source = found
        with self._lock:
            cached = self._indexes.get(source.name)
            broken = self._broken.get(source.name)
        if cached is not None and cached.identity == source.identity:
            return cached
        if broken is not None and broken[0] == source.identity:
            raise ArchiveError(broken[1])
        try:
            cached = load_index(source)
        except FileNotFoundError:  # removed between stat (or HEAD) and open
            self.forget(source.name)
            return None
        except ArchiveError as e:
            with self._lock:
                self._broken[source.name] = (source.identity, str(e))
            raise
        with self._lock:
            self._indexes[source.name] = cached
            self._broken.pop(source.name, None)
        return cached

    def forget(self, name: str) -> None:
        with self._lock:
            self._indexes.pop(name, None)
            self._broken.pop(name, None)

    def find(self, source: ArchiveSource | Path, names: list[str]) -> Member | None:
        """The first of `names` in the archive, or None (no archive, or not in it)."""
        idx = self.index(source)
        return None if idx is None else idx.first(names)

    def extract(self, source: ArchiveSource | Path, member: Member, dst_fd: int,
                progress: Callable[[int], None] | None = None) -> int:
        """Write the member's bytes to `dst_fd`, verifying size and CRC32; return bytes written.

        On any failure the destination is cut back to where it was (when it is a regular file),
        so no unverified bytes stay behind.
        """
        if isinstance(source, Path):
            source = ArchiveSource.local(source)
        start = _tell(dst_fd)
        progress = chunk_progress(member.size, progress)
        try:
            if member.offset is not None:
                n, crc = _copy_stored(source, member, dst_fd, progress)
            else:
                n, crc = _extract_compressed(source, member, dst_fd, progress)
            if n != member.size:
                raise ArchiveError(f"archive {source.name}: member {member.name} gave {n} of "
                                   f"{member.size} bytes (truncated archive); {FIX}")
            if member.crc32 is not None and crc != member.crc32:
                raise ArchiveError(f"archive {source.name}: member {member.name} fails its CRC32 check "
                                   f"(corrupt archive); {FIX}")
        except BaseException:
            if start is not None:
                _cut_back(dst_fd, start)
            raise
        return n


def _tell(fd: int) -> int | None:
    try:
        return os.lseek(fd, 0, os.SEEK_CUR)
    except OSError:  # a pipe or socket: what was written cannot be taken back
        return None


def _cut_back(fd: int, pos: int) -> None:
    try:
        os.ftruncate(fd, pos)
        os.lseek(fd, pos, os.SEEK_SET)
    except OSError as e:  # not a regular file (a tty, /dev/null): nothing to cut
        logger.debug("cannot cut destination back to byte %d: %s", pos, e)


def _pump(read: Callable[[int], bytes], dst_fd: int, limit: int | None,
          progress: Callable[[int], None] | None, step: int = CHUNK) -> tuple[int, int]:
    """Copy chunks of up to `step` bytes from `read(n)` to `dst_fd` until EOF or `limit`;
    return (bytes, CRC32)."""
    n = crc = 0
    while limit is None or n < limit:
        chunk = read(step if limit is None else min(step, limit - n))
        if not chunk:
            break
        write_all(dst_fd, chunk)
        crc = zlib.crc32(chunk, crc)
        n += len(chunk)
        if progress is not None:
            progress(n)
    return n, crc


def _copy_stored(source: ArchiveSource, member: Member, dst_fd: int,
                 progress: Callable[[int], None] | None) -> tuple[int, int]:
    assert member.offset is not None
    pos = member.offset
    if source.path is None:
        def read_range(size: int) -> bytes:
            nonlocal pos
            chunk = source.read_range(pos, size)
            pos += len(chunk)
            return chunk

        return _pump(read_range, dst_fd, member.size, progress, RANGE_CHUNK)
    path = source.path
    try:
        # the file the index was read from, not whatever is at the path now
        src = os.dup(source.held.fd) if source.held is not None else os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise
    except OSError as e:
        raise UnavailableError(f"archive {path}: cannot open: {e.strerror} (check permissions)") from e

    def read(size: int) -> bytes:
        nonlocal pos
        try:
            chunk = os.pread(src, size, pos)
        except OSError as e:
            raise UnavailableError(f"archive {path}: read failed at byte {pos}: {e.strerror} "
                                   "(check the disk or mount)") from e
        pos += len(chunk)
        return chunk

    try:
        return _pump(read, dst_fd, member.size, progress)
    finally:
        os.close(src)


def _extract_compressed(source: ArchiveSource, member: Member, dst_fd: int,
                        progress: Callable[[int], None] | None) -> tuple[int, int]:
    sevenzip = shutil.which("7z") or shutil.which("7zz")
    if sevenzip and source.path is not None:
        return _extract_with_7z(sevenzip, source.path, member, dst_fd, progress)
    # a remote archive: py7zr reads what it needs through ranged reads (the 7z program cannot)
    return _extract_with_py7zr(source, member, dst_fd, progress)


def _extract_with_7z(exe: str, path: Path, member: Member, dst_fd: int,
                     progress: Callable[[int], None] | None) -> tuple[int, int]:
    # stdin is git-annex's protocol in the special remote: 7z would read a password prompt's
    # answer from it. -spd: the member name is a name, not a wildcard; `--`: nor a switch.
    # stderr goes to a file so a chatty 7z cannot block on a full pipe while we drain stdout.
    with tempfile.TemporaryFile(prefix="dss-7z-") as err:
        proc = subprocess.Popen([exe, "x", "-so", "-bd", "-spd", "-y", str(path), "--", member.name],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
        assert proc.stdout is not None
        try:
            n, crc = _pump(proc.stdout.read, dst_fd, None, progress)
        except BaseException:
            proc.kill()  # e.g. the destination is full: do not leave 7z behind
            raise
        finally:
            proc.stdout.close()
            proc.wait()
        if proc.returncode != 0:
            err.seek(0)
            msg = " ".join(err.read().decode(errors="replace").split())[-200:]
            raise ArchiveError(f"archive {path}: 7z failed to extract {member.name} "
                               f"(exit {proc.returncode}: {msg}); {FIX}")
    return n, crc


class _Sink:
    """Where py7zr writes the member: straight to the destination, with CRC and progress."""

    def __init__(self, dst_fd: int, progress: Callable[[int], None] | None) -> None:
        self.fd = dst_fd
        self.progress = progress
        self.n = self.crc = 0
        self.error: OSError | None = None

    def write(self, data: bytes | bytearray) -> int:
        try:
            write_all(self.fd, data)
        except OSError as e:  # the destination's failure, not the archive's: re-raised as is
            self.error = e
            raise
        self.crc = zlib.crc32(data, self.crc)
        self.n += len(data)
        if self.progress is not None and data:
            self.progress(self.n)
        return len(data)


def _extract_with_py7zr(source: ArchiveSource, member: Member, dst_fd: int,
                        progress: Callable[[int], None] | None) -> tuple[int, int]:
    import py7zr  # noqa: PLC0415
    from py7zr.io import Py7zIO, WriterFactory  # noqa: PLC0415

    sink = _Sink(dst_fd, progress)

    class Writer(Py7zIO):
        def write(self, s: bytes | bytearray) -> int:
            return sink.write(s)

        def read(self, size: int | None = None) -> bytes:
            return b""

        def seek(self, offset: int, whence: int = 0) -> int:
            return 0

        def seekable(self) -> bool:
            return False

        def flush(self) -> None:
            pass

        def size(self) -> int:
            return sink.n

    class Factory(WriterFactory):
        def create(self, filename: str) -> Py7zIO:
            return Writer()

    allow_many_members()
    fp = source.open()
    try:
        with py7zr.SevenZipFile(fp, mode="r") as z:
            z.extract(targets=[member.name], factory=Factory())
    except DssError:
        raise  # the source's own failure (a replica that went away), not the archive's
    except Exception as e:
        if sink.error is not None:
            raise sink.error from e
        raise_source_failure(fp, e)
        if isinstance(e, py7zr.PasswordRequired):
            raise ArchiveError(f"archive {source.name}: member {member.name} is encrypted and dss reads "
                               f"no password-protected archives; {FIX} without a password") from e
        raise ArchiveError(f"archive {source.name}: py7zr failed to extract {member.name} "
                           f"({type(e).__name__}: {one_line(e)}); {FIX}") from e
    finally:
        if hasattr(fp, "close"):
            fp.close()  # a local archive's own descriptor (py7zr leaves a file it was given open)
    return sink.n, sink.crc
