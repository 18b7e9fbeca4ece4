"""DSS checksums end to end: `git annex copy --to` our remote records them; `dss checksums` fills in
a store DataLad's ORA wrote (loose keys, then the same keys packed by `export-archive-ora`) and
`--verify` catches a tampered record."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import google_crc32c
from conftest import SAMPLE, annex_keys, require_tool, run
from test_interop_ora import publish_with_ora

from dss_remote.admin.sibling import Sibling, create_sibling
from dss_remote.config import paths
from dss_remote.replication.key_checksums import KeyChecksums, read, record_path


def expected(data: bytes) -> KeyChecksums:
    """By hashlib and google-crc32c directly; every SAMPLE file is one S3 part (ETag = MD5)."""
    return KeyChecksums(len(data), hashlib.sha256(data).hexdigest(), hashlib.sha1(data).hexdigest(),
                        f"{google_crc32c.value(data):08x}", hashlib.md5(data).hexdigest())


def dss(*args: str | Path, check: bool = True) -> tuple[int, str, str]:
    res = run(require_tool("dss"), *args, check=check)
    return res.returncode, res.stdout, res.stderr


def assert_recorded(store: Path, dsid: str, keys: dict[str, str]) -> None:
    for path, key in keys.items():
        assert read(store, dsid, key) == expected(SAMPLE[path]), path


def test_annex_copy_to_our_remote_records_every_key(store: Path, dataset: Path) -> None:
    require_tool("git-annex-remote-dss")
    sib = create_sibling(dataset, "store", f"ria+file://{store}")
    keys = annex_keys(dataset)
    assert not (store / paths.CHECKSUMS).exists()
    out = run("git", "annex", "copy", "--to", sib.storage_remote, "--json", ".", cwd=dataset).stdout
    assert out.count('"success":true') == len(SAMPLE)
    assert_recorded(store, sib.dataset_id, keys)
    # nothing left to do for `dss checksums`
    _, out, _ = dss("checksums", store, "--json")
    doc = json.loads(out)
    assert (doc["computed"], doc["already"], doc["failed"], doc["problems"]) == (0, len(SAMPLE), 0, [])


def test_dss_checksums_fills_in_a_store_ora_wrote_loose_then_archived(dataset: Path, tmp_path: Path) -> None:
    store, dsid = publish_with_ora(dataset, tmp_path)
    keys = annex_keys(dataset)
    assert not (store / paths.CHECKSUMS).exists()
    _, out, err = dss("checksums", store)
    assert out == ""
    assert err.strip() == (f"checksums: 1 dataset(s), {len(SAMPLE)} computed, 0 already there, "
                           "0 verified, 0 mismatched, 0 failed")
    assert_recorded(store, dsid, keys)
    _, out, _ = dss("checksums", store, "--dataset", dsid, "--json")
    assert json.loads(out)["already"] == len(SAMPLE)

    # the same keys, packed by DataLad and only in the archive: read through the archive reader
    dsdir = store / dsid[:3] / dsid[3:]
    run("datalad", "-l", "error", "export-archive-ora", dsdir / "archives", cwd=dataset)
    shutil.move(dsdir / "annex" / "objects", tmp_path / "objects.removed")
    shutil.rmtree(store / paths.CHECKSUMS)
    _, out, _ = dss("checksums", store, "--json")
    doc = json.loads(out)
    assert (doc["computed"], doc["already"], doc["failed"]) == (len(SAMPLE), 0, 0)
    assert_recorded(store, dsid, keys)


def test_dss_checksums_verify_catches_a_tampered_record(published: Sibling, store: Path,
                                                         dataset: Path) -> None:
    keys = annex_keys(dataset)
    assert_recorded(store, published.dataset_id, keys)  # written by the remote during the push
    _, out, _ = dss("checksums", store, "--verify", "--dataset", "~sample", "--json")
    doc = json.loads(out)
    assert (doc["verified"], doc["mismatch"], doc["problems"]) == (len(SAMPLE), 0, [])

    key = keys["small.txt"]
    path = record_path(store, published.dataset_id, key)
    tampered = path.read_text().replace(expected(SAMPLE["small.txt"]).sha1, "0" * 40)
    os.chmod(path, 0o644)
    path.write_text(tampered)
    code, out, err = dss("checksums", store, "--verify", check=False)
    assert code == 1
    assert out.splitlines() == [
        f"mismatch\t{published.dataset_id}\t{key}\trecord {path}: sha1 differ from the content's; "
        f"delete it and run `dss checksums {store} --dataset {published.dataset_id}`"]
    assert err.strip() == (f"checksums: 1 dataset(s), 0 computed, 0 already there, {len(SAMPLE) - 1} "
                           "verified, 1 mismatched, 0 failed")
    assert path.read_text() == tampered  # reported, left for the admin
    # without --verify, the tampered record is simply there
    assert dss("checksums", store)[0] == 0


def test_dss_checksums_unknown_alias_is_an_error(published: Sibling, store: Path) -> None:
    code, out, err = dss("checksums", store, "--dataset", "~nope", check=False)
    assert code == 1
    assert out == ""
    assert err.startswith("dss: error: ") and "nope" in err
    assert len(err.strip().splitlines()) == 1
