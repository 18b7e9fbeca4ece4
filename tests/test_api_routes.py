"""The DSS read routes in process (TestClient) over a store with real pushed datasets: bundle and
file shapes, headers and bytes, paging, bundles/all, events, version, the spec and its page."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from api_data import FILES, V2_FILES, Pushed, copy_sample
from fastapi.testclient import TestClient
from gate_double import GateDouble

from dss_remote.access.gate import Identity
from dss_remote.backends.checksums import DssDigests
from dss_remote.server import dss_mapping
from dss_remote.server.app import create_app

TOKEN = {"Authorization": "Bearer tok-admin"}


@pytest.fixture(scope="module")
def pushed(tmp_path_factory: pytest.TempPathFactory, sample_template: Pushed) -> Pushed:
    return copy_sample(sample_template, tmp_path_factory.mktemp("routes"))


def _client(p: Pushed, tmp_path: Path, *, public: bool = True, public_url: str | None = None
            ) -> TestClient:
    gate = GateDouble({"tok-admin": Identity("root", frozenset({"admins"}))},
                      public={p.dataset_id} if public else set(), admins={"admins"})
    return TestClient(create_app(p.store, gate, public_url=public_url, cache_dir=tmp_path / "cache"))


def _files(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["name"]: f for f in body["bundle"]["files"]}


def _dss_checksums(data: bytes) -> dict[str, str]:
    """What the special remote recorded beside the key when `datalad push` stored it."""
    digests = DssDigests(len(data))
    digests.update(data)
    return digests.hexdigests()


def test_bundle_lists_the_newest_version_with_dss_file_versions(pushed: Pushed, tmp_path: Path) -> None:
    res = _client(pushed, tmp_path).get(f"/v1/bundles/{pushed.dataset_id}", params={"replica": "aws"})
    assert res.status_code == 200
    bundle = res.json()["bundle"]
    assert (bundle["uuid"], bundle["version"], bundle["creator_uid"]) == (
        pushed.dataset_id, pushed.versions[-1], 0)
    files = _files(res.json())
    # subdatasets and plain symlinks are left out; git files are in
    assert set(files) == set(FILES) | set(V2_FILES) | {".datalad/config", ".gitattributes",
                                                       ".datalad/.gitattributes", ".gitmodules"}
    small = files["small.txt"]
    assert small == {
        "name": "small.txt", "uuid": dss_mapping.file_uuid(pushed.dataset_id, "small.txt"),
        "version": pushed.versions[1], "size": len(V2_FILES["small.txt"]), "content-type": "text/plain",
        "indexed": False, "creator_uid": 0} | _dss_checksums(V2_FILES["small.txt"])
    # unchanged since the first version: the file version is the first bundle version
    assert files["dir/data.bin"]["version"] == pushed.versions[0]
    assert files["meta/sample.json"]["indexed"] is True
    assert files["meta/sample.json"]["content-type"] == "application/json"
    config = (pushed.dataset / ".datalad" / "config").read_bytes()
    assert files[".datalad/config"]["sha256"] == hashlib.sha256(config).hexdigest()
    assert files[".datalad/config"]["sha1"] == hashlib.sha1(config).hexdigest()
    assert files[".datalad/config"]["s3_etag"] == hashlib.md5(config).hexdigest()
    assert len(files[".datalad/config"]["crc32c"]) == 8


def test_an_older_bundle_version_keeps_its_files(pushed: Pushed, tmp_path: Path) -> None:
    res = _client(pushed, tmp_path).get(f"/v1/bundles/{pushed.dataset_id}",
                                        params={"version": pushed.versions[0]})
    assert res.status_code == 200
    files = _files(res.json())
    assert "added.csv" not in files
    assert files["small.txt"]["version"] == pushed.versions[0]
    assert files["small.txt"]["sha256"] == hashlib.sha256(FILES["small.txt"]).hexdigest()


def test_bundle_pages_with_206_an_absolute_link_and_the_dss_headers(pushed: Pushed, tmp_path: Path) -> None:
    client = _client(pushed, tmp_path)
    url = f"/v1/bundles/{pushed.dataset_id}"
    first = client.get(url, params={"replica": "aws", "per_page": 10})
    assert first.status_code == 206
    assert first.headers["X-OpenAPI-Pagination"] == "true"
    assert first.headers["X-OpenAPI-Paginated-Content-Key"] == "bundle.files"
    link = first.headers["Link"]
    assert link == (f"<http://testserver{url}?replica=aws&version={pushed.versions[-1]}&per_page=10"
                    '&start_at=10>; rel="next"')
    # the hca client re-sends its own parameters beside the link's: identical duplicates are fine
    second = client.get(link[1:link.index(">")] + "&replica=aws&per_page=10")
    assert second.status_code == 200 and "Link" not in second.headers
    names = [f["name"] for f in first.json()["bundle"]["files"] + second.json()["bundle"]["files"]]
    whole = client.get(url).json()["bundle"]["files"]
    assert names == [f["name"] for f in whole]


def test_the_link_uses_the_public_url(pushed: Pushed, tmp_path: Path) -> None:
    client = _client(pushed, tmp_path, public_url="https://data.example.org/")
    res = client.get(f"/v1/bundles/{pushed.dataset_id}", params={"per_page": 10})
    assert res.headers["Link"].startswith(f"<https://data.example.org/v1/bundles/{pushed.dataset_id}?")


def test_get_and_head_file_give_the_bytes_and_the_x_dss_headers(pushed: Pushed, tmp_path: Path) -> None:
    client = _client(pushed, tmp_path)
    fuuid = dss_mapping.file_uuid(pushed.dataset_id, "dir/data.bin")
    res = client.get(f"/v1/files/{fuuid}", params={"replica": "aws"})
    assert res.status_code == 200
    assert res.content == FILES["dir/data.bin"]
    assert res.headers["X-DSS-SHA256"] == hashlib.sha256(FILES["dir/data.bin"]).hexdigest()
    assert res.headers["X-DSS-SIZE"] == str(len(FILES["dir/data.bin"]))
    assert res.headers["X-DSS-VERSION"] == pushed.versions[0]
    assert res.headers["X-DSS-CREATOR-UID"] == "0"
    assert res.headers["X-DSS-CONTENT-TYPE"] == res.headers["content-type"] == "application/octet-stream"
    head = client.head(f"/v1/files/{fuuid}")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["X-DSS-SHA256"] == res.headers["X-DSS-SHA256"]
    assert head.headers["content-length"] == str(len(FILES["dir/data.bin"]))


def test_a_file_without_version_is_its_newest_and_old_versions_stay(pushed: Pushed, tmp_path: Path) -> None:
    client = _client(pushed, tmp_path)
    fuuid = dss_mapping.file_uuid(pushed.dataset_id, "small.txt")
    newest = client.get(f"/v1/files/{fuuid}")
    assert newest.content == V2_FILES["small.txt"]
    assert newest.headers["X-DSS-VERSION"] == pushed.versions[1]
    old = client.get(f"/v1/files/{fuuid}", params={"version": pushed.versions[0]})
    assert old.content == FILES["small.txt"]


def test_a_git_file_is_served_from_its_blob(pushed: Pushed, tmp_path: Path) -> None:
    fuuid = dss_mapping.file_uuid(pushed.dataset_id, ".datalad/config")
    res = _client(pushed, tmp_path).get(f"/v1/files/{fuuid}")
    assert res.status_code == 200
    assert res.content == (pushed.dataset / ".datalad" / "config").read_bytes()


def test_an_empty_file_is_served(pushed: Pushed, tmp_path: Path) -> None:
    fuuid = dss_mapping.file_uuid(pushed.dataset_id, "dir/sub/zero.dat")
    res = _client(pushed, tmp_path).get(f"/v1/files/{fuuid}")
    assert res.status_code == 200 and res.content == b"" and res.headers["X-DSS-SIZE"] == "0"


def test_bundles_all_lists_what_the_caller_may_read(pushed: Pushed, tmp_path: Path) -> None:
    private = _client(pushed, tmp_path, public=False)
    anonymous = private.get("/v1/bundles/all", params={"replica": "aws"})
    assert anonymous.status_code == 200
    assert anonymous.json()["bundles"] == [] and anonymous.json()["has_more"] is False
    res = private.get("/v1/bundles/all", params={"replica": "aws"}, headers=TOKEN)
    body = res.json()
    assert body["bundles"] == [{"uuid": pushed.dataset_id, "version": v} for v in pushed.versions]
    assert set(body) == {"bundles", "has_more", "page_count", "per_page", "search_prefix", "token",
                         "search_after", "link", "event_timestamp"}
    by_prefix = private.get("/v1/bundles/all", params={"prefix": "ffffffff"}, headers=TOKEN)
    assert by_prefix.json()["bundles"] == [] or pushed.dataset_id.startswith("ffffffff")


def test_events_list_the_journal_and_an_event_is_the_bundle_document(pushed: Pushed, tmp_path: Path) -> None:
    client = _client(pushed, tmp_path)
    res = client.get("/v1/events", params={"per_page": 1})
    assert res.status_code == 206
    assert res.headers["X-OpenAPI-Paginated-Content-Key"] == "events"
    first = res.json()["events"]
    assert [(e["event_type"], e["bundle_uuid"], e["bundle_version"]) for e in first] == [
        ("CREATE", pushed.dataset_id, pushed.versions[0])]
    link = res.headers["Link"]
    rest = client.get(link[1:link.index(">")])
    assert rest.status_code == 200
    assert [e["bundle_version"] for e in rest.json()["events"]] == [pushed.versions[1]]
    later = client.get("/v1/events", params={"from_date": rest.json()["events"][0]["timestamp"]})
    assert [e["bundle_version"] for e in later.json()["events"]] == [pushed.versions[1]]
    before = client.get("/v1/events", params={"to_date": pushed.versions[1]})
    assert [e["bundle_version"] for e in before.json()["events"]] == [pushed.versions[0]]
    doc = client.get(f"/v1/events/{pushed.dataset_id}", params={"version": pushed.versions[0]}).json()
    assert doc["event_type"] == "CREATE"
    assert doc["bundle_info"] == {"uuid": pushed.dataset_id, "version": pushed.versions[0]}
    assert doc["event_id"] == first[0]["event_id"]
    assert {f["name"] for f in doc["manifest"]["files"]} >= set(FILES)


def test_events_of_a_private_dataset_are_left_out_for_others(pushed: Pushed, tmp_path: Path) -> None:
    client = _client(pushed, tmp_path, public=False)
    assert client.get("/v1/events").json()["events"] == []
    assert len(client.get("/v1/events", headers=TOKEN).json()["events"]) == 2


def test_version_spec_and_docs_page(pushed: Pushed, tmp_path: Path) -> None:
    client = _client(pushed, tmp_path)
    assert client.get("/v1/version").json() == {"version_info": {"version": "0.1.0"}}
    spec = client.get("/v1/swagger.json").json()
    assert spec["servers"][0]["url"] == "http://testserver/v1"
    assert spec["info"]["description"]
    assert "206" in spec["paths"]["/bundles/{uuid}"]["get"]["responses"]
    assert set(spec["paths"]["/files/{uuid}"]) == {"get", "head", "put"}
    assert set(spec["paths"]["/bundles/{uuid}"]) == {"get", "put", "patch", "delete"}
    assert spec["paths"]["/files/{uuid}"]["put"]["security"] == [{"bearer": []}]
    docs = client.get("/docs")
    assert docs.status_code == 200 and "v1/swagger.json" in docs.text
    assert "https://" not in docs.text, "the docs page loads nothing from elsewhere"
