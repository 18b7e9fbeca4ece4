"""`dss bundles delete`: tombstones over versions DataLad pushed, their bundle.deleted events and
webhooks, what list/show/serve then show, `dss sync`'s catch-up, and each bad input."""

from __future__ import annotations

import json
import stat
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from api_data import Pushed, copy_sample
from cloud_servers import LoopbackServer, MirrorFixture, s3_admin_client
from conftest import require_tool, run
from fastapi.testclient import TestClient
from gate_double import GateDouble
from leftover_processes import wait_for_detached
from webhook_receiver import Receiver

from dss_remote.admin.store import add_mirror
from dss_remote.config.mirrors import Mirror
from dss_remote.history import bundle_store, events, tombstones
from dss_remote.server import dss_mapping
from dss_remote.server.app import create_app

SECRET = "tombstone-receiver-secret"


def dss(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return run(require_tool("dss"), *args, check=False, timeout=120)


@pytest.fixture
def pushed(tmp_path: Path, sample_template: Pushed) -> Pushed:
    return copy_sample(sample_template, tmp_path)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(SECRET).start()
    yield r
    r.stop()


def _tree(store: Path) -> dict[str, bytes]:
    return {str(p.relative_to(store)): p.read_bytes() for p in sorted(store.rglob("*"))
            if p.is_file() and ".lock" not in p.name}


def _listed(store: Path, *extra: str) -> list[dict[str, object]]:
    res = dss("bundles", "list", store, "--json", *extra)
    assert res.returncode == 0, res.stderr
    rows: list[dict[str, object]] = json.loads(res.stdout)
    return rows


def test_delete_one_version_writes_an_immutable_tombstone_and_an_event(pushed: Pushed) -> None:
    old, new = pushed.versions[0], pushed.versions[-1]
    res = dss("bundles", "delete", pushed.store, f"{pushed.dataset_id}@{old}", "--reason",
              "consent  withdrawn")
    assert res.returncode == 0, res.stderr
    assert res.stdout == f"deleted {pushed.dataset_id}@{old}: consent withdrawn\n"
    path = tombstones.path(pushed.store, pushed.dataset_id, old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o444
    doc = json.loads(path.read_bytes())
    assert (doc["format"], doc["version"], doc["reason"]) == ("dss-tombstone/1", old, "consent withdrawn")
    deleted = [e for e, _ in events.iter_events(pushed.store) if e and e.type == events.BUNDLE_DELETED]
    assert [(e.version, e.reason, e.event_id) for e in deleted] == [
        (old, "consent withdrawn", doc["event_id"])]
    # the created events keep their bytes: no empty reason added to them
    created = next(p for e, p in events.iter_events(pushed.store) if e and e.type == events.BUNDLE_CREATED)
    assert "reason" not in json.loads(created.read_bytes())
    # list and show leave it out; --all shows it, marked
    assert [r["version"] for r in _listed(pushed.store)] == [new]
    every = {r["version"]: r["deleted"] for r in _listed(pushed.store, "--all")}
    assert every[new] is None and every[old]["reason"] == "consent withdrawn"  # type: ignore[index]
    shown = dss("bundles", "show", pushed.store, f"{pushed.dataset_id}@{old}")
    assert shown.returncode == 1 and "was deleted" in shown.stderr and "`--all` shows it" in shown.stderr
    assert dss("bundles", "show", pushed.store, f"{pushed.dataset_id}@{old}", "--all").returncode == 0
    # the manifest stays (gc decides about content later)
    assert bundle_store.load(pushed.store, pushed.dataset_id, old).head.version == old


def test_delete_without_a_version_tombstones_every_live_version(pushed: Pushed) -> None:
    first = dss("bundles", "delete", pushed.store, f"{pushed.dataset_id}@{pushed.versions[0]}",
                "--reason", "a")
    assert first.returncode == 0, first.stderr
    res = dss("bundles", "delete", pushed.store, pushed.dataset_id, "--reason", "retracted", "--json")
    assert res.returncode == 0, res.stderr
    written = json.loads(res.stdout)
    assert [t["version"] for t in written] == pushed.versions[1:]
    assert _listed(pushed.store) == []
    ids = [e.event_id for e, _ in events.iter_events(pushed.store) if e and e.type == events.BUNDLE_DELETED]
    assert len(ids) == len(set(ids)) == len(pushed.versions)
    shown = dss("bundles", "show", pushed.store, pushed.dataset_id)
    assert shown.returncode == 1 and "every version of dataset" in shown.stderr


@pytest.mark.parametrize(("target", "reason", "message"), [
    ("{dsid}@2020-01-01T000000.000000Z", "x", "no bundle version {dsid}@2020-01-01T000000.000000Z"),
    ("{dsid}@yesterday", "x", "bad bundle version 'yesterday'"),
    ("{dsid}@{old}", "   ", "--reason is empty"),
    ("{dsid}@{old}", "x" * 1001, "--reason is 1001 characters long"),
    ("0badc0de-0000-4000-8000-000000000000", "x", "has no bundle versions"),
    ("~no-such-alias", "x", "no-such-alias"),
])
def test_delete_refuses_bad_input_and_changes_nothing(pushed: Pushed, target: str, reason: str,
                                                       message: str) -> None:
    before = _tree(pushed.store)
    fields = {"dsid": pushed.dataset_id, "old": pushed.versions[0]}
    res = dss("bundles", "delete", pushed.store, target.format(**fields), "--reason", reason)
    assert res.returncode == 1 and res.stdout == ""
    assert res.stderr.startswith("dss: error: ") and message.format(**fields) in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert _tree(pushed.store) == before


def test_deleting_a_dead_version_again_is_refused_naming_the_first_delete(pushed: Pushed) -> None:
    target = f"{pushed.dataset_id}@{pushed.versions[0]}"
    assert dss("bundles", "delete", pushed.store, target, "--reason", "typo in sample sheet").returncode == 0
    before = _tree(pushed.store)
    res = dss("bundles", "delete", pushed.store, target, "--reason", "again")
    assert res.returncode == 1 and "is already deleted" in res.stderr and "typo in sample sheet" in res.stderr
    assert _tree(pushed.store) == before


def test_subscribers_get_the_deletion_as_a_signed_webhook(pushed: Pushed, receiver: Receiver) -> None:
    secret_file = pushed.store.parent / f"secret-{uuid.uuid4().hex[:8]}"
    secret_file.write_text(SECRET + "\n")
    sub = dss("subscribe", pushed.store, "--url", receiver.url(), "--secret-file", secret_file)
    assert sub.returncode == 0, sub.stderr
    res = dss("bundles", "delete", pushed.store, f"{pushed.dataset_id}@{pushed.versions[0]}", "--reason",
              "wrong subject")
    assert res.returncode == 0, res.stderr
    assert receiver.arrived.wait(60), "no webhook arrived"
    wait_for_detached()
    got = [r for r in receiver.requests if r.json.get("type") == events.BUNDLE_DELETED]
    assert len(got) == 1 and got[0].signed_ok
    assert (got[0].json["reason"], got[0].json["version"]) == ("wrong subject", pushed.versions[0])


def test_dss_sync_writes_a_deletion_event_a_crash_left_out(pushed: Pushed) -> None:
    [t] = tombstones.bury(pushed.store, pushed.dataset_id, pushed.versions[0], reason="crash test",
                          who="admin")  # as if the process died before publishing
    assert not events.event_path(pushed.store, t.event_id).exists()
    res = dss("sync", pushed.store)
    assert res.returncode == 0, res.stderr
    event = events.load(events.event_path(pushed.store, t.event_id))
    assert (event.type, event.version, event.reason) == (events.BUNDLE_DELETED, t.version, "crash test")
    wait_for_detached()


def test_serve_stops_showing_a_deleted_version(pushed: Pushed, tmp_path: Path) -> None:
    gate = GateDouble({}, public={pushed.dataset_id})
    client = TestClient(create_app(pushed.store, gate, cache_dir=tmp_path / "cache"))
    dsid, old, new = pushed.dataset_id, pushed.versions[0], pushed.versions[-1]
    assert client.get(f"/v1/bundles/{dsid}", params={"version": old}).status_code == 200
    # a path whose content only the old version had ("small.txt" changed in the new one)
    fuuid = dss_mapping.file_uuid(dsid, "small.txt")
    assert client.get(f"/v1/files/{fuuid}", params={"version": old}).status_code == 200
    assert dss("bundles", "delete", pushed.store, f"{dsid}@{old}", "--reason", "gone").returncode == 0
    client.app.state.file_index.refresh(force=True)  # type: ignore[attr-defined]
    assert client.get(f"/v1/bundles/{dsid}", params={"version": old}).status_code == 404
    assert client.get(f"/v1/bundles/{dsid}").json()["bundle"]["version"] == new
    assert client.get(f"/v1/files/{fuuid}", params={"version": old}).status_code == 404
    assert client.get(f"/v1/files/{fuuid}").status_code == 200  # the live version's content
    kinds = [e["event_type"] for e in client.get("/v1/events").json()["events"]]
    assert kinds.count("TOMBSTONE") == 1
    # a rebuilt index answers the same
    fresh = TestClient(create_app(pushed.store, gate, cache_dir=tmp_path / "cache2"))
    assert fresh.get(f"/v1/bundles/{dsid}", params={"version": old}).status_code == 404
    assert fresh.get(f"/v1/files/{fuuid}", params={"version": old}).status_code == 404
    same = [client.get(f"/v1/bundles/{dsid}").json(), fresh.get(f"/v1/bundles/{dsid}").json()]
    assert same[0] == same[1]


def test_tombstones_reach_the_mirrors_like_manifests(pushed: Pushed, s3_mirror: MirrorFixture,
                                                     s3_server: LoopbackServer) -> None:
    add_mirror(pushed.store, Mirror(url=s3_mirror.url, name="s3", endpoint_url=s3_mirror.endpoint_url))
    synced = dss("sync", pushed.store)
    assert synced.returncode == 0, synced.stderr
    wait_for_detached()
    old = pushed.versions[0]
    res = dss("bundles", "delete", pushed.store, f"{pushed.dataset_id}@{old}", "--reason", "mirrored")
    assert res.returncode == 0 and res.stderr == "", res.stderr
    wait_for_detached()
    bucket = s3_admin_client(s3_server.alive().endpoint)
    rel = tombstones.path(pushed.store, pushed.dataset_id, old).relative_to(pushed.store)
    got = bucket.get_object(Bucket=s3_mirror.bucket, Key=f"lab/store/{rel}")["Body"].read()
    assert got == tombstones.path(pushed.store, pushed.dataset_id, old).read_bytes()
    t = tombstones.dead(pushed.store, pushed.dataset_id)[old]
    erel = events.event_path(pushed.store, t.event_id).relative_to(pushed.store)
    assert bucket.get_object(Bucket=s3_mirror.bucket, Key=f"lab/store/{erel}")["Body"].read() == \
        events.event_path(pushed.store, t.event_id).read_bytes()


def test_a_mirror_that_is_down_is_named_and_the_tombstone_still_written(
        pushed: Pushed, s3_mirror: MirrorFixture) -> None:
    add_mirror(pushed.store, Mirror(url=s3_mirror.url, name="s3", endpoint_url=s3_mirror.endpoint_url))
    assert s3_mirror.proxy is not None
    s3_mirror.proxy.down()
    res = dss("bundles", "delete", pushed.store, f"{pushed.dataset_id}@{pushed.versions[0]}", "--reason",
              "offline mirror")
    assert res.returncode == 0, res.stderr
    assert "dss: warning: s3: " in res.stderr and "run `dss sync" in res.stderr
    assert tombstones.is_dead(pushed.store, pushed.dataset_id, pushed.versions[0])
