"""kill -9 of `dss serve` during writes (issue 19): a direct upload and a PUT bundle, each at 20
random points. Afterwards no replica holds a partial key, the dataset's branch and its git-annex
branch are either untouched or hold the whole version, and the retried request succeeds.

The server (uvicorn, tests/api_server.py) is SIGKILLed alone or with its process group (then the
git it runs dies too), at a random time after the client's request started; what it had started is
waited for, the store is checked with the server down, then a new server over the same store
serves the retry. `DSS_TEST_KILL_SEED=N` replays a run (the seed is printed and in every failure)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
import uuid as uuidlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from cloud_servers import LoopbackServer, MirrorFixture, s3_admin_client
from conftest import dss, require_tool, run
from kill_points import Background, Servers, seeded, servers
from test_write_api import ALICE, SPEC, TUS, entry, put_bundle, upload, version

from dss_remote.admin.store import add_mirror
from dss_remote.config import paths
from dss_remote.config.mirrors import Mirror
from dss_remote.history import bundle_store
from dss_remote.service import file_pool
from ria_store import annex_branch, bare_repo, repo_write
from ria_store.errors import KeyFormatError
from ria_store.keys import parse_key, unsanitize_key
from ria_store.layout import OBJECTS_DIR, dataset_relpath

KILLS = 20
MAIN = "refs/heads/main"
ANNEX = "refs/heads/git-annex"
#: an upload's body: a few MiB in small chunks, so that kills land mid-body
UPLOAD_SIZE, CHUNK = 4 << 20, 64 << 10
#: files deposited for the bundle, and how many a new version of the existing dataset adds
BUNDLE_FILES, ADDED_FILES = 30, 3
#: datalad clone + get of the dataset every this many kills (and after the last)
CLONE_EVERY = 5


def _sha256_ok(key_name: str, data: bytes) -> bool:
    """Whether `data` is the content a SHA256E key names (its size and digest)."""
    key = parse_key(key_name)
    assert key.backend == "SHA256E", key_name
    return (key.size in (None, len(data)) and
            hashlib.sha256(data).hexdigest() == key.name.split(".", 1)[0])


def _key_named(path: str) -> str | None:
    """The key a file's name is, or None (a temp file)."""
    try:
        return parse_key(unsanitize_key(path.rsplit("/", 1)[-1])).text
    except KeyFormatError:
        return None


# -- upload -------------------------------------------------------------------------------------

def _pool_is_whole(store: Path) -> list[str]:
    """What a reader of the file pool could see wrong: a record without its object, or an object
    that is not the content its key names."""
    wrong = []
    pool = file_pool.pool_dir(store)
    for record_path in sorted((pool / "records").glob("*/*.json")):
        record = file_pool.FileRecord.from_json(json.loads(record_path.read_bytes()))
        obj = file_pool.object_path(store, record.key)
        if not obj.is_file():
            wrong.append(f"record {record_path.name} without its object {record.key}")
        elif hashlib.sha256(obj.read_bytes()).hexdigest() != record.checksums["sha256"]:
            wrong.append(f"record {record_path.name}: object {record.key} has other bytes")
    for obj in sorted(p for p in (pool / "objects").rglob("*") if p.is_file()):
        key = _key_named(obj.name)
        if key is None:
            wrong.append(f"a file that is no key among the pool's objects: {obj}")
        elif not _sha256_ok(key, obj.read_bytes()):
            wrong.append(f"pool object {key} does not have the content its key names")
    return wrong


def _chunks(data: bytes) -> Iterator[bytes]:
    for at in range(0, len(data), CHUNK):
        time.sleep(0.001)  # the body takes a while to arrive, as over a real network
        yield data[at:at + CHUNK]


def _patch(location: str, data: bytes, offset: int) -> requests.Response:
    return requests.patch(location, data=_chunks(data[offset:]), timeout=60, headers=ALICE | TUS | {
        "Content-Type": "application/offset+octet-stream", "Upload-Offset": str(offset)})


def _put_file(url: str, fuuid: str, fversion: str, source: str) -> requests.Response:
    return requests.put(f"{url}/v1/files/{fuuid}?version={fversion}", headers=ALICE, timeout=60,
                        json={"creator_uid": 7, "source_url": source})


@dataclass
class _Upload:
    """One client's upload: its bytes, its URL path, the file uuid and version it deposits."""

    data: bytes
    path: str
    fuuid: str
    fversion: str
    #: what the client was doing: PATCH, PUT or done (kills are reported with it)
    phase: str = "PATCH"

    def send(self, url: str) -> tuple[int, int | None]:
        """PATCH the whole body, then PUT /v1/files naming it: (PATCH status, PUT status)."""
        patched = _patch(url + self.path, self.data, 0)
        if patched.status_code != 204:
            return patched.status_code, None
        self.phase = "PUT"
        put = _put_file(url, self.fuuid, self.fversion, url + self.path).status_code
        self.phase = "done"
        return 204, put


def _start_upload(url: str, data: bytes) -> _Upload:
    res = requests.post(f"{url}/v1/uploads", headers=ALICE | TUS | {"Upload-Length": str(len(data))},
                        timeout=30)
    assert res.status_code == 201, res.text
    return _Upload(data, urlsplit(res.headers["Location"]).path, str(uuidlib.uuid4()), version())


def _resume(url: str, up: _Upload, answered: tuple[int, int | None] | None, where: str) -> None:
    """What a client does after the cut: HEAD, PATCH the rest from the server's offset, PUT the file."""
    if answered == (204, 201):
        return  # the client had its answer before the kill: nothing to retry
    head = requests.head(url + up.path, headers=ALICE | TUS, timeout=30)
    assert head.status_code in (200, 404), f"{where}: HEAD of the upload answered {head.status_code}"
    if head.status_code == 200:
        offset = int(head.headers["Upload-Offset"])
        assert 0 <= offset <= len(up.data), f"{where}: offset {offset}"
        if offset < len(up.data):
            res = _patch(url + up.path, up.data, offset)
            assert res.status_code == 204, f"{where}: the resumed PATCH from {offset}: {res.text}"
            assert res.headers["Upload-Offset"] == str(len(up.data)), where
    res = _put_file(url, up.fuuid, up.fversion, url + up.path)
    assert res.status_code in (200, 201), f"{where}: the retried PUT /v1/files: {res.status_code} {res.text}"


def test_a_kill_9_of_the_server_during_an_upload_loses_nothing_and_the_retry_succeeds(
        store: Path, tmp_path: Path) -> None:
    seed, rng = seeded("upload kills")
    with servers(store, SPEC, tmp_path / "srv") as srvs:
        url = srvs.start().url
        took = []
        for _ in range(3):
            timing = _start_upload(url, os.urandom(UPLOAD_SIZE))
            started = time.monotonic()
            assert timing.send(url) == (204, 201)
            took.append(time.monotonic() - started)
        full = sorted(took)[1]
        for i in range(KILLS):
            up = _start_upload(url, os.urandom(UPLOAD_SIZE))
            client = Background(lambda up=up, url=url: up.send(url))  # type: ignore[misc]
            delay = rng.uniform(0, full * 1.1)
            time.sleep(delay)
            how = srvs.kill(group=rng.random() < 0.5)
            answered = client.join()
            where = (f"seed {seed}, kill {i} of the {how} {delay:.3f}s into a {full:.3f}s upload, "
                     f"client in {up.phase} ({answered or client.error!r})")
            assert _pool_is_whole(store) == [], where
            print(where)  # DEBUG
            url = srvs.start().url
            _resume(url, up, answered, where)
            record = file_pool.lookup(store, up.fuuid, up.fversion)
            assert record is not None, where
            assert record.key == file_pool.key_for(hashlib.sha256(up.data).hexdigest(), len(up.data), ""), where
            assert file_pool.object_path(store, record.key).read_bytes() == up.data, where
            assert requests.head(url + up.path, headers=ALICE | TUS, timeout=30).status_code == 404, where
            assert _pool_is_whole(store) == [], where
