"""End to end: real git-annex/DataLad, a POSIX store mirrored to S3 (moto_server) and GCS (emulator)."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cloud_servers import AuthS3Server, Keys, LoopbackServer, MirrorFixture
from conftest import SAMPLE, annex_keys, require_tool, run, write_files
from leftover_processes import wait_for_detached

from dss_remote.admin.sibling import Sibling, create_sibling
from dss_remote.admin.store import add_mirror
from dss_remote.backends.base import Backend
from dss_remote.config.mirrors import Mirror
from dss_remote.config.store_config import read_config
from dss_remote.replication.store_replicas import mirror_backend, open_replicas
from ria_store.layout import dataset_relpath, object_relpath


@dataclass
class CloudStore:
    store: Path
    ds: Path
    sib: Sibling
    s3: MirrorFixture
    gcs: MirrorFixture

    def backend(self, name: str) -> Backend:
        return dict(open_replicas(f"ria+file://{self.store}", read_config(self.store)).backends)[name]

    def rel(self, key: str) -> str:
        return f"{dataset_relpath(self.sib.dataset_id)}/{object_relpath(key, '2')}"

    def drop_store_objects(self) -> None:
        shutil.rmtree(self.store / dataset_relpath(self.sib.dataset_id) / "annex" / "objects")


@pytest.fixture
def cloud(store: Path, dataset: Path, s3_mirror: MirrorFixture,
          gcs_mirror: MirrorFixture) -> Iterator[CloudStore]:
    """`dataset` pushed through the dss remote to a store mirrored to S3 and GCS."""
    require_tool("git-annex-remote-dss")
    add_mirror(store, Mirror(url=s3_mirror.url, name="s3", endpoint_url=s3_mirror.endpoint_url))
    add_mirror(store, Mirror(url=gcs_mirror.url, name="gcs", endpoint_url=gcs_mirror.endpoint_url))
    sib = create_sibling(dataset, "store", f"ria+file://{store}", alias="sample")
    run("datalad", "-l", "error", "push", "--to", "store", cwd=dataset)
    yield CloudStore(store, dataset, sib, s3_mirror, gcs_mirror)


def dss(*args: str | Path, check: bool = True) -> tuple[int, str, str]:
    res = run("dss", *args, check=check)
    return res.returncode, res.stdout, res.stderr


def drop_local(ds: Path) -> None:
    run("git", "annex", "drop", "--force", ".", cwd=ds)


def assert_content(ds: Path) -> None:
    for rel, data in SAMPLE.items():
        assert (ds / rel).read_bytes() == data


def test_copy_puts_every_key_on_all_three_replicas(cloud: CloudStore) -> None:
    for key in annex_keys(cloud.ds).values():
        rel = cloud.rel(key)
        assert (cloud.store / rel).is_file()
        for name in ("s3", "gcs"):
            info = cloud.backend(name).info(rel)
            assert info is not None, f"{key} missing on {name}"
            assert info.recorded and all(info.checksums[k] == v for k, v in info.recorded.items()
                                         if k in info.checksums)
    code, out, _ = dss("fsck", cloud.store, "--json")
    assert code == 0 and json.loads(out)["findings"] == []


def test_get_from_s3_after_the_posix_copy_is_gone(cloud: CloudStore) -> None:
    drop_local(cloud.ds)
    cloud.drop_store_objects()
    run("git", "annex", "get", ".", cwd=cloud.ds)
    assert_content(cloud.ds)


def test_get_from_gcs_when_s3_is_down_and_the_store_lost_its_objects(cloud: CloudStore) -> None:
    drop_local(cloud.ds)
    cloud.drop_store_objects()
    assert cloud.s3.proxy is not None
    cloud.s3.proxy.down()
    try:
        run("git", "annex", "get", ".", cwd=cloud.ds)
        assert_content(cloud.ds)
    finally:
        cloud.s3.proxy.up()


def test_all_replicas_failing_names_each(cloud: CloudStore) -> None:
    drop_local(cloud.ds)
    cloud.drop_store_objects()
    assert cloud.s3.proxy is not None and cloud.gcs.proxy is not None
    cloud.s3.proxy.down()
    cloud.gcs.proxy.down()
    try:
        res = run("git", "annex", "get", "small.txt", cwd=cloud.ds, check=False)
    finally:
        cloud.s3.proxy.up()
        cloud.gcs.proxy.up()
    assert res.returncode != 0
    err = res.stdout + res.stderr
    assert "[store]" in err and "[s3]" in err and "[gcs]" in err


def test_node_without_the_posix_store_reads_the_buckets(cloud: CloudStore, tmp_path: Path) -> None:
    drop_local(cloud.ds)
    run("git", "annex", "get", "small.txt", cwd=cloud.ds)  # caches the store's config in the clone
    drop_local(cloud.ds)
    wait_for_detached()  # the push's `dss sync --git-only` would make store/dss/logs/ anew
    os.rename(cloud.store, tmp_path / "unmounted")
    try:
        run("git", "annex", "get", ".", cwd=cloud.ds)
        assert_content(cloud.ds)
    finally:
        os.rename(tmp_path / "unmounted", cloud.store)


def _corrupt_s3(cloud: CloudStore, key: str) -> None:
    """Flip one byte of the S3 copy in place, keeping its size and metadata (as bit rot would)."""
    import boto3

    bucket, _, prefix = cloud.s3.url[len("s3://"):].partition("/")
    s3 = boto3.client("s3", endpoint_url=cloud.s3.endpoint_url, region_name="us-east-1")
    name = f"{prefix}/{cloud.rel(key)}" if prefix else cloud.rel(key)
    head = s3.head_object(Bucket=bucket, Key=name)
    body = s3.get_object(Bucket=bucket, Key=name)["Body"].read()
    s3.put_object(Bucket=bucket, Key=name, Body=bytes([body[0] ^ 1]) + body[1:],
                  Metadata=head["Metadata"])


def test_corrupt_s3_copy_fsck_finds_it_read_skips_it_repair_fixes_it(cloud: CloudStore) -> None:
    key = annex_keys(cloud.ds)["dir/data.bin"]
    _corrupt_s3(cloud, key)
    code, out, _ = dss("fsck", cloud.store, "--json", check=False)
    findings = json.loads(out)["findings"]
    assert code == 1
    assert [(f["kind"], f["replica"], f["key"]) for f in findings] == [("corrupt", "s3", key)]
    # the read skips the corrupt S3 copy and takes the GCS one
    drop_local(cloud.ds)
    cloud.drop_store_objects()
    run("git", "annex", "get", "dir/data.bin", cwd=cloud.ds)
    assert (cloud.ds / "dir/data.bin").read_bytes() == SAMPLE["dir/data.bin"]
    # repair copies a verified copy back to the store and to S3
    dss("repair", cloud.store)
    code, out, _ = dss("fsck", cloud.store, "--json", "--deep")
    assert code == 0 and json.loads(out)["findings"] == []


def _add_file(cloud: CloudStore, name: str, data: bytes) -> str:
    write_files(cloud.ds, {name: data})
    run("datalad", "-l", "error", "save", "-m", name, cwd=cloud.ds)
    return annex_keys(cloud.ds)[name]


def test_mirror_down_with_quorum_all_fails_cleanly(cloud: CloudStore) -> None:
    key = _add_file(cloud, "new.bin", os.urandom(300_000))
    assert cloud.s3.proxy is not None
    cloud.s3.proxy.down()
    try:
        res = run("git", "annex", "copy", "--to", "store-storage", "new.bin", cwd=cloud.ds, check=False)
    finally:
        cloud.s3.proxy.up()
    assert res.returncode != 0
    err = res.stdout + res.stderr
    assert "[s3]" in err and "write_quorum needs 3" in err
    where = run("git", "annex", "whereis", "--json", "new.bin", cwd=cloud.ds).stdout
    assert "store-storage" not in where, "git-annex must not think the store has it"
    assert cloud.backend("s3").info(cloud.rel(key)) is None
    assert not list(cloud.store.glob("**/.dss-tmp-*")), "nothing partial in the store"


def test_mirror_down_with_quorum_one_succeeds_queues_and_sync_repairs(cloud: CloudStore) -> None:
    dss("mirror", "quorum", cloud.store, "1")
    data = os.urandom(300_000)
    key = _add_file(cloud, "new.bin", data)
    assert cloud.s3.proxy is not None
    cloud.s3.proxy.down()
    try:
        run("git", "annex", "copy", "--to", "store-storage", "new.bin", cwd=cloud.ds)
        queue = cloud.store / "dss" / "repair-queue" / "s3"
        assert [p.name for p in queue.glob("*/*")] == [key]
    finally:
        cloud.s3.proxy.up()
    code, _, err = dss("sync", cloud.store)
    assert code == 0, err
    info = cloud.backend("s3").info(cloud.rel(key))
    assert info is not None and info.size == len(data)
    assert not list((cloud.store / "dss" / "repair-queue").glob("**/*.*")), "queue drained"
    code, out, _ = dss("fsck", cloud.store, "--json")
    assert code == 0, out


@pytest.mark.slow(20)
def test_copy_asks_a_mirror_once_per_new_key_and_writes_it_once(cloud: CloudStore,
                                                                 s3_server: LoopbackServer) -> None:
    """Requests are what a bucket costs: `git annex copy --to` of new keys makes one HEAD (in
    STORE: is it there already?) and one PUT per key on S3, counted in moto_server's own log;
    CHECKPRESENT asks no mirror, since the POSIX store lacks the key."""
    files = {f"many/f{i:02d}.bin": os.urandom(200 + i) for i in range(12)}
    write_files(cloud.ds, files)
    run("datalad", "-l", "error", "save", "-m", "more", cwd=cloud.ds)
    before = len(s3_server.requests_seen(cloud.s3.bucket))
    run("git", "annex", "copy", "--to", "store-storage", "many", cwd=cloud.ds)
    seen = s3_server.requests_seen(cloud.s3.bucket)[before:]
    objects = [r for r in seen if "/annex/objects/" in r]
    assert sorted({r.split()[0] for r in objects}) == ["HEAD", "PUT"], seen
    assert sum(r.startswith("PUT ") for r in objects) == len(files)
    assert sum(r.startswith("HEAD ") for r in objects) == len(files)
    # (the other requests in `seen` are the push's hook syncing the git side in the background)
    # again (without --fast git-annex asks the remote): one HEAD per key, nothing written
    before = len(s3_server.requests_seen(cloud.s3.bucket))
    run("git", "annex", "copy", "--to", "store-storage", "many", cwd=cloud.ds)
    again = [r for r in s3_server.requests_seen(cloud.s3.bucket)[before:] if "/annex/objects/" in r]
    assert [r.split()[0] for r in again] == ["HEAD"] * len(files), again


def test_testremote_with_s3_and_gcs_mirrors(cloud: CloudStore) -> None:
    res = run("git", "annex", "testremote", "--fast", "store-storage", cwd=cloud.ds, timeout=900)
    assert "All" in res.stdout + res.stderr and "tests passed" in res.stdout + res.stderr


@pytest.mark.long
def test_full_testremote_with_s3_and_gcs_mirrors(cloud: CloudStore) -> None:
    """The whole of `git annex testremote` (chunked and encrypted variants included) with both
    mirrors. Its chunk tests cut each test key into ~1000 chunks whatever --size is, which makes
    well over 100,000 requests to moto_server and the GCS emulator: an hour or more on two cores,
    so CI runs the --fast variant above and this one is run by hand (README, "Run the tests";
    the last run's time is in docs/design-notes.md)."""
    res = run("git", "annex", "testremote", "store-storage", cwd=cloud.ds, timeout=4 * 3600)
    out = res.stdout + res.stderr
    assert "All" in out and "tests passed" in out, out[-3000:]


def test_mirror_backend_is_used_for_both_kinds(cloud: CloudStore) -> None:
    cfg = read_config(cloud.store)
    kinds = sorted(mirror_backend(m).kind for m in cfg.mirrors)
    assert kinds == ["gcs", "s3"]


def test_wrong_credentials_and_read_only_keys_through_git_annex(
        store: Path, dataset: Path, s3_auth_server: AuthS3Server, s3_env: dict[str, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials come from the environment (boto3's chain): wrong ones and read-only ones each get
    a one-line error naming the replica and the fix, and nothing reaches the bucket."""
    url = f"s3://{s3_auth_server.bucket}/{uuid.uuid4().hex}"

    def use(keys: Keys) -> None:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", keys.access_key_id)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", keys.secret_access_key)

    use(s3_auth_server.admin)
    add_mirror(store, Mirror(url=url, name="s3", endpoint_url=s3_auth_server.endpoint))
    sib = create_sibling(dataset, "store", f"ria+file://{store}")
    ds_rel = dataset_relpath(sib.dataset_id)
    run("git", "annex", "copy", "--to", "store-storage", "small.txt", cwd=dataset)  # admin may write
    for keys, expected in ((Keys("AKIAINVALIDINVALID00", "bogus"), "credentials rejected"),
                           (s3_auth_server.reader, "access denied on write")):
        use(keys)
        res = run("git", "annex", "copy", "--to", "store-storage", "dir/data.bin", cwd=dataset,
                  check=False)
        out = res.stdout + res.stderr
        line = next((ln for ln in out.splitlines() if "[s3]" in ln), out)
        assert res.returncode != 0 and expected in line and f"replica {url}" in line
        assert "AWS_" in line or "s3:PutObject" in line, line
    backend = dict(open_replicas(f"ria+file://{store}", read_config(store)).backends)["s3"]
    use(s3_auth_server.admin)
    assert [o.relpath for o in backend.iter_objects(ds_rel) if "data.bin" in o.relpath] == []
    # the read-only keys still read
    use(s3_auth_server.reader)
    run("git", "annex", "drop", "--force", "small.txt", cwd=dataset)
    shutil.rmtree(store / ds_rel / "annex" / "objects")
    run("git", "annex", "get", "small.txt", cwd=dataset)
    assert (dataset / "small.txt").read_bytes() == SAMPLE["small.txt"]
