"""ria_store.range_file: a seekable file over ranged reads, with few requests for a 7z header."""

from __future__ import annotations

import io
import os
from pathlib import Path

import py7zr
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ria_store.archive import load_index
from ria_store.archive_index import ArchiveSource
from ria_store.range_file import BLOCK, MAX_AHEAD, RangeFile

MiB = 1 << 20


class Source:
    """Bytes served like a backend's read_range (pread semantics), recording every request."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.calls: list[tuple[int, int]] = []

    def __call__(self, start: int, length: int) -> bytes:
        assert start >= 0 and length >= 0
        self.calls.append((start, length))
        return self.data[start:start + length]


DATA = os.urandom(3 * MiB + 123)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(DATA) + 100), st.integers(0, 300_000)), min_size=1,
                max_size=30))
def test_reads_and_seeks_match_the_bytes(ops: list[tuple[int, int]]) -> None:
    """Any sequence of seek+read gives what a real file gives."""
    f = RangeFile(Source(DATA), len(DATA), block=4096, max_ahead=64 * 1024, cache_bytes=256 * 1024)
    real = io.BytesIO(DATA)
    for pos, n in ops:
        assert f.seek(pos) == real.seek(pos)
        assert f.read(n) == real.read(n)
        assert f.tell() == real.tell()


def test_seek_whence_and_bad_seeks() -> None:
    f = RangeFile(Source(DATA), len(DATA))
    assert f.seek(-10, os.SEEK_END) == len(DATA) - 10
    assert f.read() == DATA[-10:]
    assert f.seek(-5, os.SEEK_CUR) == len(DATA) - 5
    assert f.read(100) == DATA[-5:]
    assert f.read(100) == b""  # at the end
    with pytest.raises(OSError, match="negative seek"):
        f.seek(-1)
    with pytest.raises(ValueError, match="whence"):
        f.seek(0, 7)
    assert f.readable() and f.seekable() and not f.writable()


def test_small_reads_cost_one_request_per_block() -> None:
    src = Source(DATA)
    f = RangeFile(src, len(DATA))
    for pos in (0, 10, 100, 5000, 20, BLOCK - 1):  # all inside the first block
        f.seek(pos)
        assert f.read(1) == DATA[pos:pos + 1]
    assert src.calls == [(0, BLOCK)]


def test_sequential_reads_fetch_ever_larger_blocks_ahead() -> None:
    """py7zr streaming a packed block reads 32 KiB at a time: requests grow to MAX_AHEAD."""
    data = os.urandom(40 * MiB)
    src = Source(data)
    f = RangeFile(src, len(data))
    got = bytearray()
    while chunk := f.read(32 * 1024):
        got += chunk
    assert got == data
    assert max(length for _, length in src.calls) == MAX_AHEAD
    assert len(src.calls) <= 15, src.calls  # not the 1280 reads it took


def test_a_read_larger_than_the_cache_is_one_uncached_request() -> None:
    src = Source(DATA)
    f = RangeFile(src, len(DATA), block=4096, max_ahead=8192, cache_bytes=16384)
    assert f.read(MiB) == DATA[:MiB]
    assert src.calls == [(0, MiB)]
    f.seek(0)
    assert f.read(10) == DATA[:10]
    assert len(src.calls) == 2  # the big read was not kept


def test_cache_stays_within_its_budget() -> None:
    src = Source(DATA)
    f = RangeFile(src, len(DATA), block=4096, max_ahead=8192, cache_bytes=16384)
    for pos in range(0, 2 * MiB, 100_000):  # random-ish, never sequential
        f.seek(pos)
        assert f.read(10) == DATA[pos:pos + 10]
    assert f._cached <= 16384
    assert sum(len(c) for c in f._chunks.values()) == f._cached


def test_a_source_shorter_than_its_size_gives_a_short_read() -> None:
    """The object shrank after its size was taken: the read ends early instead of looping."""
    src = Source(DATA[:1000])
    f = RangeFile(src, len(DATA))
    assert f.read(5000) == DATA[:1000]
    assert f.read(10) == b""


@pytest.mark.parametrize("geometry", [dict(block=0), dict(max_ahead=100, block=4096),
                                      dict(cache_bytes=MiB, max_ahead=2 * MiB)])
def test_bad_geometry_is_refused(geometry: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="bad geometry"):
        RangeFile(Source(b""), 0, **geometry)


def test_source_errors_pass_through() -> None:
    def failing(start: int, length: int) -> bytes:
        raise ConnectionResetError("gone")

    with pytest.raises(ConnectionResetError):
        RangeFile(failing, 100).read(10)


def test_7z_header_of_many_members_parses_in_a_few_requests(tmp_path: Path) -> None:
    """The point of the cache: py7zr's many small reads of a header become two or three requests."""
    staging = tmp_path / "s"
    names = []
    for i in range(400):
        name = f"Aa/Bb/MD5E-s8--{i:032x}.x/MD5E-s8--{i:032x}.x"
        (staging / name).parent.mkdir(parents=True, exist_ok=True)
        (staging / name).write_bytes(os.urandom(8) * 100)
        names.append(name)
    archive = tmp_path / "archive.7z"
    with py7zr.SevenZipFile(archive, "w", filters=[{"id": py7zr.FILTER_COPY}]) as z:
        for name in names:
            z.write(staging / name, name)
    data = archive.read_bytes()
    src = Source(data)
    idx = load_index(ArchiveSource("mem:archive.7z", len(data), "r1", src))
    assert set(idx.members) == set(names)
    assert len(src.calls) <= 3, src.calls
    assert sum(length for _, length in src.calls) < len(data) // 2 + 2 * BLOCK
