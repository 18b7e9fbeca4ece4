"""Where an archive's bytes come from (a local file or ranged reads), and its member table from py7zr.

An ArchiveSource is a 7z file anywhere: on this machine (`path` set: py7zr opens the file) or in
a bucket (`read_range` only: py7zr reads the header through a RangeFile, a few requests). The
index maps member names to sizes, CRC32s and, for stored (uncompressed) members, the offset of
their bytes in the file, which is all a reader needs to copy a member by byte range.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ArchiveError, DssError, UnavailableError, one_line
from .range_file import RangeFile, ReadRange

logger = logging.getLogger(__name__)

_COPY_METHOD = b"\x00"
FIX = "restore the archive from a replica or re-pack it (`datalad export-archive-ora`)"


@dataclass(frozen=True)
class ArchiveSource:
    """An archive file: a name for messages (and the index cache), its size, an identity that
    changes when the file is replaced, pread-like ranged reads, and `path` when it is local."""

    name: str
    size: int
    identity: Hashable
    read_range: ReadRange
    path: Path | None = None
    #: the open file of a local archive (`local`)
    held: OpenFile | None = field(default=None, compare=False, repr=False)

    @classmethod
    def local(cls, path: Path) -> ArchiveSource:
        """A file on this machine, opened once: its identity, header and member bytes all come
        from that one open file, so an archive renamed over it meanwhile (`dss pack`) is never
        mixed with it. FileNotFoundError if absent, UnavailableError if unreadable."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise
        except OSError as e:
            raise UnavailableError(f"archive {path}: cannot open: {e.strerror} (check permissions)") from e
        held = OpenFile(fd)
        st = os.fstat(fd)
        return cls(str(path), st.st_size, (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns),
                   functools.partial(_pread_held, held, st.st_size), path, held)

    def open(self) -> Any:
        """What py7zr reads: the open local file (a descriptor of its own), else a seekable file
        over ranged reads."""
        if self.path is not None and self.held is not None:
            f = os.fdopen(os.dup(self.held.fd), "rb")
            f.seek(0)  # a dup shares the offset a parse before may have moved
            return f
        return RangeFile(self.read_range, self.size)


class OpenFile:
    """A descriptor closed when the last ArchiveSource holding it goes."""

    __slots__ = ("fd",)

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __del__(self) -> None:
        try:
            os.close(self.fd)
        except OSError:
            pass


def _pread_held(held: OpenFile, size: int, start: int, length: int) -> bytes:
    return os.pread(held.fd, max(0, min(length, size - start)), start)


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

    name: str
    identity: Hashable
    members: dict[str, Member]

    def get(self, name: str) -> Member | None:
        return self.members.get(name)

    def first(self, names: list[str]) -> Member | None:
        """The first of `names` that is a member (a key may have more than one possible name)."""
        for name in names:
            m = self.members.get(name)
            if m is not None:
                return m
        return None


def load_index(source: ArchiveSource | Path, *, saved: bool = True) -> ArchiveIndex:
    """Parse the archive header; ArchiveError (one line, with the fix) if corrupt or truncated.
    With `saved`, a local archive's member table saved beside it (archive_sidecar.py) is used
    instead when it matches the archive.

    FileNotFoundError if there is no archive; the source's own errors (a replica that cannot be
    reached) pass through as they are: they say nothing about the archive.
    """
    import py7zr  # noqa: PLC0415  (heavy import, only when an archive is consulted)

    allow_many_members()
    if isinstance(source, Path):
        source = ArchiveSource.local(source)
    if saved:
        from .archive_sidecar import load as load_saved  # noqa: PLC0415  (it imports this module)

        found = load_saved(source)
        if found is not None:
            return found
    name = source.name
    fp = source.open()
    try:
        with py7zr.SevenZipFile(fp, mode="r") as z:
            members = _members(z, name, source.size)
    except (FileNotFoundError, DssError):
        raise
    except Exception as e:
        raise_source_failure(fp, e)
        if isinstance(e, OSError):
            raise UnavailableError(f"archive {name}: cannot read: {e.strerror} (check permissions)") from e
        if isinstance(e, py7zr.PasswordRequired):
            raise ArchiveError(f"archive {name} has an encrypted header and dss reads no "
                               f"password-protected archives; {FIX} without a password") from e
        # py7zr raises a zoo of types (Bad7zFile, EOFError, KeyError, ...)
        raise ArchiveError(f"archive {name} is corrupt or truncated ({type(e).__name__}: "
                           f"{one_line(e) or 'unreadable header'}); {FIX}") from e
    finally:
        if not isinstance(fp, RangeFile):
            fp.close()  # our descriptor of its own (py7zr leaves a file it was given open)
    logger.debug("indexed %s: %d members", name, len(members))
    return ArchiveIndex(name, source.identity, members)


def allow_many_members() -> None:
    """Let py7zr read archives of more than 65,536 keys.

    py7zr caps the pack streams of an archive at 65,536 (`MAX_NUMSTREAMS`), but an archive as
    DataLad packs one (uncompressed, not solid) has one pack stream per key, and a dataset may have
    100,000 keys or more: py7zr would call such an archive corrupt. Its cap on folders, which
    such an archive has as many of, is 1 << 20; the pack-stream cap is raised to match it. py7zr
    still checks that every count fits in the header bytes that remain, so a corrupt count cannot
    make it allocate more than the header's size allows.
    """
    from py7zr import archiveinfo  # noqa: PLC0415

    cap = int(getattr(archiveinfo, "MAX_NUMFOLDERS", 1 << 20))
    if int(getattr(archiveinfo, "MAX_NUMSTREAMS", cap)) < cap:
        archiveinfo.MAX_NUMSTREAMS = cap


def raise_source_failure(fp: object, error: BaseException) -> None:
    """Re-raise what the ranged reads under `fp` raised, if py7zr turned it into something else."""
    failure = getattr(fp, "failure", None) if isinstance(fp, RangeFile) else None
    if failure is not None and failure is not error:
        raise failure from error


@dataclass
class _Block:
    """Where one 7z folder's packed bytes lie, and how much of its output members have claimed."""

    start: int
    unpacked: int
    stored: bool
    n_files: int = 0
    used: int = 0


def _blocks(z: Any, name: str, file_size: int) -> dict[int, _Block]:
    """The archive's folders by id(); ArchiveError if their pack streams do not fit in the file."""
    ms = getattr(z.header, "main_streams", None)
    if ms is None:
        return {}
    if ms.packinfo is None or ms.unpackinfo is None:
        raise ArchiveError(f"archive {name} has streams without pack or coder info (corrupt header); {FIX}")
    blocks: dict[int, _Block] = {}
    packsizes = ms.packinfo.packsizes
    pos = z.afterheader + ms.packinfo.packpos
    stream = 0
    for i, folder in enumerate(ms.unpackinfo.folders):
        n_in = len(folder.packed_indices) or 1
        packed = packsizes[stream:stream + n_in]
        if len(packed) != n_in or not folder.unpacksizes:
            raise ArchiveError(f"archive {name}: block {i} has no pack stream or size (corrupt header); "
                               f"{FIX}")
        unpacked = folder.unpacksizes[-1]
        stored = (len(folder.coders) == 1 and folder.coders[0]["method"] == _COPY_METHOD
                  and n_in == 1 and not folder.bindpairs and not getattr(folder, "password", None))
        if stored and folder.unpacksizes != packed:
            # Copy writes its input unchanged; unequal sizes would send reads into the next block.
            raise ArchiveError(f"archive {name}: stored block {i} declares {unpacked} bytes but packs "
                               f"{sum(packed)} (corrupt header); {FIX}")
        blocks[id(folder)] = _Block(pos, unpacked, stored)
        pos += sum(packed)
        stream += n_in
    if pos > file_size:
        raise ArchiveError(f"archive {name} is truncated: data ends at byte {pos} but the file has "
                           f"{file_size} bytes; {FIX}")
    return blocks


def _members(z: Any, name: str, file_size: int) -> dict[str, Member]:
    blocks = _blocks(z, name, file_size)
    infos = list(z.files)
    for info in infos:
        folder = info._file_info.get("folder")
        if folder is not None:
            blocks[id(folder)].n_files += 1
    members: dict[str, Member] = {}
    for info in infos:
        member = info.filename
        folder = info._file_info.get("folder")
        size = int(info.uncompressed or 0)
        crc = info._file_info.get("digest")
        offset: int | None = None
        if folder is not None:
            # Every stream advances its block, even one we do not serve (a directory or symlink).
            block = blocks[id(folder)]
            if size < 0 or block.used + size > block.unpacked:
                raise ArchiveError(f"archive {name}: member {member} ({size} bytes) overruns its block "
                                   f"of {block.unpacked} bytes (corrupt header); {FIX}")
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
        members[member] = Member(member, size, crc, offset)
    return members
