"""A deposit is on every replica when `PUT /v1/files` answers: the pool object goes to each
writable mirror (under the same `dss/files/objects/...` path) before its record makes it visible;
a mirror that cannot take it fails the deposit under write_quorum "all" (nothing visible), and
`dss gc` removes old pool objects from the mirrors too."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from api_server import api_server
from conftest import dss
from test_write_api import SPEC, put_file, upload

from dss_remote.admin.store import add_mirror
from dss_remote.config import paths
from dss_remote.config.mirrors import Mirror
from dss_remote.service import file_pool


def test_a_deposit_is_on_the_mirror_before_it_is_answered_and_gc_removes_it_there(
        store: Path, tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    add_mirror(store, Mirror(url=f"file://{mirror}", name="backup"))
    data = os.urandom(10_000)
    with api_server(store, SPEC, tmp_path / "srv") as srv:
        fuuid, fversion, res = put_file(srv.url, upload(srv.url, data))
        assert res.status_code == 201, res.text
    record = file_pool.lookup(store, fuuid, fversion)
    assert record is not None
    local = file_pool.object_path(store, record.key)
    remote = mirror / local.relative_to(store)
    assert remote.read_bytes() == data
    assert not (mirror / paths.FILE_POOL / "records").exists(), "records never leave the store"
    old = time.time() - 40 * 86400
    os.utime(local, (old, old))
    code, out, err = dss("gc", store, "--json")
    assert code == 0, err
    assert [o["key"] for o in json.loads(out)["file_pool"]["objects"]] == [record.key]
    assert not remote.exists() and not local.exists()


def test_a_mirror_that_cannot_take_the_deposit_fails_it_and_nothing_is_visible(store: Path,
                                                                               tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    add_mirror(store, Mirror(url=f"file://{mirror}", name="broken"))
    shutil.rmtree(mirror)
    mirror.write_text("a file where the mirror's directory was\n")
    with api_server(store, SPEC, tmp_path / "srv") as srv:
        fuuid, fversion, res = put_file(srv.url, upload(srv.url, b"needs two replicas\n"))
        assert res.status_code in (503, 400), res.text
        title = res.json()["title"]
        assert "[broken]" in title and "write_quorum" in title and "\n" not in title
    assert file_pool.lookup(store, fuuid, fversion) is None
