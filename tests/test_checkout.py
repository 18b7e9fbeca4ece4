"""Checkout below HTTP (service/checkout.py, checkout_dest.py, `dss checkout`): a bundle version to a
directory and to moto buckets, a second checkout that copies nothing, jobs run and resumed by a
detached worker, and each bad destination refused before anything is written."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path

import psutil
import pytest
from api_data import FILES, Pushed, copy_sample
from cloud_servers import AuthS3Server, LoopbackServer, _unique_bucket, s3_admin_client
from conftest import dss

from dss_remote.config import paths
from dss_remote.config.server_settings import ServerSettings
from dss_remote.config.store_config import read_config, write_config
from dss_remote.history import bundle_store, tombstones
from dss_remote.service import checkout as co
from dss_remote.service.checkout_dest import DestinationRefused, DirDestination, parse_destination
from ria_store.errors import NotFoundError


@pytest.fixture(scope="module")
def pushed(tmp_path_factory: pytest.TempPathFactory, sample_template: Pushed) -> Pushed:
    return copy_sample(sample_template, tmp_path_factory.mktemp("checkout"))


def expected_files(p: Pushed, version: str) -> dict[str, bytes]:
    """The bundle's files and their bytes, from the DataLad dataset at that version's commit."""
    import subprocess

    manifest = bundle_store.load(p.store, p.dataset_id, version)
    out = {}
    for row in manifest.files:
        if row["type"] not in co.FILE_TYPES:
            continue
        blob = subprocess.run(["git", "-C", str(p.dataset), "show", f"{manifest.head.commit}:{row['path']}"],
                              capture_output=True, check=True).stdout
        if row["type"] == "git":
            out[row["path"]] = blob
        elif version == p.versions[-1]:
            out[row["path"]] = (p.dataset / row["path"]).read_bytes()
        else:
            out[row["path"]] = FILES[row["path"]]  # the first version is api_data's FILES
    return out


def tree(root: Path) -> dict[str, bytes]:
    return {str(f.relative_to(root)): f.read_bytes() for f in root.rglob("*") if f.is_file()}


def wait_worker_gone(store: Path, job_id: str, timeout: float = 60) -> co.Job:
    """The job once it is no longer RUNNING and its worker process has exited."""
    deadline = time.monotonic() + timeout
    job = co.load_job(store, job_id)
    while job.status == co.RUNNING and time.monotonic() < deadline:
        time.sleep(0.1)
        job = co.load_job(store, job_id)
    assert job.status != co.RUNNING, f"job still running after {timeout} s: {job}"
    if job.pid is not None and psutil.pid_exists(job.pid):
        with pytest.raises(psutil.NoSuchProcess):
            psutil.Process(job.pid).wait(timeout=20)
            raise psutil.NoSuchProcess(job.pid)
    return job


def test_checkout_to_a_directory_copies_every_file_and_a_second_one_nothing(pushed: Pushed,
                                                                            tmp_path: Path) -> None:
    version = pushed.versions[-1]
    dest = DirDestination(str(tmp_path / "out"), [str(tmp_path)])
    first = co.checkout(pushed.store, pushed.dataset_id, version, dest)
    bundle = tmp_path / "out" / "bundles" / f"{pushed.dataset_id}.{version}"
    want = expected_files(pushed, version)
    assert tree(bundle) == want
    assert "link-to-small" not in want and not (bundle / "subds").exists()
    assert (first.files, first.copied, first.present) == (len(want), len(want), 0)
    assert first.bytes_copied == sum(len(b) for b in want.values())
    mtimes = {f: f.stat().st_mtime_ns for f in bundle.rglob("*") if f.is_file()}
    again = co.checkout(pushed.store, pushed.dataset_id, version, dest)
    assert (again.copied, again.present, again.bytes_copied) == (0, len(want), 0)
    assert {f: f.stat().st_mtime_ns for f in bundle.rglob("*") if f.is_file()} == mtimes


def test_a_changed_file_in_the_directory_is_copied_again(pushed: Pushed, tmp_path: Path) -> None:
    version = pushed.versions[-1]
    dest = DirDestination(str(tmp_path), [str(tmp_path)])
    co.checkout(pushed.store, pushed.dataset_id, version, dest)
    damaged = tmp_path / "bundles" / f"{pushed.dataset_id}.{version}" / "small.txt"
    good = damaged.read_bytes()
    damaged.unlink()
    damaged.write_bytes(b"X" * len(good))  # same size, other bytes
    counts = co.checkout(pushed.store, pushed.dataset_id, version, dest)
    assert counts.copied == 1 and damaged.read_bytes() == good


def test_checkout_to_a_moto_bucket_sets_dss_metadata_and_a_second_one_copies_nothing(
        pushed: Pushed, s3_server: LoopbackServer, s3_env: dict[str, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_server.endpoint)
    s3 = s3_admin_client(s3_server.endpoint)
    bucket = _unique_bucket()
    s3.create_bucket(Bucket=bucket)
    version = pushed.versions[-1]
    dest = co.store_destination(pushed.store, f"s3://{bucket}/co")
    dest.check()
    first = co.checkout(pushed.store, pushed.dataset_id, version, dest)
    want = expected_files(pushed, version)
    prefix = f"co/bundles/{pushed.dataset_id}.{version}/"
    for name, data in want.items():
        obj = s3.get_object(Bucket=bucket, Key=prefix + name)
        assert obj["Body"].read() == data, name
        if name == "dir/data.bin":
            assert obj["Metadata"]["hca-dss-sha256"] == hashlib.sha256(data).hexdigest()
    assert first.copied == len(want)
    again = co.checkout(pushed.store, pushed.dataset_id, version, dest)
    assert (again.copied, again.present) == (0, len(want))


def test_a_directory_not_under_the_checkout_dirs_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DestinationRefused) as e:
        parse_destination(str(tmp_path / "elsewhere"), [str(tmp_path / "allowed")])
    assert str(e.value) == (f"destination {tmp_path}/elsewhere is not under this store's checkout "
                            f"directories ({tmp_path}/allowed); check out under one of them, or ask an "
                            "admin to add it to "
                            "server.checkout_dirs in dss/config.json")
    with pytest.raises(DestinationRefused, match="checkout directories \\(none\\)"):
        parse_destination(str(tmp_path), [])
    assert not (tmp_path / "elsewhere").exists()


def test_a_destination_climbing_out_with_dotdot_is_refused(tmp_path: Path) -> None:
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    for text in (f"{allowed}/../outside", f"{allowed}/./x/../../outside"):
        with pytest.raises(DestinationRefused, match=r"without `\.` or `\.\.` components"):
            parse_destination(text, [str(allowed)])
    with pytest.raises(DestinationRefused, match="must not climb"):
        parse_destination("s3://bucket/a/../b", [])
    assert not (tmp_path / "outside").exists()


def test_a_symlink_escaping_the_checkout_dir_is_refused_and_nothing_lands_outside(
        pushed: Pushed, tmp_path: Path) -> None:
    allowed, outside = tmp_path / "allowed", tmp_path / "outside"
    allowed.mkdir()
    outside.mkdir()
    (allowed / "link").symlink_to(outside)
    dest = parse_destination(f"{allowed}/link/co", [str(allowed)])
    with pytest.raises(DestinationRefused) as e:
        dest.check()
    assert str(e.value) == (f"destination {allowed}/link/co: 'link' is a symlink or not a directory "
                            "(a checkout "
                            "never follows symlinks below the checkout directory); name a plain directory")
    # also when the symlink appears after the check: the worker's writes never follow it
    with pytest.raises(co.DssError, match="is a symlink"):
        co.checkout(pushed.store, pushed.dataset_id, pushed.versions[-1], dest)
    assert list(outside.iterdir()) == []


def test_a_bucket_of_the_stores_own_mirror_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DestinationRefused, match="is a bucket of this store's mirror s3://lab/store"):
        parse_destination("s3://lab/other", [], refuse=["s3://lab/store"])


def test_an_unknown_or_deleted_version_is_not_found(pushed: Pushed, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError,
                       match=r"has no version 2001-01-01T000000\.000000Z \(it does not exist\)"):
        co.live_version(pushed.store, pushed.dataset_id, "2001-01-01T000000.000000Z")
    with pytest.raises(NotFoundError, match="no live versions"):
        co.live_version(pushed.store, "00000000-0000-4000-8000-000000000000", None)
    store = tmp_path / "store"
    import shutil

    shutil.copytree(pushed.store, store, symlinks=True)
    tombstones.bury(store, pushed.dataset_id, pushed.versions[0], reason="test", who="tester")
    with pytest.raises(NotFoundError, match="it was deleted"):
        co.live_version(store, pushed.dataset_id, pushed.versions[0])
    assert co.live_version(store, pushed.dataset_id, None) == pushed.versions[-1]


def _allow_dirs(store: Path, *dirs: Path) -> None:
    cfg = read_config(store)
    write_config(store, dataclasses.replace(cfg, server=ServerSettings(checkout_dirs=tuple(map(str, dirs)))))


def test_a_job_is_run_by_its_detached_worker_and_resumed_when_the_worker_is_gone(
        pushed: Pushed, tmp_path: Path) -> None:
    import shutil

    store = tmp_path / "store"
    shutil.copytree(pushed.store, store, symlinks=True)
    out = tmp_path / "out"
    out.mkdir()
    _allow_dirs(store, out)
    dest = co.store_destination(store, str(out))
    job = co.create_job(store, pushed.dataset_id, None, dest, requested_by="tester")
    assert job.status == co.RUNNING and job.version == pushed.versions[-1]
    # no worker was started (as after a crash): a poll finds the lock free and starts one
    assert not co.worker_alive(store, job.job_id)
    assert co.resume_if_orphaned(store, job)
    done = wait_worker_gone(store, job.job_id)
    assert done.status == co.SUCCEEDED and done.cause is None
    assert done.counts.copied == done.counts.files > 0
    assert not co.resume_if_orphaned(store, done)
    doc = done.status_doc()
    assert doc["status"] == "SUCCEEDED" and "cause" not in doc
    assert doc["location"] == f"{out}/bundles/{pushed.dataset_id}.{done.version}"
    saved = json.loads((store / paths.CHECKOUT_JOBS / f"{job.job_id}.json").read_text())
    assert saved["status"] == "SUCCEEDED" and saved["requested_by"] == "tester"


def test_a_worker_for_a_job_another_worker_holds_exits_at_once(pushed: Pushed, tmp_path: Path) -> None:
    import shutil

    store = tmp_path / "store"
    shutil.copytree(pushed.store, store, symlinks=True)
    _allow_dirs(store, tmp_path)
    job = co.create_job(store, pushed.dataset_id, None, co.store_destination(store, str(tmp_path / "o")))
    lock = co._lock(store, job.job_id)
    assert lock.acquire(wait=False)
    try:
        assert co.worker_alive(store, job.job_id)
        assert not co.resume_if_orphaned(store, job)
        assert co.run_job(store, job.job_id) is None
    finally:
        lock.release()
    assert co.load_job(store, job.job_id).status == co.RUNNING
    assert co.run_job(store, job.job_id).status == co.SUCCEEDED  # type: ignore[union-attr]


def test_a_job_whose_bucket_vanished_fails_with_a_one_line_cause(
        pushed: Pushed, tmp_path: Path, s3_server: LoopbackServer, s3_env: dict[str, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_server.endpoint)
    store = tmp_path / "store"
    shutil.copytree(pushed.store, store, symlinks=True)
    bucket = _unique_bucket()
    s3 = s3_admin_client(s3_server.endpoint)
    s3.create_bucket(Bucket=bucket)
    job = co.create_job(store, pushed.dataset_id, None, co.store_destination(store, f"s3://{bucket}"))
    s3.delete_bucket(Bucket=bucket)
    done = co.run_job(store, job.job_id)
    assert done is not None and done.status == co.FAILED
    assert done.cause is not None and "\n" not in done.cause
    assert f"destination s3://{bucket}: the bucket is gone; create it and check out again" in done.cause
    assert co.load_job(store, job.job_id).status_doc()["cause"] == done.cause


def test_a_bucket_the_server_may_not_write_fails_the_job_naming_the_permission(
        pushed: Pushed, tmp_path: Path, s3_auth_server: AuthS3Server, s3_env: dict[str, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_auth_server.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_auth_server.admin.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_auth_server.admin.secret_access_key)
    store = tmp_path / "store"
    shutil.copytree(pushed.store, store, symlinks=True)
    dest = co.store_destination(store, f"s3://{s3_auth_server.bucket}/ro")
    job = co.create_job(store, pushed.dataset_id, None, dest)
    # by the time the worker runs, the server's credentials may only read (a policy changed)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_auth_server.reader.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_auth_server.reader.secret_access_key)
    done = co.run_job(store, job.job_id)
    assert done is not None and done.status == co.FAILED and done.cause is not None
    assert "\n" not in done.cause
    assert (f"destination s3://{s3_auth_server.bucket}/ro: access denied on write (the server's AWS "
            "credentials need s3:PutObject there") in done.cause
    admin = s3_admin_client(s3_auth_server.endpoint, s3_auth_server.admin)
    assert admin.list_objects_v2(Bucket=s3_auth_server.bucket, Prefix="ro/").get("KeyCount") == 0


def test_dss_checkout_copies_a_version_to_a_directory_and_again_nothing(pushed: Pushed,
                                                                        tmp_path: Path) -> None:
    version = pushed.versions[0]
    code, out, err = dss("checkout", pushed.store, f"{pushed.dataset_id}@{version}", tmp_path / "o")
    assert code == 0, err
    bundle = tmp_path / "o" / "bundles" / f"{pushed.dataset_id}.{version}"
    assert tree(bundle) == expected_files(pushed, version)
    n = len(tree(bundle))
    assert out.strip().startswith(f"{bundle}: {n} copied (")
    code, out, err = dss("checkout", pushed.store, pushed.dataset_id, tmp_path / "o")
    assert code == 0, err
    assert f"{pushed.versions[-1]}: " in out
    code, out, err = dss("checkout", pushed.store, f"{pushed.dataset_id}@{version}", tmp_path / "o")
    assert code == 0 and out.strip().endswith(f": 0 copied (0 bytes), {n} already there, of {n} files")


def test_dss_checkout_of_an_unknown_version_is_one_error_line(pushed: Pushed, tmp_path: Path) -> None:
    code, out, err = dss("checkout", pushed.store, f"{pushed.dataset_id}@2001-01-01T000000.000000Z",
                         tmp_path / "o", check=False)
    assert code == 1 and out == ""
    assert err.strip() == (f"dss: error: bundle {pushed.dataset_id} has no version 2001-01-01T000000.000000Z "
                           "(it does not exist); list its versions with GET "
                           f"/v1/bundles/all?prefix={pushed.dataset_id}")
    assert not (tmp_path / "o").exists()

