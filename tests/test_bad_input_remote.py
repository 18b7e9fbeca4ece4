"""Bad input at the remote: each case gets a one-line error naming cause and fix, and changes nothing."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
from pathlib import Path

import pytest
from annex_double import AnnexDouble
from conftest import PLAIN_DSID, require_tool, run

from ria_store import atomic
from ria_store.layout import archive_members, object_relpath

DSID = PLAIN_DSID  # the id of the `dsdir` fixture
DATA = b"precious research data\n" * 1000
KEY = f"MD5E-s{len(DATA)}--{hashlib.md5(DATA).hexdigest()}.txt"


def tree(root: Path) -> list[str]:
    """Every path under root (files, dirs, links), to show a failed request changed nothing."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.fixture
def payload(tmp_path: Path) -> Path:
    p = tmp_path / "payload.txt"
    p.write_bytes(DATA)
    return p


def only_line(replies: list[str], prefix: str) -> str:
    (line,) = [r for r in replies if r.startswith(prefix)]
    assert "\n" not in line
    return line


def test_malformed_key_is_refused_and_nothing_written(annex: AnnexDouble, store: Path, payload: Path) -> None:
    before = tree(store)
    for key in ("../../etc/passwd", "MD5E-s12", "MD5E-s1-s2--x"):
        replies = annex.converse(["PREPARE", f"TRANSFER STORE {key} {payload}", f"CHECKPRESENT {key}"])
        assert f"malformed key {key!r}" in only_line(replies, "TRANSFER-FAILURE")
        unknown = only_line(replies, "CHECKPRESENT-UNKNOWN")
        assert unknown.startswith(f"CHECKPRESENT-UNKNOWN {key} malformed key")
    assert tree(store) == before


def test_object_path_escaping_through_a_symlink_is_refused(annex: AnnexDouble, dsdir: Path,
                                                           payload: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.rmtree(dsdir / "annex" / "objects")
    (dsdir / "annex" / "objects").symlink_to(outside)
    replies = annex.converse(["PREPARE", f"TRANSFER STORE {KEY} {payload}"])
    line = only_line(replies, "TRANSFER-FAILURE")
    assert "outside" in line and "symlink" in line and "remove it" in line
    assert list(outside.iterdir()) == []


def test_archive_id_that_escapes_the_store_is_refused(store: Path, payload: Path) -> None:
    before = tree(store)
    annex = AnnexDouble({"url": f"ria+file://{store}", "archive-id": "../../../tmp/x"})
    line = only_line(annex.converse(["PREPARE"]), "PREPARE-FAILURE")
    assert "invalid dataset id '../../../tmp/x'" in line
    assert tree(store) == before


def test_store_missing_checkpresent_is_unknown_not_absent(tmp_path: Path) -> None:
    annex = AnnexDouble({"url": f"ria+file://{tmp_path}/nowhere", "archive-id": DSID})
    line = only_line(annex.converse(["PREPARE", f"CHECKPRESENT {KEY}"]), "CHECKPRESENT-UNKNOWN")
    assert f"store {tmp_path}/nowhere not found" in line and "mounted" in line


def test_dataset_dir_missing_checkpresent_is_unknown(annex: AnnexDouble, dsdir: Path, payload: Path) -> None:
    shutil.rmtree(dsdir)
    replies = annex.converse(["PREPARE", f"CHECKPRESENT {KEY}", f"TRANSFER STORE {KEY} {payload}"])
    assert f"dataset {DSID} not found in store" in only_line(replies, "CHECKPRESENT-UNKNOWN")
    assert "dss create-sibling" in only_line(replies, "TRANSFER-FAILURE")
    assert not dsdir.exists()


def test_store_unmounted_during_run_is_unknown(annex: AnnexDouble, store: Path, dsdir: Path,
                                              payload: Path) -> None:
    # the first requests succeed and cache the layout; then, in the same process, the file
    # system goes away: an absent answer now would be a lie
    other = "MD5E-s1--0cc175b9c0f1b6a831c399e269772661"
    replies = annex.converse(["PREPARE", f"TRANSFER STORE {KEY} {payload}", f"CHECKPRESENT {other}",
                              lambda: shutil.rmtree(store),
                              f"CHECKPRESENT {KEY}", f"CHECKPRESENT {other}"])
    assert replies[2] == f"CHECKPRESENT-FAILURE {other}"
    assert replies[3].startswith(f"CHECKPRESENT-UNKNOWN {KEY} store {store} not found")
    assert replies[4].startswith(f"CHECKPRESENT-UNKNOWN {other} store {store} not found")


@pytest.mark.parametrize("where", ["store", "dataset"])
def test_unknown_layout_version_refuses_to_guess(annex: AnnexDouble, store: Path, dsdir: Path,
                                                 payload: Path, where: str) -> None:
    (store if where == "store" else dsdir).joinpath("ria-layout-version").write_text("7\n")
    before = tree(store)
    replies = annex.converse(["PREPARE", f"CHECKPRESENT {KEY}", f"TRANSFER STORE {KEY} {payload}"])
    for line in (only_line(replies, "CHECKPRESENT-UNKNOWN"), only_line(replies, "TRANSFER-FAILURE")):
        assert "ria-layout-version '7'" in line and "upgrade dss-remote" in line
    assert tree(store) == before


@pytest.mark.parametrize("where", ["store", "dataset"])
def test_missing_layout_version_file(annex: AnnexDouble, store: Path, dsdir: Path, where: str) -> None:
    (store if where == "store" else dsdir).joinpath("ria-layout-version").unlink()
    line = only_line(annex.converse(["PREPARE", f"CHECKPRESENT {KEY}"]), "CHECKPRESENT-UNKNOWN")
    assert "has no ria-layout-version file" in line
    assert ("dss init" if where == "store" else "dss create-sibling") in line


@pytest.mark.parametrize(("url", "expect"), [
    ("ria+ftp://host/store", "unsupported scheme 'ria+ftp'"),
    ("ria+file:///store#0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", "has a fragment"),
    ("file:///store", "not a RIA store URL"),
])
def test_bad_store_url_fails_prepare_and_initremote(url: str, expect: str) -> None:
    annex = AnnexDouble({"url": url, "archive-id": DSID})
    replies = annex.converse(["INITREMOTE", "PREPARE"])
    assert expect in only_line(replies, "INITREMOTE-FAILURE")
    assert expect in only_line(replies, "PREPARE-FAILURE")


def test_broken_store_config_json_fails_prepare(annex: AnnexDouble, store: Path) -> None:
    (store / "dss" / "config.json").write_text('{"version": 1, "mirrors": [')
    line = only_line(annex.converse(["PREPARE"]), "PREPARE-FAILURE")
    assert "dss/config.json is not valid JSON" in line and "fix the file" in line


@pytest.mark.parametrize("size", ["small", "large"])
def test_disk_full_during_store_leaves_no_partial_object(
        annex: AnnexDouble, dsdir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        size: str) -> None:
    # small objects are one pread/write, large ones go through copy_file_range: fail each mid-way
    data = DATA if size == "small" else os.urandom(3 << 20)
    key = f"MD5E-s{len(data)}--{'ef' * 16}.bin"
    payload = tmp_path / "payload.bin"
    payload.write_bytes(data)
    if size == "small":
        def full(fd: int, chunk: bytes | bytearray | memoryview) -> None:
            os.write(fd, bytes(chunk)[:100])
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(atomic, "write_all", full)
    else:
        real = os.copy_file_range

        def fill_then_fail(src: int, dst: int, count: int, offset_src: int | None = None) -> int:
            if os.fstat(dst).st_size > 0:
                raise OSError(errno.ENOSPC, "No space left on device")
            return real(src, dst, min(count, 4096), offset_src)

        monkeypatch.setattr(atomic.os, "copy_file_range", fill_then_fail)
    replies = annex.converse(["PREPARE", f"TRANSFER STORE {key} {payload}", f"CHECKPRESENT {key}"])
    line = only_line(replies, "TRANSFER-FAILURE")
    assert "no space left" in line and "free space" in line
    assert replies[-1] == f"CHECKPRESENT-FAILURE {key}"
    assert [p for p in (dsdir / "annex").rglob("*") if p.is_file()] == []


def test_read_only_store_write_fails_cleanly(annex: AnnexDouble, store: Path, payload: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(parent: Path) -> tuple[int, str]:
        raise OSError(errno.EROFS, "Read-only file system", str(parent))

    monkeypatch.setattr(atomic, "_mkstemp", refuse)
    before = tree(store)
    line = only_line(annex.converse(["PREPARE", f"TRANSFER STORE {KEY} {payload}"]), "TRANSFER-FAILURE")
    assert "read-only" in line and "write access" in line
    # the key's directories may be created before the temp file is refused; no file appears
    assert [p for p in store.rglob("*") if p.is_file() and str(p.relative_to(store)) not in before] == []


def _archive_with(dsdir: Path, key: str, data: bytes, tmp_path: Path) -> Path:
    sevenzip = require_tool("7z")
    stage = tmp_path / "stage"
    member = stage / archive_members(key)[0]
    member.parent.mkdir(parents=True)
    member.write_bytes(data)
    archive = dsdir / "archives" / "archive.7z"
    run(sevenzip, "a", "-mx0", archive, ".", cwd=stage)
    return archive


def test_remove_of_archived_key_fails_and_keeps_everything(annex: AnnexDouble, dsdir: Path,
                                                           payload: Path, tmp_path: Path) -> None:
    _archive_with(dsdir, KEY, DATA, tmp_path)
    annex.converse(["PREPARE", f"TRANSFER STORE {KEY} {payload}"])
    before = tree(dsdir)
    replies = annex.converse(["PREPARE", f"REMOVE {KEY}", f"CHECKPRESENT {KEY}"])
    line = only_line(replies, "REMOVE-FAILURE")
    assert "also packed in" in line and "archive.7z" in line and "nothing was removed" in line
    assert replies[-1] == f"CHECKPRESENT-SUCCESS {KEY}"
    assert tree(dsdir) == before


@pytest.mark.parametrize("damage", ["truncated", "corrupt"])
def test_damaged_archive_is_reported_not_read(annex: AnnexDouble, dsdir: Path, tmp_path: Path,
                                              damage: str) -> None:
    archive = _archive_with(dsdir, KEY, DATA, tmp_path)
    raw = bytearray(archive.read_bytes())
    if damage == "truncated":
        archive.write_bytes(bytes(raw[: len(raw) // 2]))
    else:
        raw[-10] ^= 0xFF  # inside the end header, whose CRC then fails
        archive.write_bytes(bytes(raw))
    dst = tmp_path / "dst"
    replies = annex.converse(["PREPARE", f"CHECKPRESENT {KEY}", f"TRANSFER RETRIEVE {KEY} {dst}",
                              f"REMOVE {KEY}"])
    for prefix in ("CHECKPRESENT-UNKNOWN", "TRANSFER-FAILURE", "REMOVE-FAILURE"):
        line = only_line(replies, prefix)
        assert "is corrupt or truncated" in line and "restore the archive" in line
    assert archive.exists()


def test_corrupt_archive_member_fails_crc(annex: AnnexDouble, dsdir: Path, tmp_path: Path) -> None:
    archive = _archive_with(dsdir, KEY, DATA, tmp_path)
    raw = bytearray(archive.read_bytes())
    raw[raw.index(DATA[:64]) + 100] ^= 0x01  # one bit in the stored member's bytes
    archive.write_bytes(bytes(raw))
    line = only_line(annex.converse(["PREPARE", f"TRANSFER RETRIEVE {KEY} {tmp_path / 'dst'}"]),
                     "TRANSFER-FAILURE")
    assert "CRC32" in line and "corrupt archive" in line


def test_key_only_in_archive_is_present_and_retrievable(annex: AnnexDouble, dsdir: Path,
                                                        tmp_path: Path) -> None:
    _archive_with(dsdir, KEY, DATA, tmp_path)
    dst = tmp_path / "dst"
    replies = annex.converse(["PREPARE", f"CHECKPRESENT {KEY}", f"TRANSFER RETRIEVE {KEY} {dst}",
                              f"WHEREIS {KEY}"])
    assert replies[1:3] == [f"CHECKPRESENT-SUCCESS {KEY}", f"TRANSFER-SUCCESS RETRIEVE {KEY}"]
    assert dst.read_bytes() == DATA
    assert replies[3] == f"WHEREIS-SUCCESS {dsdir}/archives/archive.7z:{archive_members(KEY)[0]}"
    assert not (dsdir / object_relpath(KEY, "2")).exists()
