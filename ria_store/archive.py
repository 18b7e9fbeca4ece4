"""Read keys from a dataset's `archives/archive.7z`: index once, stored members by offset.

DataLad's `export-archive-ora` writes uncompressed (`-mx0`), non-solid archives, so each member's
bytes lie contiguously in the file. We parse the header once per process with py7zr and copy
stored members with pread/copy_file_range, checking the CRC32 the header records. Compressed
members (an archive someone packed differently) are extracted with the `7z` program when it is
on PATH, else with py7zr.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import ArchiveError, UnavailableError

logger = logging.getLogger(__name__)

_COPY_METHOD = b"\x00"
_CHUNK = 1 << 20
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
            members = _members(z, st.st_size)
    except FileNotFoundError:
        raise
    except OSError as e:
        raise UnavailableError(f"archive {path}: cannot read: {e.strerror} (check permissions)") from e
    except ArchiveError:
        raise
    except Exception as e:  # py7zr raises a zoo of types (Bad7zFile, EOFError, KeyError, ...)
        raise ArchiveError(f"archive {path} is corrupt or truncated ({type(e).__name__}: "
                           f"{' '.join(str(e).split()) or 'unreadable header'}); {_FIX}") from e
    logger.debug("indexed %s: %d members", path, len(members))
    return ArchiveIndex(path, _identity(st), members)


def _members(z: object, file_size: int) -> dict[str, Member]:
    header = z.header  # type: ignore[attr-defined]
    after = z.afterheader  # type: ignore[attr-defined]
    ms = header.main_streams
    folder_start: dict[int, int] = {}
    folder_stored: dict[int, bool] = {}
    if ms is not None and ms.packinfo is not None:
        pos = after + ms.packinfo.packpos
        stream = 0
        for folder in ms.unpackinfo.folders:
            n_in = len(folder.packed_indices) or 1
            folder_start[id(folder)] = pos
            folder_stored[id(folder)] = (
                len(folder.coders) == 1 and folder.coders[0]["method"] == _COPY_METHOD
                and n_in == 1 and not folder.bindpairs and not getattr(folder, "password", None))
            pos += sum(ms.packinfo.packsizes[stream:stream + n_in])
            stream += n_in
        if pos > file_size:
            raise ArchiveError(f"archive {getattr(z, 'filename', '?')} is truncated: data ends at "
                               f"byte {pos} but the file has {file_size} bytes; {_FIX}")
    members: dict[str, Member] = {}
    cursor: dict[int, int] = {}
    for info in z.files:  # type: ignore[attr-defined]
        if info.is_directory:
            continue
        name = info.filename
        folder = info._file_info.get("folder")
        size = int(info.uncompressed or 0)
        crc = info._file_info.get("digest")
        if folder is None:  # empty stream: a zero-byte file
            members[name] = Member(name, 0, None, 0)
            continue
        if crc is None and folder.digestdefined:
            crc = folder.crc
        offset = None
        if folder_stored.get(id(folder)):
            start = folder_start[id(folder)] + cursor.get(id(folder), 0)
            offset = start
        cursor[id(folder)] = cursor.get(id(folder), 0) + size
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
            cached = self._indexes[path] = load_index(path)
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
        """Write the member's bytes to `dst_fd`, verifying size and CRC32; return bytes written."""
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
        return n


def _pump(read: Callable[[int], bytes], dst_fd: int, limit: int | None,
          progress: Callable[[int], None] | None) -> tuple[int, int]:
    """Copy chunks from `read(n)` to `dst_fd` until EOF or `limit`; return (bytes, CRC32)."""
    n = crc = 0
    while limit is None or n < limit:
        chunk = read(_CHUNK if limit is None else min(_CHUNK, limit - n))
        if not chunk:
            break
        view = memoryview(chunk)
        while view:
            view = view[os.write(dst_fd, view):]
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
    except OSError as e:
        raise UnavailableError(f"archive {path}: cannot open: {e.strerror}") from e
    pos = member.offset

    def read(size: int) -> bytes:
        nonlocal pos
        chunk = os.pread(src, size, pos)
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
    proc = subprocess.Popen([exe, "x", "-so", "-bd", str(path), member.name],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    n, crc = _pump(proc.stdout.read, dst_fd, None, progress)
    _, err = proc.communicate()
    if proc.returncode != 0:
        msg = " ".join(err.decode(errors="replace").split())[-200:]
        raise ArchiveError(f"archive {path}: 7z failed to extract {member.name} "
                           f"(exit {proc.returncode}: {msg}); {_FIX}")
    return n, crc


def _extract_with_py7zr(path: Path, member: Member, dst_fd: int,
                        progress: Callable[[int], None] | None) -> tuple[int, int]:
    import tempfile  # noqa: PLC0415

    import py7zr  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="dss-7z-") as tmp:
        try:
            with py7zr.SevenZipFile(path, mode="r") as z:
                z.extract(path=tmp, targets=[member.name])
        except Exception as e:
            raise ArchiveError(f"archive {path}: py7zr failed to extract {member.name} "
                               f"({type(e).__name__}: {' '.join(str(e).split())}); {_FIX}") from e
        out = Path(tmp) / member.name
        if not out.is_file():
            raise ArchiveError(f"archive {path}: member {member.name} missing after extraction; {_FIX}")
        with open(out, "rb") as f:
            return _pump(f.read, dst_fd, None, progress)
