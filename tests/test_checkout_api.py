"""Checkout through a real `dss serve` (real dss tokens and ACLs): to a moto bucket and to a
directory end to end, a second checkout that copies nothing, a job that survives a restart of the
server, and each bad input refused with its status and a one-line title, nothing written."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests
from api_data import Pushed, copy_sample
from api_server import served
from cloud_servers import HOST, LoopbackServer, _unique_bucket, free_port, s3_admin_client
from conftest import dss, require_tool

from dss_remote.config.server_settings import ServerSettings
from dss_remote.config.store_config import read_config, write_config
from dss_remote.service import checkout as co

UNKNOWN = "00000000-0000-4000-8000-000000000000"


@contextmanager
def dss_serve(store: Path, work: Path, *args: str) -> Iterator[str]:
    """`dss serve STORE --port P ARGS` until the block ends (SIGTERM, then waited for)."""
    work.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://{HOST}:{port}"
    command = [require_tool("dss"), "serve", str(store), "--port", str(port), *args]
    with served(command, url, work / f"serve-{port}.log", probe="/v1/version"):
        yield url


@dataclasses.dataclass
class Served:
    pushed: Pushed
    out: Path
    reader: dict[str, str]
    other: dict[str, str]

    @property
    def store(self) -> Path:
        return self.pushed.store

    @property
    def dsid(self) -> str:
        return self.pushed.dataset_id


def _token(store: Path, user: str, group: str) -> dict[str, str]:
    code, out, err = dss("token", "create", store, "--user", user, "--group", group)
    assert code == 0, err
    return {"Authorization": f"Bearer {out.strip()}"}


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, sample_template: Pushed) -> Served:
    base = tmp_path_factory.mktemp("checkout-api")
    pushed = copy_sample(sample_template, base)
    out = base / "checkouts"
    out.mkdir()
    cfg = read_config(pushed.store)
    write_config(pushed.store, dataclasses.replace(cfg, server=ServerSettings(checkout_dirs=(str(out),))))
    reader, other = _token(pushed.store, "alice", "lab"), _token(pushed.store, "bob", "elsewhere")
    assert dss("acl", "set", pushed.store, pushed.dataset_id, "--read", "lab")[0] == 0
    return Served(pushed, out, reader, other)


def post(url: str, dsid: str, body: Any, headers: dict[str, str], **params: str) -> requests.Response:
    return requests.post(f"{url}/v1/bundles/{dsid}/checkout", json=body, params=params, headers=headers,
                         timeout=60)


def finished(url: str, job_id: str, headers: dict[str, str], timeout: float = 90) -> dict[str, Any]:
    """The job's status once it is no longer RUNNING, after its worker process exited."""
    deadline = time.monotonic() + timeout
    while True:
        res = requests.get(f"{url}/v1/bundles/checkout/{job_id}", headers=headers, timeout=30)
        assert res.status_code == 200, res.text
        doc: dict[str, Any] = res.json()
        if doc["status"] != "RUNNING":
            break
        assert time.monotonic() < deadline, f"still running: {doc}"
        time.sleep(0.2)
    return doc


def worker_exits(store: Path, job_id: str) -> None:
    pid = co.load_job(store, job_id).pid
    if pid is not None and psutil.pid_exists(pid):
        try:
            psutil.Process(pid).wait(timeout=20)
        except psutil.NoSuchProcess:
            pass
    assert pid is None or not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def _title(res: requests.Response, status: int, *words: str) -> str:
    assert res.status_code == status, res.text
    title = str(res.json()["title"])
    assert "\n" not in title and "Traceback" not in res.text
    for w in words:
        assert w in title, title
    return title


def _jobs(store: Path) -> list[str]:
    return sorted(p.name for p in (store / "dss/checkout").glob("*.json"))


def test_checkout_to_a_moto_bucket_through_dss_serve_and_again_copies_nothing(
        setup: Served, tmp_path: Path, s3_server: LoopbackServer, s3_env: dict[str, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_server.endpoint)
    s3 = s3_admin_client(s3_server.endpoint)
    bucket = _unique_bucket()
    s3.create_bucket(Bucket=bucket)
    version = setup.pushed.versions[-1]
    with dss_serve(setup.store, tmp_path) as url:
        res = post(url, setup.dsid, {"destination": f"s3://{bucket}/team"}, setup.reader, replica="aws")
        assert res.status_code == 200, res.text
        job_id = res.json()["checkout_job_id"]
        doc = finished(url, job_id, setup.reader)
        worker_exits(setup.store, job_id)
        assert doc["status"] == "SUCCEEDED", doc
        assert doc["location"] == f"s3://{bucket}/team/bundles/{setup.dsid}.{version}"
        prefix = f"team/bundles/{setup.dsid}.{version}/"
        keys = {o["Key"][len(prefix):] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
        assert doc["files"] == doc["copied"] == len(keys) and doc["already_present"] == 0
        assert {"small.txt", "dir/data.bin", "added.csv", ".datalad/config"} <= keys
        data = (setup.pushed.dataset / "dir/data.bin").read_bytes()
        assert s3.get_object(Bucket=bucket, Key=prefix + "dir/data.bin")["Body"].read() == data
        again = post(url, setup.dsid, {"destination": f"s3://{bucket}/team"}, setup.reader, version=version)
        doc2 = finished(url, again.json()["checkout_job_id"], setup.reader)
        worker_exits(setup.store, again.json()["checkout_job_id"])
    assert doc2["status"] == "SUCCEEDED"
    assert (doc2["copied"], doc2["already_present"], doc2["bytes_copied"]) == (0, doc["files"], 0)
    audit = "".join(p.read_text() for p in (setup.store / "dss/audit").glob("*.jsonl"))
    assert job_id in audit


def test_checkout_to_a_directory_through_dss_serve_survives_a_restart(setup: Served, tmp_path: Path) -> None:
    dest = setup.out / "alice"
    with dss_serve(setup.store, tmp_path / "a") as url:
        res = post(url, setup.dsid, {"destination": str(dest), "email": "alice@example.org"}, setup.reader)
        assert res.status_code == 200, res.text
        job_id = res.json()["checkout_job_id"]
    # the server is gone; the job's worker is not (or finished): a new server reports it
    with dss_serve(setup.store, tmp_path / "b") as url:
        doc = finished(url, job_id, setup.reader)
        worker_exits(setup.store, job_id)
        assert doc["status"] == "SUCCEEDED", doc
        bundle = dest / "bundles" / f"{setup.dsid}.{setup.pushed.versions[-1]}"
        assert (bundle / "dir/data.bin").read_bytes() == (setup.pushed.dataset / "dir/data.bin").read_bytes()
        assert doc["copied"] == doc["files"] == len([f for f in bundle.rglob("*") if f.is_file()])
        assert requests.get(f"{url}/v1/bundles/checkout/{job_id}", headers=setup.other, timeout=30
                            ).status_code == 403


def test_checkout_to_a_directory_the_store_does_not_allow_is_400(setup: Served, tmp_path: Path) -> None:
    before = _jobs(setup.store)
    with dss_serve(setup.store, tmp_path) as url:
        res = post(url, setup.dsid, {"destination": str(tmp_path / "mine")}, setup.reader)
        _title(res, 400, f"destination {tmp_path}/mine is not under this store's checkout directories",
               "server.checkout_dirs")
        res = post(url, setup.dsid, {"destination": f"{setup.out}/../escape"}, setup.reader)
        _title(res, 400, "without `.` or `..` components")
        (setup.out / "link").symlink_to(tmp_path)
        try:
            res = post(url, setup.dsid, {"destination": f"{setup.out}/link/x"}, setup.reader)
            _title(res, 400, "'link' is a symlink or not a directory")
        finally:
            (setup.out / "link").unlink()
        res = post(url, setup.dsid, {"destination": "ftp://host/x"}, setup.reader)
        _title(res, 400, "is not s3://BUCKET[/PREFIX], gs://BUCKET[/PREFIX] or an absolute directory")
        _title(post(url, setup.dsid, {}, setup.reader), 400, "destination is required")
    assert _jobs(setup.store) == before
    assert not (tmp_path / "mine").exists() and not (setup.out.parent / "escape").exists()
    assert not list(tmp_path.glob("x"))


def test_checkout_to_a_bucket_that_does_not_exist_is_400(
        setup: Served, tmp_path: Path, s3_server: LoopbackServer, s3_env: dict[str, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_server.endpoint)
    before = _jobs(setup.store)
    with dss_serve(setup.store, tmp_path) as url:
        res = post(url, setup.dsid, {"destination": "s3://no-such-bucket-dss"}, setup.reader)
    _title(res, 400, "destination s3://no-such-bucket-dss: no such bucket; create it or name another")
    assert _jobs(setup.store) == before


def test_checkout_of_an_unknown_bundle_or_version_is_404(setup: Served, tmp_path: Path) -> None:
    before = _jobs(setup.store)
    dest = {"destination": str(setup.out / "x")}
    with dss_serve(setup.store, tmp_path) as url:
        admin = _token(setup.store, "root", "admins")
        assert dss("acl", "default", setup.store, "--admin", "admins")[0] == 0
        _title(post(url, UNKNOWN, dest, admin), 404, f"bundle {UNKNOWN} not found")
        _title(post(url, setup.dsid, dest, setup.reader, version="2001-01-01T000000.000000Z"), 404,
               "has no version 2001-01-01T000000.000000Z")
        _title(requests.get(f"{url}/v1/bundles/checkout/{UNKNOWN}", timeout=30), 404, "no checkout job")
        _title(requests.get(f"{url}/v1/bundles/checkout/..%2F..%2Fconfig", timeout=30), 404)
    assert _jobs(setup.store) == before and not (setup.out / "x").exists()


def test_checkout_by_a_caller_who_may_not_read_the_bundle_is_401_or_403(setup: Served,
                                                                         tmp_path: Path) -> None:
    before = _jobs(setup.store)
    dest = {"destination": str(setup.out / "y")}
    with dss_serve(setup.store, tmp_path) as url:
        res = post(url, setup.dsid, dest, {})
        _title(res, 401, "is not public")
        assert "Bearer" in res.headers["WWW-Authenticate"]
        _title(post(url, setup.dsid, dest, setup.other), 403, "bob may not read dataset")
    assert _jobs(setup.store) == before and not (setup.out / "y").exists()


def test_checkout_on_a_read_only_server_is_503(setup: Served, tmp_path: Path) -> None:
    before = _jobs(setup.store)
    with dss_serve(setup.store, tmp_path, "--read-only") as url:
        res = post(url, setup.dsid, {"destination": str(setup.out / "z")}, setup.reader)
    _title(res, 503, "this server is read-only")
    assert res.headers["Retry-After"] == "300"
    assert _jobs(setup.store) == before and not (setup.out / "z").exists()


def test_the_spec_describes_checkout_as_the_hca_client_reads_it(setup: Served, tmp_path: Path) -> None:
    with dss_serve(setup.store, tmp_path) as url:
        spec = requests.get(f"{url}/v1/swagger.json", timeout=30).json()
    post_op = spec["paths"]["/bundles/{uuid}/checkout"]["post"]
    get_op = spec["paths"]["/bundles/checkout/{checkout_job_id}"]["get"]
    assert set(spec["paths"]["/bundles/{uuid}/checkout"]) == {"post"}
    props = post_op["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert all("type" in p for p in props.values()) and set(props) == {"destination", "email"}
    assert "200" in post_op["responses"] and "200" in get_op["responses"]
    assert "security" not in post_op and "security" not in get_op
