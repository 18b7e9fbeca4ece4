"""Read keys from a dataset's `archives/archive.7z`: index once, stored members by offset.

DataLad's `export-archive-ora` writes uncompressed (`-mx0`), non-solid archives, so each member's
bytes lie contiguously in the file. We parse the header once per process with py7zr and copy
stored members with pread, checking the CRC32 the header records. Compressed members (an archive
someone packed differently) are extracted with the `7z` program when it is on PATH, else with
py7zr. A failed extraction leaves the destination as it was before the call.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .atomic import CHUNK, chunk_progress, write_all
from .errors import ArchiveError, UnavailableError

logger = logging.getLogger(__name__)

_COPY_METHOD = b"\x00"
_FIX = "restore the archive from a replica or re-pack it (`datalad export-archive-ora`)"


@dataclass(frozen=True)
class Member:
    """One file in the archive; `offset` is set when its bytes are stored uncompressed."""

    name: str
    size: int
    crc32: int | None
    offset: int | None


@dataclass(frozen=True)
class ArchiveIndex:
    """The member table of one archive file, tied to the file's identity so staleness shows."""

    path: Path
    identity: tuple[int, int, int, int]
    members: dict[str, Member]

    def get(self, name: str) -> Member | None:
        return self.members.get(name)


def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def load_index(path: Path) -> ArchiveIndex:
    """Parse the archive header; ArchiveError (one line, with the fix) if corrupt or truncated."""
    import py7zr  # noqa: PLC0415  (heavy import, only when an archive is consulted)

    try:
        st = path.stat()
        with py7zr.SevenZipFile(path, mode="r") as z:
            members = _members(z, path, st.st_size)
    except FileNotFoundError:
        raise
    except OSError as e:
        raise UnavailableError(f"archive {path}: cannot read: {e.strerror} (check permissions)") from e
    except ArchiveError:
        raise
    except py7zr.PasswordRequired as e:
        raise ArchiveError(f"archive {path} has an encrypted header and dss reads no password-protected "
                           f"archives; {_FIX} without a password") from e
    except Exception as e:  # py7zr raises a zoo of types (Bad7zFile, EOFError, KeyError, ...)
        raise ArchiveError(f"archive {path} is corrupt or truncated ({type(e).__name__}: "
                           f"{' '.join(str(e).split()) or 'unreadable header'}); {_FIX}") from e
    logger.debug("indexed %s: %d members", path, len(members))
    return ArchiveIndex(path, _identity(st), members)


@dataclass
class _Block:
    """Where one 7z folder's packed bytes lie, and how much of its output members have claimed."""

    start: int
    unpacked: int
    stored: bool
    n_files: int = 0
    used: int = 0


def _blocks(z: Any, path: Path, file_size: int) -> dict[int, _Block]:
    """The archive's folders by id(); ArchiveError if their pack streams do not fit in the file."""
    ms = getattr(z.header, "main_streams", None)
    if ms is None:
        return {}
    if ms.packinfo is None or ms.unpackinfo is None:
        raise ArchiveError(f"archive {path} has streams without pack or coder info (corrupt header); {_FIX}")
    blocks: dict[int, _Block] = {}
    packsizes = ms.packinfo.packsizes
    pos = z.afterheader + ms.packinfo.packpos
    stream = 0
    for i, folder in enumerate(ms.unpackinfo.folders):
        n_in = len(folder.packed_indices) or 1
        packed = packsizes[stream:stream + n_in]
        if len(packed) != n_in or not folder.unpacksizes:
            raise ArchiveError(f"archive {path}: block {i} has no pack stream or size (corrupt header); "
                               f"{_FIX}")
        unpacked = folder.unpacksizes[-1]
        stored = (len(folder.coders) == 1 and folder.coders[0]["method"] == _COPY_METHOD
                  and n_in == 1 and not folder.bindpairs and not getattr(folder, "password", None))
        if stored and folder.unpacksizes != packed:
            # Copy writes its input unchanged; unequal sizes would send reads into the next block.
            raise ArchiveError(f"archive {path}: stored block {i} declares {unpacked} bytes but packs "
                               f"{sum(packed)} (corrupt header); {_FIX}")
        blocks[id(folder)] = _Block(pos, unpacked, stored)
        pos += sum(packed)
        stream += n_in
    if pos > file_size:
        raise ArchiveError(f"archive {path} is truncated: data ends at byte {pos} but the file has "
                           f"{file_size} bytes; {_FIX}")
    return blocks


def _members(z: Any, path: Path, file_size: int) -> dict[str, Member]:
    blocks = _blocks(z, path, file_size)
    infos = list(z.files)
    for info in infos:
        folder = info._file_info.get("folder")
        if folder is not None:
            blocks[id(folder)].n_files += 1
    members: dict[str, Member] = {}
    for info in infos:
        name = info.filename
        folder = info._file_info.get("folder")
        size = int(info.uncompressed or 0)
        crc = info._file_info.get("digest")
        offset: int | None = None
        if folder is not None:
            # Every stream advances its block, even one we do not serve (a directory or symlink).
            block = blocks[id(folder)]
            if size < 0 or block.used + size > block.unpacked:
                raise ArchiveError(f"archive {path}: member {name} ({size} bytes) overruns its block "
                                   f"of {block.unpacked} bytes (corrupt header); {_FIX}")
            if block.stored:
                offset = block.start + block.used
            block.used += size
            if crc is None and folder.digestdefined and block.n_files == 1:
                crc = folder.crc
        else:  # an empty stream: a directory or a zero-byte file
            offset = 0
        if info.is_directory or info.is_symlink or info.is_junction or info.is_socket:
            # A link's stream is its target path, not content: serving it would give wrong bytes.
            continue
        members[name] = Member(name, size, crc, offset)
    return members


class ArchiveReader:
    """Per-process cache of archive indexes; re-reads an index only when the file changed."""

    def __init__(self) -> None:
        self._indexes: dict[Path, ArchiveIndex] = {}

    def index(self, path: Path) -> ArchiveIndex | None:
        """The index of `path`, or None when there is no archive file."""
        try:
            st = path.stat()
        except FileNotFoundError:
            self._indexes.pop(path, None)
            return None
        except OSError as e:
            raise UnavailableError(f"archive {path}: cannot stat: {e.strerror}") from e
        cached = self._indexes.get(path)
        if cached is None or cached.identity != _identity(st):
            try:
                cached = self._indexes[path] = load_index(path)
            except FileNotFoundError:  # removed between stat and open
                self._indexes.pop(path, None)
                return None
        return cached

    def find(self, path: Path, names: list[str]) -> Member | None:
        """The first of `names` in the archive at `path`, or None (no archive, or not in it)."""
        idx = self.index(path)
        if idx is None:
            return None
        for name in names:
            m = idx.get(name)
            if m is not None:
                return m
        return None

    def extract(self, path: Path, member: Member, dst_fd: int,
                progress: Callable[[int], None] | None = None) -> int:
        """Write the member's bytes to `dst_fd`, verifying size and CRC32; return bytes written.

        On any failure the destination is cut back to where it was (when it is a regular file),
        so no unverified bytes stay behind.
        """
        start = _tell(dst_fd)
        progress = chunk_progress(member.size, progress)
        try:
            if member.offset is not None:
                n, crc = _copy_stored(path, member, dst_fd, progress)
            else:
                n, crc = _extract_compressed(path, member, dst_fd, progress)
            if n != member.size:
                raise ArchiveError(f"archive {path}: member {member.name} gave {n} of {member.size} "
                                   f"bytes (truncated archive); {_FIX}")
            if member.crc32 is not None and crc != member.crc32:
                raise ArchiveError(f"archive {path}: member {member.name} fails its CRC32 check "
                                   f"(corrupt archive); {_FIX}")
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
          progress: Callable[[int], None] | None) -> tuple[int, int]:
    """Copy chunks from `read(n)` to `dst_fd` until EOF or `limit`; return (bytes, CRC32)."""
    n = crc = 0
    while limit is None or n < limit:
        chunk = read(CHUNK if limit is None else min(CHUNK, limit - n))
        if not chunk:
            break
        write_all(dst_fd, chunk)
        crc = zlib.crc32(chunk, crc)
        n += len(chunk)
        if progress is not None:
            progress(n)
    return n, crc


def _copy_stored(path: Path, member: Member, dst_fd: int,
                 progress: Callable[[int], None] | None) -> tuple[int, int]:
    assert member.offset is not None
    try:
        src = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise
    except OSError as e:
        raise UnavailableError(f"archive {path}: cannot open: {e.strerror} (check permissions)") from e
    pos = member.offset

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


def _extract_compressed(path: Path, member: Member, dst_fd: int,
                        progress: Callable[[int], None] | None) -> tuple[int, int]:
    sevenzip = shutil.which("7z") or shutil.which("7zz")
    if sevenzip:
        return _extract_with_7z(sevenzip, path, member, dst_fd, progress)
    return _extract_with_py7zr(path, member, dst_fd, progress)


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
                               f"(exit {proc.returncode}: {msg}); {_FIX}")
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


def _extract_with_py7zr(path: Path, member: Member, dst_fd: int,
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

    try:
        with py7zr.SevenZipFile(path, mode="r") as z:
            z.extract(targets=[member.name], factory=Factory())
    except Exception as e:
        if sink.error is not None:
            raise sink.error from e
        if isinstance(e, py7zr.PasswordRequired):
            raise ArchiveError(f"archive {path}: member {member.name} is encrypted and dss reads no "
                               f"password-protected archives; {_FIX} without a password") from e
        raise ArchiveError(f"archive {path}: py7zr failed to extract {member.name} "
                           f"({type(e).__name__}: {' '.join(str(e).split())}); {_FIX}") from e
    return sink.n, sink.crc
