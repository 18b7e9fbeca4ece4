"""Bad input to the write API, a named test each, through a real uvicorn server: the status and
a one-line title naming the fix, and nothing new visible in the store afterwards."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import uuid as uuidlib
from pathlib import Path

import pytest
import requests
from api_server import api_server
from cloud_servers import LoopbackServer, _unique_bucket, s3_admin_client
from test_write_api import ADMIN, ALICE, BOB, SPEC, TUS, deposit, entry, put_bundle, put_file, version

from dss_remote.config import paths
from dss_remote.config.server_settings import ServerSettings
from dss_remote.config.store_config import read_config, write_config
from dss_remote.history import bundle_store


def _visible(store: Path) -> list[str]:
    """What a reader of the store could see: datasets, versions and deposited files."""
    out = sorted(str(p.relative_to(store)) for p in store.glob("???/*") if (p / "HEAD").exists())
    out += sorted(str(p.relative_to(store)) for p in (store / paths.BUNDLES).rglob("*.json"))
    out += sorted(str(p.relative_to(store)) for p in (store / paths.FILE_POOL).rglob("*.json"))
    return out


def _title(res: requests.Response, status: int, *words: str) -> str:
    assert res.status_code == status, res.text
    title = str(res.json()["title"])
    assert "\n" not in title and "Traceback" not in res.text
    for w in words:
        assert w in title, title
    return title


def test_checksums_declared_with_an_upload_that_do_not_match_the_bytes_are_422(store: Path,
                                                                               tmp_path: Path) -> None:
    data = b"the real bytes\n"
    wrong = hashlib.sha256(b"other bytes").hexdigest()
    with api_server(store, SPEC, tmp_path / "srv") as srv:
        meta = f"hca-dss-sha256 {base64.b64encode(wrong.encode()).decode()}"
        res = requests.post(f"{srv.url}/v1/uploads", timeout=30, headers=ALICE | TUS | {
            "Upload-Length": str(len(data)), "Upload-Metadata": meta})
        location = res.headers["Location"]
        requests.patch(location, data=data, timeout=30, headers=ALICE | TUS | {
            "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"})
        before = _visible(store)
        _, _, res = put_file(srv.url, location)
        _title(res, 422, "do not match", "sha256")
        assert _visible(store) == before


def test_staged_object_whose_tags_do_not_match_its_bytes_is_422(store: Path, tmp_path: Path,
                                                                s3_server: LoopbackServer,
                                                                 s3_env: dict[str, str],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    bucket = _unique_bucket()
    s3 = s3_admin_client(s3_server.alive().endpoint)
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="f1/data.bin", Body=b"staged bytes")
    s3.put_object_tagging(Bucket=bucket, Key="f1/data.bin", Tagging={"TagSet": [
        {"Key": "hca-dss-sha256", "Value": hashlib.sha256(b"not these").hexdigest()}]})
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)
    cfg = read_config(store)
    write_config(store, dataclasses.replace(cfg, server=ServerSettings(
        staging_buckets=(f"s3://{bucket}", "s3://allowed-but-never-made"))))
    with api_server(store, SPEC, tmp_path / "srv") as srv:
        before = _visible(store)
        _, _, res = put_file(srv.url, f"s3://{bucket}/f1/data.bin")
        _title(res, 422, "do not match")
        _, _, res = put_file(srv.url, f"s3://{bucket}/f1/missing.bin")
        _title(res, 404, "no such object")
        # a bucket the server cannot read because it does not exist: a 4xx, never a 5xx to retry
        _, _, res = put_file(srv.url, "s3://allowed-but-never-made/f1/data.bin")
        _title(res, 400, "does not exist")
        assert _visible(store) == before


def test_a_source_url_outside_the_allowed_staging_buckets_is_400(store: Path, tmp_path: Path) -> None:
    with api_server(store, SPEC, tmp_path / "srv") as srv:
        for url in ("s3://someone-elses-bucket/secret.bin", "file:///etc/passwd", "gs://b/../x",
                    "https://example.org/data.bin"):
            _, _, res = put_file(srv.url, url)
            _title(res, 400, "source_url")
        assert _visible(store) == []


def test_a_bundle_naming_a_file_that_does_not_exist_is_400(store: Path, tmp_path: Path) -> None:
    with api_server(store, SPEC, tmp_path / "srv") as srv:
        res = put_bundle(srv.url, str(uuidlib.uuid4()), version(),
                         [entry("a.txt", str(uuidlib.uuid4()), version())])
        assert res.json()["code"] == "file_missing"
        _title(res, 400, "does not exist")
        assert _visible(store) == []


def test_duplicate_names_are_400(store: Path, tmp_path: Path) -> None:
    with api_server(store, SPEC, tmp_path / "srv") as srv:
        f = deposit(srv.url, b"x\n")
        before = _visible(store)
        res = put_bundle(srv.url, str(uuidlib.uuid4()), version(), [entry("a.txt", *f), entry("a.txt", *f)])
        assert res.json()["code"] == "duplicate_filename"
        _title(res, 400, "appears twice")
        assert _visible(store) == before


@pytest.mark.parametrize("name", ["../escape.txt", "a/../../b", "/etc/passwd", ".git/config", "sub/.git/HEAD",
                                  ".datalad/config", "a//b", "./a", "~/x", "back\\slash", "line\nbreak",
                                  ".gitattributes"])
def test_names_with_dotdot_absolute_git_or_datalad_inside_are_400(store: Path, tmp_path: Path,
                                                                  name: str) -> None:
    with api_server(store, SPEC, tmp_path / "srv") as srv:
        f = deposit(srv.url, b"x\n")
        before = _visible(store)
        _title(put_bundle(srv.url, str(uuidlib.uuid4()), version(), [entry(name, *f)]), 400, "file name")
        assert _visible(store) == before


def test_more_than_1000_items_in_a_patch_is_400(store: Path, tmp_path: Path) -> None:
    with api_server(store, SPEC, tmp_path / "srv") as srv:
        f = deposit(srv.url, b"x\n")
        buuid, bversion = str(uuidlib.uuid4()), version()
        assert put_bundle(srv.url, buuid, bversion, [entry("a.txt", *f)]).status_code == 201
        items = [entry(f"n{i}.txt", *f) for i in range(1001)]
        res = requests.patch(f"{srv.url}/v1/bundles/{buuid}?version={bversion}", headers=ALICE,
                             json={"add_files": items}, timeout=60)
        _title(res, 400, "at most 1000")
        assert bundle_store.versions(store, buuid) == [bversion]


def test_a_version_that_does_not_parse_is_400(store: Path, tmp_path: Path) -> None:
    with api_server(store, SPEC, tmp_path / "srv") as srv:
        for bad in ("yesterday", "2026-13-01T000000.000000Z", "", "2026-11-22T03:15:33Z"):
            res = requests.put(f"{srv.url}/v1/files/{uuidlib.uuid4()}?version={bad}", headers=ALICE,
                               json={"creator_uid": 1, "source_url": "s3://b/k"}, timeout=30)
            _title(res, 400, "version")
            res = put_bundle(srv.url, str(uuidlib.uuid4()), bad, [])
            _title(res, 400, "version")
        assert _visible(store) == []


def test_a_write_without_the_right_is_403_and_anonymous_is_401(store: Path, tmp_path: Path) -> None:
    with api_server(store, SPEC, tmp_path / "srv") as srv:
        f = deposit(srv.url, b"x\n")
        buuid, bversion = str(uuidlib.uuid4()), version()
        before = _visible(store)
        _title(put_bundle(srv.url, buuid, bversion, [entry("a.txt", *f)], BOB), 403, "may not create")
        _title(put_bundle(srv.url, buuid, bversion, [entry("a.txt", *f)], {}), 401, "sign in")
        assert _visible(store) == before
        assert put_bundle(srv.url, buuid, bversion, [entry("a.txt", *f)]).status_code == 201
        # bob may not write the dataset alice made, nor put alice's deposited file in a bundle
        _title(put_bundle(srv.url, buuid, version(), [entry("b.txt", *f)], BOB), 403, "may not write")
        res = requests.delete(f"{srv.url}/v1/bundles/{buuid}", headers=ALICE, json={"reason": "x"},
                              timeout=30)
        _title(res, 403, "admins")
        assert bundle_store.versions(store, buuid) == [bversion]
    audited = srv.audited()
    assert any(a.get("write") and a["status"] == 201 and a["dataset"] == buuid for a in audited)


def test_a_read_only_server_answers_writes_with_503_and_retry_after(
        store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSS_TEST_READ_ONLY", "1")
    with api_server(store, SPEC, tmp_path / "srv") as srv:
        for res in (requests.post(f"{srv.url}/v1/uploads",
                                  headers=ALICE | TUS | {"Upload-Length": "3"}, timeout=30),
                    put_file(srv.url, "s3://b/k")[2],
                    put_bundle(srv.url, str(uuidlib.uuid4()), version(), []),
                    requests.delete(f"{srv.url}/v1/bundles/{uuidlib.uuid4()}", headers=ADMIN,
                                    json={"reason": "x"}, timeout=30)):
            _title(res, 503, "read-only")
            assert int(res.headers["Retry-After"]) > 0
    assert _visible(store) == []


def test_an_upload_cut_off_half_way_is_invisible_and_resumable(store: Path, tmp_path: Path) -> None:
    data = bytes(range(256)) * 2000
    with api_server(store, SPEC, tmp_path / "srv") as srv:
        res = requests.post(f"{srv.url}/v1/uploads", headers=ALICE | TUS | {"Upload-Length": str(len(data))},
                            timeout=30)
        location = res.headers["Location"]

        def half() -> object:  # a body that stops half way: the connection is cut
            yield data[:100_000]
            raise ConnectionError("cut")

        with pytest.raises(requests.ConnectionError):
            requests.patch(location, data=half(), timeout=30, headers=ALICE | TUS | {
                "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"})
        # nothing of it is a file of the store
        _, _, res = put_file(srv.url, location)
        _title(res, 400, "not finished")
        assert _visible(store) == []
        offset = int(requests.head(location, headers=ALICE | TUS, timeout=30).headers["Upload-Offset"])
        assert 0 <= offset <= 100_000
        # a PATCH at a stale offset is refused; from HEAD's offset it goes on
        stale = requests.patch(location, data=b"x", timeout=30, headers=ALICE | TUS | {
            "Content-Type": "application/offset+octet-stream", "Upload-Offset": str(offset + 1)})
        _title(stale, 409, "HEAD it")
        done = requests.patch(location, data=data[offset:], timeout=30, headers=ALICE | TUS | {
            "Content-Type": "application/offset+octet-stream", "Upload-Offset": str(offset)})
        assert done.status_code == 204 and done.headers["Upload-Offset"] == str(len(data))
        # another user does not see it
        assert requests.head(location, headers=BOB | TUS, timeout=30).status_code == 404
        _, _, res = put_file(srv.url, location)
        assert res.status_code == 201, res.text
        assert requests.head(location, headers=ALICE | TUS, timeout=30).status_code == 404  # consumed


def test_patch_makes_a_new_version_and_delete_tombstones_once(store: Path, tmp_path: Path) -> None:
    with api_server(store, SPEC, tmp_path / "srv") as srv:
        a, b = deposit(srv.url, b"a\n"), deposit(srv.url, b"b\n")
        buuid, v1 = str(uuidlib.uuid4()), version()
        assert put_bundle(srv.url, buuid, v1, [entry("a.txt", *a)]).status_code == 201
        res = requests.patch(f"{srv.url}/v1/bundles/{buuid}?version={v1}", headers=ALICE, timeout=60,
                             json={"add_files": [entry("b.txt", *b)],
                                   "remove_files": [entry("a.txt", *a)]})
        assert res.status_code == 200, res.text
        v2 = res.json()["version"]
        assert v2 > v1 and bundle_store.versions(store, buuid) == [v1, v2]
        names = {r["path"] for r in bundle_store.load(store, buuid, v2).files}
        assert "b.txt" in names and "a.txt" not in names
        res = requests.delete(f"{srv.url}/v1/bundles/{buuid}?version={v1}", headers=ADMIN,
                              json={"reason": "superseded"}, timeout=30)
        assert res.status_code == 200, res.text
        again = requests.delete(f"{srv.url}/v1/bundles/{buuid}?version={v1}", headers=ADMIN,
                                json={"reason": "superseded"}, timeout=30)
        _title(again, 409, "already deleted")
        assert requests.get(f"{srv.url}/v1/bundles/{buuid}?version={v1}", headers=ALICE,
                            timeout=30).status_code == 404
