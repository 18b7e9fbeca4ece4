"""Checksums computed in one pass: CRC32 combination, S3's composite CRC32, Digests by parts."""

from __future__ import annotations

import base64
import io
import os
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dss_remote.backends.checksums import Digests, crc32_combine, crc32_composite

MiB = 1 << 20


@given(st.binary(max_size=3000), st.binary(max_size=3000))
def test_crc32_combine_equals_crc32_of_the_concatenation(a: bytes, b: bytes) -> None:
    assert crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b)) == zlib.crc32(a + b)


@pytest.mark.parametrize("len_b", [1, 4095, 5 * MiB + 3], ids=["1", "4095", "5MiB+3"])
def test_crc32_combine_with_long_second_parts(len_b: int) -> None:
    a, b = os.urandom(17), os.urandom(len_b)
    assert crc32_combine(zlib.crc32(a), zlib.crc32(b), len_b) == zlib.crc32(a + b)


def test_crc32_composite_matches_what_moto_reported() -> None:
    """A golden vector: 11 MiB of 0x00..0xff repeated, uploaded by boto3 in 5 MiB parts with its
    default CRC32; moto 5.2.5 answered GetObject(ChecksumMode=ENABLED) with this value."""
    data = bytes(range(256)) * (11 * MiB // 256)
    parts = [zlib.crc32(data[i:i + 5 * MiB]) for i in range(0, len(data), 5 * MiB)]
    got = crc32_composite(parts)
    digest, _, count = got.partition("-")
    assert f"{base64.b64encode(bytes.fromhex(digest)).decode()}-{count}" == "AUoJqA==-3"


def test_crc32_composite_of_one_part_is_the_crc_of_its_crc() -> None:
    crc = zlib.crc32(b"one part")
    assert crc32_composite([crc]) == f"{zlib.crc32(crc.to_bytes(4, 'big')):08x}-1"


@pytest.mark.parametrize(("size", "part_size"), [(1, 5), (10, 5), (11, 5), (4, 5), (3 * MiB + 1, MiB)],
                         ids=["one-byte", "exact", "short-last", "under-one-part", "3MiB+1"])
def test_digests_by_parts_give_the_whole_crc32_and_the_composite(size: int, part_size: int) -> None:
    data = os.urandom(size)
    sums = Digests(["crc32", "md5"], part_size=part_size).read_from(io.BytesIO(data)).hexdigests()
    parts = [zlib.crc32(data[i:i + part_size]) for i in range(0, size, part_size)]
    assert sums["crc32"] == f"{zlib.crc32(data):08x}"
    assert sums["crc32-composite"] == crc32_composite(parts)
    assert sums["md5"] == Digests(["md5"]).read_from(io.BytesIO(data)).hexdigests()["md5"]


@given(st.binary(max_size=200), st.lists(st.integers(min_value=0, max_value=60), max_size=8),
       st.integers(min_value=1, max_value=40))
def test_digests_by_parts_do_not_depend_on_how_the_data_is_fed(data: bytes, cuts: list[int],
                                                                part_size: int) -> None:
    """Updates of any length, across part boundaries or not, give what one update gives."""
    fed = Digests(["crc32"], part_size=part_size)
    pos = 0
    for cut in sorted(cuts):
        fed.update(data[pos:max(pos, cut)])
        pos = max(pos, cut)
    fed.update(data[pos:])
    whole = Digests(["crc32"], part_size=part_size)
    whole.update(data)
    assert fed.hexdigests() == whole.hexdigests()
    assert fed.hexdigests()["crc32"] == f"{zlib.crc32(data):08x}"


def test_digests_of_nothing_by_parts_have_no_composite() -> None:
    assert Digests(["crc32"], part_size=5).hexdigests() == {"crc32": "00000000"}


def test_digests_refuse_a_part_size_below_one() -> None:
    with pytest.raises(ValueError, match="part size must be positive"):
        Digests(["crc32"], part_size=0)
