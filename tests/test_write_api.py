"""The DSS write API end to end: direct (tus) uploads, PUT /v1/files, PUT|PATCH|DELETE
/v1/bundles through a real uvicorn server, then real `datalad clone` + `datalad get` of what was
written, `dss bundles list` and `dss events` seeing the client's version."""

from __future__ import annotations

import hashlib
import os
import uuid as uuidlib
from pathlib import Path
from typing import Any

import requests
from api_data import isolated_home, push_new
from api_server import api_server
from conftest import dss, require_tool, run

from dss_remote.history import bundle_store, bundles, times

ALICE = {"Authorization": "Bearer tok-alice"}
BOB = {"Authorization": "Bearer tok-bob"}
ADMIN = {"Authorization": "Bearer tok-admin"}
SPEC = {"tokens": {"tok-alice": {"user": "alice", "groups": ["producers"]},
                   "tok-bob": {"user": "bob", "groups": ["readers"]},
                   "tok-admin": {"user": "root", "groups": ["admins"]}},
        "creators": ["producers"], "admins": ["admins"]}
TUS = {"Tus-Resumable": "1.0.0"}


def version() -> str:
    return bundles.format_version(times.now())


def upload(url: str, data: bytes, headers: dict[str, str] = ALICE, *, cut: int | None = None) -> str:
    """A tus upload of `data` (in two PATCHes when `cut`, the second from HEAD's offset); its URL."""
    res = requests.post(f"{url}/v1/uploads", headers=headers | TUS | {"Upload-Length": str(len(data))},
                        timeout=30)
    assert res.status_code == 201, res.text
    location = res.headers["Location"]
    assert location.startswith(url)
    parts = [data] if cut is None else [data[:cut], data[cut:]]
    for part in parts:
        head = requests.head(location, headers=headers | TUS, timeout=30)
        assert head.status_code == 200
        at = head.headers["Upload-Offset"]
        patch = requests.patch(location, data=part, timeout=60, headers=headers | TUS | {
            "Content-Type": "application/offset+octet-stream", "Upload-Offset": at})
        assert patch.status_code == 204, patch.text
    assert requests.head(location, headers=headers | TUS,
                         timeout=30).headers["Upload-Offset"] == str(len(data))
    return location


def put_file(url: str, source: str, headers: dict[str, str] = ALICE, **extra: Any) -> tuple[str, str,
                                                                                            requests.Response]:
    fuuid, fversion = str(uuidlib.uuid4()), version()
    res = requests.put(f"{url}/v1/files/{fuuid}?version={fversion}", headers=headers, timeout=60,
                       json={"creator_uid": 7, "source_url": source} | extra)
    return fuuid, fversion, res


def deposit(url: str, data: bytes) -> tuple[str, str]:
    fuuid, fversion, res = put_file(url, upload(url, data))
    assert res.status_code == 201, res.text
    return fuuid, fversion


def put_bundle(url: str, buuid: str, bversion: str, files: list[dict[str, Any]],
               headers: dict[str, str] = ALICE) -> requests.Response:
    return requests.put(f"{url}/v1/bundles/{buuid}?version={bversion}&replica=aws", headers=headers,
                        json={"creator_uid": 7, "files": files}, timeout=120)


def entry(name: str, fuuid: str, fversion: str) -> dict[str, Any]:
    return {"name": name, "uuid": fuuid, "version": fversion, "indexed": name.endswith(".json")}


def test_upload_put_files_and_bundle_then_datalad_clones_and_gets_it(store: Path, tmp_path: Path) -> None:
    require_tool("datalad")
    contents = {"raw/scan.nii.gz": os.urandom(300_000), "meta/sample.json": b'{"species": "mouse"}\n',
                "README.txt": b"hello\n"}
    with api_server(store, SPEC, tmp_path / "srv") as srv:
        listed = []
        for name, data in contents.items():
            fuuid, fversion = deposit(srv.url, data) if name != "raw/scan.nii.gz" else (None, None)
            if fuuid is None:  # the big one resumes after a cut
                fuuid, fversion, res = put_file(srv.url, upload(srv.url, data, cut=100_001))
                assert res.status_code == 201, res.text
            listed.append(entry(name, fuuid, fversion))
        buuid, bversion = str(uuidlib.uuid4()), version()
        res = put_bundle(srv.url, buuid, bversion, listed)
        assert res.status_code == 201, res.text
        assert res.json()["version"] == bversion
        again = put_bundle(srv.url, buuid, bversion, listed)
        assert again.status_code == 200, again.text
        other = put_bundle(srv.url, buuid, bversion, listed[:1])
        assert other.status_code == 409, other.text
        got = requests.get(f"{srv.url}/v1/bundles/{buuid}?version={bversion}", headers=ALICE, timeout=30)
        assert got.status_code == 200, got.text
        files = {f["name"]: f for f in got.json()["bundle"]["files"]}
        # the dataset's own files are files of the version, as in every dataset the read API serves
        assert set(files) == set(contents) | {".datalad/config", ".datalad/.gitattributes", ".gitattributes"}
        for e in listed:
            assert (files[e["name"]]["uuid"], files[e["name"]]["version"]) == (e["uuid"], e["version"])
            assert files[e["name"]]["sha256"] == hashlib.sha256(contents[e["name"]]).hexdigest()
        f = requests.get(f"{srv.url}/v1/files/{listed[0]['uuid']}?version={listed[0]['version']}",
                         headers=ALICE, timeout=30)
        assert f.status_code == 200 and f.content == contents[listed[0]["name"]]
    assert bundle_store.versions(store, buuid) == [bversion]
    clone = tmp_path / "clone"
    run("datalad", "-l", "error", "clone", f"ria+file://{store}#{buuid}", clone)
    assert run("git", "config", "-f", ".datalad/config", "datalad.dataset.id",
               cwd=clone).stdout.strip() == buuid
    run("datalad", "-l", "error", "get", ".", cwd=clone)
    for name, data in contents.items():
        assert (clone / name).read_bytes() == data, name
    run("git", "annex", "fsck", "--fast", cwd=clone)
    code, out, err = dss("bundles", "list", store, "--dataset", buuid)
    assert code == 0 and bversion in out, out + err
    code, out, err = dss("events", store)
    assert code == 0 and bversion in out, out + err


def test_a_deposited_file_is_served_to_its_depositor_before_any_bundle_holds_it(store: Path,
                                                                               tmp_path: Path) -> None:
    data = b'{"deposited": true}\n'
    with api_server(store, SPEC, tmp_path / "srv") as srv:
        fuuid, fversion, res = put_file(srv.url, upload(srv.url, data), content_type="application/json")
        assert res.status_code == 201, res.text
        url = f"{srv.url}/v1/files/{fuuid}?version={fversion}"
        got = requests.get(url, headers=ALICE, timeout=30)
        assert got.status_code == 200 and got.content == data
        assert got.headers["X-DSS-SHA256"] == hashlib.sha256(data).hexdigest()
        assert got.headers["X-DSS-CREATOR-UID"] == "7" and got.headers["content-type"] == "application/json"
        head = requests.head(f"{srv.url}/v1/files/{fuuid}", headers=ALICE, timeout=30)
        assert head.status_code == 200 and head.headers["X-DSS-VERSION"] == fversion
        for other in (BOB, {}):  # to anyone else its bytes do not exist; its HEAD is polled
            assert requests.get(url, headers=other, timeout=30).status_code == 404
            polled = requests.head(url, headers=other, timeout=30)
            assert polled.status_code == 200 and not polled.content
        assert requests.get(url, headers=ADMIN, timeout=30).content == data


def test_a_put_retried_through_a_restarted_server_answers_200_for_the_deposited_upload(
        store: Path, tmp_path: Path) -> None:
    """The first PUT deposited the upload but its answer was lost, and the server came back on
    another port: the retry names the same upload by another URL, and gets 200, not 404."""
    data = b"deposited once\n"
    with api_server(store, SPEC, tmp_path / "first") as first:
        location = upload(first.url, data)
        fuuid, fversion, res = put_file(first.url, location)
        assert res.status_code == 201, res.text
    with api_server(store, SPEC, tmp_path / "second") as second:
        assert second.url != first.url
        moved = second.url + location[len(first.url):]
        again = requests.put(f"{second.url}/v1/files/{fuuid}?version={fversion}", headers=ALICE, timeout=60,
                             json={"creator_uid": 7, "source_url": moved})
        assert again.status_code == 200, again.text
        other = requests.put(f"{second.url}/v1/files/{fuuid}?version={version()}", headers=ALICE,
                             timeout=60, json={"creator_uid": 7, "source_url": moved})
        assert other.status_code == 404 and "start a new one" in other.json()["title"], other.text


def test_a_bundle_may_hold_files_of_another_dataset_the_writer_may_read(tmp_path: Path,
                                                                         tools_path: str) -> None:
    data = os.urandom(50_000)
    with isolated_home(tmp_path, tools_path):
        p = push_new(tmp_path / "store", tmp_path / "ds", {"raw/big.bin": data, "small.txt": b"in git?\n"})
        spec = SPEC | {"readers": {p.dataset_id: ["producers"]}}
        with api_server(p.store, spec, tmp_path / "srv") as srv:
            got = requests.get(f"{srv.url}/v1/bundles/{p.dataset_id}", headers=ALICE, timeout=30).json()
            files = {f["name"]: f for f in got["bundle"]["files"]}
            big = files["raw/big.bin"]
            buuid, bversion = str(uuidlib.uuid4()), version()
            res = put_bundle(srv.url, buuid, bversion, [entry("copied/big.bin", big["uuid"], big["version"])])
            assert res.status_code == 201, res.text
            assert put_bundle(srv.url, str(uuidlib.uuid4()), version(), [entry(
                "x.bin", big["uuid"], big["version"])], BOB).status_code in (401, 403)
        clone = tmp_path / "clone"
        run("datalad", "-l", "error", "clone", f"ria+file://{p.store}#{buuid}", clone)
        run("datalad", "-l", "error", "get", ".", cwd=clone)
        assert (clone / "copied/big.bin").read_bytes() == data
