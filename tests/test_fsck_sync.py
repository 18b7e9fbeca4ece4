"""`dss fsck`, `dss repair` and `dss sync` on a store with file:// mirrors, and fsck of an S3 mirror
from the service's checksums (through git-annex and both clouds: test_e2e_mirrors)."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import pty
import select
import struct
import subprocess
import termios
import time
import zlib
from pathlib import Path
from typing import Any

import pytest
from boto3.s3.transfer import TransferConfig
from cloud_servers import MirrorFixture, s3_admin_client
from conftest import PLAIN_DSID, require_tool, run

from dss_remote.admin.store import add_mirror
from dss_remote.backends import s3
from dss_remote.backends.checksums import hex_to_b64
from dss_remote.cli import main
from dss_remote.config.mirrors import Mirror
from dss_remote.config.store_config import read_config
from dss_remote.replication.store_replicas import open_replicas
from ria_store.keys import parse_key
from ria_store.layout import dataset_relpath, object_relpath

DS = dataset_relpath(PLAIN_DSID)


def _key(data: bytes) -> str:
    return f"MD5E-s{len(data)}--{hashlib.md5(data).hexdigest()}.bin"


BLOBS = [os.urandom(n) for n in (10, 5000, 70_000)]
KEYS = [_key(b) for b in BLOBS]


def rel(key: str) -> str:
    return f"{DS}/{object_relpath(key, '2')}"


@pytest.fixture
def mirrored(store: Path, dsdir: Path, tmp_path: Path) -> Path:
    """A store with one file:// mirror, holding three keys on both."""
    mirror = tmp_path / "mirror"
    add_mirror(store, Mirror(url=f"file://{mirror}", name="backup"))
    rs = open_replicas(f"ria+file://{store}", read_config(store)).for_dataset(PLAIN_DSID)
    for data, key in zip(BLOBS, KEYS, strict=True):
        src = tmp_path / "src"
        src.write_bytes(data)
        rs.store(parse_key(key), src)
    return mirror


def fsck_json(store: Path, *extra: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict]:  # type: ignore[type-arg]
    rc = main(["fsck", str(store), "--json", *extra])
    return rc, json.loads(capsys.readouterr().out)


def test_fsck_clean_store_exits_0(store: Path, mirrored: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, doc = fsck_json(store, capsys=capsys)
    assert rc == 0 and doc["findings"] == [] and doc["replicas"] == ["store", "backup"]


def test_fsck_reports_missing_extra_and_corrupt(store: Path, mirrored: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    (mirrored / rel(KEYS[0])).unlink()
    stray = store / DS / "annex" / "objects" / "zz" / "yy" / "junk" / "junk"
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"?")
    bad = store / rel(KEYS[1])
    bad.chmod(0o644)
    bad.write_bytes(bytes([BLOBS[1][0] ^ 1]) + BLOBS[1][1:])  # same size: only --deep sees it
    rc, doc = fsck_json(store, capsys=capsys)
    kinds = sorted((f["kind"], f["replica"], f["key"]) for f in doc["findings"])
    assert rc == 1
    # the unlink left the key's directory empty: a fresh leftover, maybe a write in progress
    assert kinds == [("extra", "store", None), ("in-progress", "backup", None),
                     ("missing", "backup", KEYS[0])]
    rc, doc = fsck_json(store, "--deep", capsys=capsys)
    kinds = sorted((f["kind"], f["replica"], f["key"]) for f in doc["findings"])
    assert ("corrupt", "store", KEYS[1]) in kinds


def test_repair_fixes_missing_and_corrupt_and_leaves_extra(store: Path, mirrored: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    (mirrored / rel(KEYS[0])).unlink()
    bad = store / rel(KEYS[1])
    bad.chmod(0o644)
    bad.write_bytes(bytes([BLOBS[1][0] ^ 1]) + BLOBS[1][1:])
    assert main(["repair", str(store), "--deep"]) == 0
    out = capsys.readouterr().out
    assert f"backup: {KEYS[0]} (missing) copied from store" in out
    assert f"store: {KEYS[1]} (corrupt) copied from backup" in out
    assert (mirrored / rel(KEYS[0])).read_bytes() == BLOBS[0]
    assert bad.read_bytes() == BLOBS[1]
    assert fsck_json(store, "--deep", capsys=capsys)[1]["findings"] == []


def test_sync_copies_missing_keys_and_the_bare_repo_files(store: Path, mirrored: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    (mirrored / rel(KEYS[2])).unlink()
    (store / DS / "HEAD").write_text("ref: refs/heads/main\n")
    (store / DS / "hooks").mkdir()
    (store / DS / "hooks" / "post-update").write_text("#!/bin/sh\n")
    (store / DS / "config").write_text('[core]\n\tbare = true\n[remote "x"]\n\turl = https://user:pw@h/\n'
                                       '[datalad "ora-remote"]\n\tuuid = u-1\n')
    assert main(["sync", str(store)]) == 0
    assert (mirrored / rel(KEYS[2])).read_bytes() == BLOBS[2]
    assert (mirrored / DS / "HEAD").read_text() == "ref: refs/heads/main\n"
    assert not (mirrored / DS / "hooks").exists(), "hooks never leave the store"
    assert (mirrored / DS / "config").read_text() == (
        '[core]\n\tbare = true\n[datalad "ora-remote"]\n\tuuid = u-1\n'), "only what a clone needs"
    capsys.readouterr()
    assert main(["sync", str(store)]) == 0
    assert capsys.readouterr().out == "", "a second run has nothing to do"


def _stderr_on_a_tty(*cmd: str, timeout: float = 120) -> tuple[int, str]:
    """Run cmd with stderr on a pseudo-terminal (stdout to /dev/null); its exit code and what the
    terminal showed. The terminal gets a size, as a real one has: tqdm draws nothing in 0 columns."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    deadline = time.monotonic() + timeout
    shown = bytearray()
    with subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=slave, stdin=subprocess.DEVNULL) as proc:
        os.close(slave)
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([master], [], [], left)[0]:
                    proc.kill()
                    pytest.fail(f"{' '.join(cmd)} did not finish in {timeout} s; it showed: {shown!r}")
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child closed its end
                    break
                if not chunk:
                    break
                shown += chunk
        finally:
            os.close(master)
        rc = proc.wait(timeout=max(deadline - time.monotonic(), 1))
    return rc, shown.decode(errors="replace")


def test_sync_shows_a_tqdm_bar_on_a_tty_and_none_in_a_pipe(store: Path, mirrored: Path) -> None:
    dss = require_tool("dss")
    (mirrored / rel(KEYS[0])).unlink()
    rc, shown = _stderr_on_a_tty(dss, "sync", str(store))
    assert rc == 0 and (mirrored / rel(KEYS[0])).read_bytes() == BLOBS[0]
    assert "\rsync: " in shown and " obj/s" in shown, shown  # a tqdm bar, in its unit
    (mirrored / rel(KEYS[1])).unlink()
    res = run(dss, "sync", str(store))
    assert (mirrored / rel(KEYS[1])).read_bytes() == BLOBS[1]
    assert " obj/s" not in res.stderr and "\r" not in res.stderr, res.stderr
    assert "sync: 1 copied" in res.stderr, "the summary line is printed in pipes too"


def test_fsck_unknown_replica_is_an_error(store: Path, mirrored: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fsck", str(store), "--replica", "nope"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("dss: error: no replica named 'nope'") and "backup" in err


def test_mirror_list_add_remove(store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["mirror", "add", str(store), f"file://{tmp_path}/m", "--name", "m"]) == 0
    assert main(["mirror", "list", str(store), "--json"]) == 0
    out = capsys.readouterr().out
    doc = json.loads(out[out.index("{"):])
    assert doc == {"write_quorum": "all", "mirrors": [{"name": "m", "url": f"file://{tmp_path}/m"}]}
    assert main(["mirror", "quorum", str(store), "1"]) == 0
    assert json.loads((store / "dss/config.json").read_text())["write_quorum"] == 1
    assert main(["mirror", "remove", str(store), "m"]) == 0
    assert json.loads((store / "dss/config.json").read_text()) == {"mirrors": [], "version": 1,
                                                                   "write_quorum": 1}


# -- an S3 mirror: fsck compares the service's CRC32 with the one recorded at upload, never downloading

MiB = 1 << 20
#: files from 1 MiB on go multipart, in parts of 5 MiB (s3transfer raises 1 MiB to S3's minimum)
SMALL_PARTS = TransferConfig(multipart_threshold=MiB, multipart_chunksize=MiB,
                             preferred_transfer_client="classic")
#: what another tool re-uploads with: in parts of 5 MiB, whatever the size
IN_PARTS = TransferConfig(multipart_threshold=1, multipart_chunksize=MiB, preferred_transfer_client="classic")
S3_BLOBS = {"single": os.urandom(5000), "one-part": os.urandom(3 * MiB),
            "three-parts": os.urandom(12 * MiB + 7)}


def _sha256_key(data: bytes) -> str:
    """A key whose checksum no S3 service keeps: only the CRC32s can tell a corrupt object."""
    return f"SHA256E-s{len(data)}--{hashlib.sha256(data).hexdigest()}.bin"


@pytest.fixture
def s3_store(store: Path, dsdir: Path, tmp_path: Path, s3_mirror: MirrorFixture,
             monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A store with an S3 mirror holding S3_BLOBS as stored through the replica set: {label: key}.
    S3Backend.get_file fails the test: nothing here may download."""
    monkeypatch.setattr(s3, "TRANSFER", SMALL_PARTS)
    add_mirror(store, Mirror(url=s3_mirror.url, name="s3", endpoint_url=s3_mirror.endpoint_url))
    rs = open_replicas(f"ria+file://{store}", read_config(store)).for_dataset(PLAIN_DSID)
    keys: dict[str, str] = {}
    for label, data in S3_BLOBS.items():
        keys[label] = _sha256_key(data)
        src = tmp_path / "src"
        src.write_bytes(data)
        rs.store(parse_key(keys[label]), src)

    def no_download(*args: Any, **kwargs: Any) -> int:
        raise AssertionError("fsck without --deep downloaded an object")

    monkeypatch.setattr(s3.S3Backend, "get_file", no_download)
    return keys


def _s3_put(s3_mirror: MirrorFixture, key: str, data: bytes, tmp_path: Path, *, how: str,
            metadata: dict[str, str]) -> None:
    """Replace the mirror's copy of `key` with `data`: in parts (COMPOSITE CRC32), in parts with a
    whole-object CRC32 (FULL_OBJECT, as dss uploaded before), or in one PUT."""
    client = s3_admin_client(s3_mirror.endpoint_url)
    name = f"lab/store/{rel(key)}"
    src = tmp_path / "replacement"
    src.write_bytes(data)
    if how == "one-put":
        client.put_object(Bucket=s3_mirror.bucket, Key=name, Body=data, Metadata=metadata)
        return
    extra: dict[str, Any] = {"Metadata": metadata}
    if how == "full-object":
        extra["ChecksumCRC32"] = hex_to_b64(f"{zlib.crc32(data):08x}")
    client.upload_file(str(src), s3_mirror.bucket, name, Config=IN_PARTS, ExtraArgs=extra)


def _metadata(s3_mirror: MirrorFixture, key: str) -> dict[str, str]:
    head = s3_admin_client(s3_mirror.endpoint_url).head_object(Bucket=s3_mirror.bucket,
                                                               Key=f"lab/store/{rel(key)}")
    return dict(head["Metadata"])


def test_fsck_verifies_single_and_multipart_s3_objects_without_downloading(
        store: Path, s3_store: dict[str, str], s3_mirror: MirrorFixture,
        capsys: pytest.CaptureFixture[str]) -> None:
    rc, doc = fsck_json(store, "--replica", "s3", capsys=capsys)
    assert (rc, doc["findings"]) == (0, [])
    assert set(_metadata(s3_mirror, s3_store["three-parts"])) == {s3.META_CRC32, s3.META_CRC32_COMPOSITE}


@pytest.mark.parametrize(("label", "how", "checksum"), [
    ("three-parts", "in-parts", "crc32-composite"),
    ("one-part", "in-parts", "crc32-composite"),
    ("three-parts", "one-put", "crc32"),
    ("single", "one-put", "crc32"),
], ids=["multipart-reuploaded", "one-part-reuploaded", "multipart-replaced-by-a-put", "single-put"])
def test_fsck_finds_a_corrupt_s3_object_without_downloading(
        store: Path, s3_store: dict[str, str], s3_mirror: MirrorFixture, tmp_path: Path,
        capsys: pytest.CaptureFixture[str], *, label: str, how: str, checksum: str) -> None:
    """One byte flipped, same size, dss's metadata kept: the service's CRC32 of the new bytes differs
    from the one recorded from the source."""
    key, data = s3_store[label], S3_BLOBS[label]
    _s3_put(s3_mirror, key, bytes([data[0] ^ 1]) + data[1:], tmp_path, how=how,
            metadata=_metadata(s3_mirror, key))
    rc, doc = fsck_json(store, "--replica", "s3", capsys=capsys)
    assert rc == 1
    assert [(f["kind"], f["replica"], f["key"]) for f in doc["findings"]] == [("corrupt", "s3", key)]
    assert f"the service's {checksum} " in doc["findings"][0]["detail"]


def test_fsck_says_unverified_for_a_put_object_replaced_in_parts(
        store: Path, s3_store: dict[str, str], s3_mirror: MirrorFixture, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A single PUT recorded no composite CRC32, and the service keeps no whole-object one for the
    parts another tool replaced it with: nothing to compare without reading, so --deep decides."""
    key, data = s3_store["single"], S3_BLOBS["single"]
    _s3_put(s3_mirror, key, bytes([data[0] ^ 1]) + data[1:], tmp_path, how="in-parts",
            metadata=_metadata(s3_mirror, key))
    rc, doc = fsck_json(store, "--replica", "s3", capsys=capsys)
    assert rc == 0  # unverified is not a problem found
    assert [(f["kind"], f["key"]) for f in doc["findings"]] == [("unverified", key)]


def test_fsck_still_verifies_s3_objects_uploaded_with_a_full_object_crc32(
        store: Path, s3_store: dict[str, str], s3_mirror: MirrorFixture, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Objects the previous dss wrote (FULL_OBJECT CRC32, only `dss-crc32` recorded) verify, and a
    corrupt one is found, from the whole-object CRC32 alone."""
    key, data = s3_store["three-parts"], S3_BLOBS["three-parts"]
    old_meta = {s3.META_CRC32: f"{zlib.crc32(data):08x}"}
    _s3_put(s3_mirror, key, data, tmp_path, how="full-object", metadata=old_meta)
    rc, doc = fsck_json(store, "--replica", "s3", capsys=capsys)
    assert (rc, doc["findings"]) == (0, [])
    _s3_put(s3_mirror, key, bytes([data[0] ^ 1]) + data[1:], tmp_path, how="full-object", metadata=old_meta)
    rc, doc = fsck_json(store, "--replica", "s3", capsys=capsys)
    assert rc == 1
    assert [(f["kind"], f["key"]) for f in doc["findings"]] == [("corrupt", key)]
    assert "the service's crc32 " in doc["findings"][0]["detail"]
