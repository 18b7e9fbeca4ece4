"""`dss gc` and the write API's file pool: deposits and unfinished direct uploads older than the
grace period go (a dry run only lists them); fresh ones stay; a bundle naming a collected deposit
is told to deposit it again, while one already in a dataset is still written from the dataset."""

from __future__ import annotations

import json
import os
import time
import uuid as uuidlib
from pathlib import Path

import requests
from api_server import api_server
from conftest import dss
from test_write_api import ALICE, SPEC, TUS, deposit, entry, put_bundle, version

from dss_remote.config import paths

MONTH = 31 * 86400


def _age(path: Path, seconds: int) -> None:
    old = time.time() - seconds
    os.utime(path, (old, old))


def test_gc_empties_the_file_pool_of_old_deposits_and_uploads_only(store: Path, tmp_path: Path) -> None:
    with api_server(store, SPEC, tmp_path / "srv") as srv:
        bundled, abandoned, fresh = (deposit(srv.url, b"in a bundle\n"), deposit(srv.url, b"never bundled\n"),
                                     deposit(srv.url, b"just now\n"))
        buuid = str(uuidlib.uuid4())
        assert put_bundle(srv.url, buuid, version(), [entry("kept.txt", *bundled)]).status_code == 201
        res = requests.post(f"{srv.url}/v1/uploads", headers=ALICE | TUS | {"Upload-Length": "10"},
                            timeout=30)
        stale_upload = res.headers["Location"].rsplit("/", 1)[1]
        objects = sorted((store / paths.FILE_POOL / "objects").glob("*/*/*"))
        assert len(objects) == 3
        fresh_key = next(p for p in objects if p.read_bytes() == b"just now\n")
        for p in objects:
            if p != fresh_key:
                _age(p, MONTH)
        _age(store / paths.UPLOADS / f"{stale_upload}.part", MONTH)

        code, out, err = dss("gc", store, "--dry-run", "--json")
        assert code == 0, err
        pool = json.loads(out)["file_pool"]
        assert len(pool["objects"]) == 2 and pool["uploads"] == [stale_upload]
        # a dry run removes nothing
        assert len(list((store / paths.FILE_POOL / "objects").glob("*/*/*"))) == 3

        code, out, err = dss("gc", store)
        assert code == 0 and "file pool: 2 deposited object(s)" in out, out + err
        assert [p.name for p in (store / paths.FILE_POOL / "objects").glob("*/*/*")] == [fresh_key.name]
        assert not (store / paths.UPLOADS / f"{stale_upload}.json").exists()
        gone = requests.head(f"{srv.url}/v1/uploads/{stale_upload}", headers=ALICE | TUS, timeout=30)
        assert gone.status_code == 404

        # a deposit already in a dataset is written from there; an abandoned one must come again
        assert put_bundle(srv.url, buuid, version(), [entry("kept.txt", *bundled),
                                                      entry("new.txt", *fresh)]).status_code == 201
        res = put_bundle(srv.url, buuid, version(), [entry("gone.txt", *abandoned)])
        assert res.status_code == 404 and "deposit it again" in res.json()["title"], res.text
