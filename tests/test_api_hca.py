"""End to end with the real `hca` client 7.0.1 against the API under uvicorn: paging a bundle of
more than 500 files and the bundle list, `hca dss download` of a bundle pushed with DataLad, and
get-file/head-file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from api_data import FILES, Pushed, copy_sample, isolated_home, push_new
from api_server import api_server
from conftest import run
from hca_client import run_hca

from dss_remote.history import bundle_store
from dss_remote.server import dss_mapping

pytest_plugins = ["hca_client"]

BIG = 520  # files: more than one page of 500


@pytest.mark.slow(70)
def test_hca_get_bundle_and_get_bundles_all_page_through_a_big_bundle(hca_venv: Path, tmp_path: Path,
                                                                     tools_path: str) -> None:
    with isolated_home(tmp_path, tools_path):
        files = {f"f/{i:04d}.txt": f"{i}\n".encode() for i in range(BIG)}
        # the bundle list pages only by git: no content needs to reach the store
        p = push_new(tmp_path / "store", tmp_path / "big", files, data="nothing")
        for i in range(11):  # more bundle versions than the smallest page of bundles/all
            run("git", "commit", "-q", "--allow-empty", "-m", f"empty {i}", cwd=p.dataset)
            run("git", "push", "-q", "store", "main", cwd=p.dataset)
        versions = bundle_store.versions(p.store, p.dataset_id)
    assert len(versions) == 12
    with api_server(p.store, {"public": [p.dataset_id]}, tmp_path / "srv") as srv:
        out = run_hca(hca_venv, tmp_path, srv.url, "dss", "get-bundle", "--uuid", p.dataset_id,
                      "--replica", "aws")
        bundle = json.loads(out.stdout)["bundle"]
        names = [f["name"] for f in bundle["files"]]
        assert bundle["version"] == versions[-1]
        assert len(names) == len(set(names)) == BIG + 3  # + .datalad/config, two .gitattributes
        assert set(files) <= set(names)
        listed = run_hca(hca_venv, tmp_path, srv.url, "dss", "get-bundles-all", "--replica", "aws",
                         "--per-page", "10")
        got = json.loads(listed.stdout)["bundles"]
        assert got == [{"uuid": p.dataset_id, "version": v} for v in versions]


def test_hca_download_of_a_datalad_pushed_bundle_equals_the_dataset(hca_venv: Path, tmp_path: Path,
                                                                    sample_template: Pushed) -> None:
    p: Pushed = copy_sample(sample_template, tmp_path / "data")
    with api_server(p.store, {"public": [p.dataset_id]}, tmp_path / "srv") as srv:
        target = tmp_path / "download"
        run_hca(hca_venv, tmp_path, srv.url, "dss", "download", "--bundle-uuid", p.dataset_id,
                "--replica", "aws", "--download-dir", str(target))
        fuuid = dss_mapping.file_uuid(p.dataset_id, "small.txt")
        got_file = run_hca(hca_venv, tmp_path, srv.url, "dss", "get-file", "--uuid", fuuid,
                           "--replica", "aws")
        assert "hello again" in got_file.stdout
        run_hca(hca_venv, tmp_path, srv.url, "dss", "head-file", "--uuid", fuuid, "--replica", "aws",
                "--version", p.versions[-1])
    bundle_dir = target / f"{p.dataset_id}.{p.versions[-1]}"
    got = {str(f.relative_to(bundle_dir)): f.read_bytes() for f in bundle_dir.rglob("*") if f.is_file()}
    manifest = json.loads(got.pop("bundle.json"))
    assert manifest["bundle"]["version"] == p.versions[-1]
    served = [f["name"] for f in manifest["bundle"]["files"]]
    assert sorted(got) == sorted(served)
    assert set(FILES) <= set(got)
    for name, data in got.items():
        assert data == (p.dataset / name).read_bytes(), name
