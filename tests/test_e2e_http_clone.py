"""A bucket that only the hook and `dss sync` filled is a RIA store: `datalad clone ria+http://` + get.

The bucket lives on moto_server; it is read with anonymous path-style GETs, allowed by a public-read
bucket policy on the store's prefix (as a real public mirror has). Without the policy moto answers
403 to an anonymous GET of a private object. (moto 5.2's server with IAM authentication on answers
500 to any anonymous request, policy or not, so this test uses the plain server.)
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from cloud_servers import LoopbackServer, MirrorFixture, s3_admin_client
from conftest import SAMPLE, require_tool, run
from leftover_processes import wait_for_detached

from dss_remote.admin.sibling import create_sibling
from dss_remote.admin.store import init_store
from dss_remote.config.mirrors import Mirror
from dss_remote.config.store_config import read_config
from ria_store.layout import dataset_relpath


def _anonymous_get(url: str) -> tuple[int, bytes]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _public_read(endpoint: str, bucket: str, prefix: str) -> None:
    policy = {"Version": "2012-10-17", "Statement": [{
        "Sid": "PublicRead", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{bucket}/{prefix}/*"}]}
    s3_admin_client(endpoint).put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))


def test_datalad_clone_and_get_from_a_bucket_over_http(s3_server: LoopbackServer, s3_mirror: MirrorFixture,
                                                       dataset: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    require_tool("datalad")
    prefix = s3_mirror.url.split("/", 3)[3]
    store = tmp_path / "store"
    init_store(store, [Mirror(s3_mirror.url, "s3", endpoint_url=s3_mirror.endpoint_url)])
    assert read_config(store).mirrors
    sib = create_sibling(dataset, "store", f"ria+file://{store}")
    run("datalad", "-l", "error", "push", "--to", "store", cwd=dataset)
    run("dss", "sync", store)
    http_store = f"{s3_server.endpoint}/{s3_mirror.bucket}/{prefix}"
    ds_url = f"{http_store}/{dataset_relpath(sib.dataset_id)}"
    # Anonymous reads are refused until the bucket says otherwise.
    assert _anonymous_get(f"{ds_url}/HEAD")[0] == 403
    _public_read(s3_server.endpoint, s3_mirror.bucket, prefix)
    status, head = _anonymous_get(f"{ds_url}/HEAD")
    assert (status, head) == (200, b"ref: refs/heads/main\n")
    assert _anonymous_get(f"{ds_url}/hooks/post-update")[0] in (403, 404), "hooks never leave the store"
    status, log = _anonymous_get(f"{http_store}/dss/bundles/{sib.dataset_id}/log.jsonl")
    assert status == 200
    version = json.loads(log.splitlines()[-1])["version"]
    status, manifest = _anonymous_get(f"{http_store}/dss/bundles/{sib.dataset_id}/{version}.json")
    assert status == 200 and json.loads(manifest)["dataset_id"] == sib.dataset_id

    wait_for_detached()  # a push's detached `dss sync` would recreate the store's dss/
    os.rename(store, tmp_path / "store-unmounted")  # only the bucket is left to read from
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)  # a reader of a public mirror has no credentials
    clone = tmp_path / "clone"
    run("datalad", "-l", "error", "clone", f"ria+{http_store}#{sib.dataset_id}", clone)
    run("datalad", "-l", "error", "get", ".", cwd=clone)
    for rel, data in SAMPLE.items():
        assert (clone / rel).read_bytes() == data
