"""Subscriptions, the outbox and signed webhook delivery, against a real receiver on 127.0.0.1.

`dss subscribe` and `dss deliver` run as real programs where it matters (retries across runs,
`kill -9`, the lock); events are made with `events.bundle_created` + `events.append` and queued
with `outbox.enqueue`, as the post-update hook does.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import itertools
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from conftest import PLAIN_DSID, require_tool, run
from webhook_receiver import Receiver, signature_ok

from dss_remote.config.delivery_policy import DeliveryPolicy
from dss_remote.config.store_config import read_config, write_config
from dss_remote.history import bundles, events
from dss_remote.history.events import Event
from dss_remote.webhooks import entry_file, outbox, subscriptions
from dss_remote.webhooks.deliverer import Deliverer
from ria_store.errors import ConfigError

SECRET = "s3cr3t-shared-with-the-receiver"
OTHER_DSID = "9f8e7d6c-5b4a-4c3d-8e2f-1a0b9c8d7e6f"


def dss(*args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return run(require_tool("dss"), *args, check=False, timeout=timeout)


def wait_for(condition: Callable[[], bool], what: str, limit: float = 60) -> None:
    """Poll until `condition` holds; fail naming `what` if it never does (a bound, not a timing)."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.05)


def make_event(store: Path, n: int, dsid: str = PLAIN_DSID) -> Event:
    version = bundles.format_version(datetime(2026, 11, 22, 3, 15, n, 123456, tzinfo=timezone.utc))
    event = events.bundle_created(dsid, version, f"{n:040x}", "refs/heads/main")
    events.append(store, event)
    return event


def subscribe(store: Path, url: str, *extra: str, secret: str = SECRET) -> str:
    secret_file = store.parent / f"secret-{uuid.uuid4().hex[:8]}"
    secret_file.write_text(secret + "\n")
    res = dss("subscribe", store, "--url", url, "--secret-file", secret_file, "--json", *extra)
    assert res.returncode == 0, res.stderr
    sub_id: str = json.loads(res.stdout)["id"]
    return sub_id


def set_policy(store: Path, schedule: tuple[float, ...], give_up_after: float,
               timeout: float = 10) -> None:
    cfg = read_config(store)
    write_config(store, dataclasses.replace(cfg, delivery=DeliveryPolicy(schedule, give_up_after, timeout)))


def pending(store: Path) -> list[entry_file.Entry]:
    return [entry_file.load_entry(p) for p in entry_file.pending_paths(store)]


def listing(store: Path) -> list[str]:
    return sorted(str(p.relative_to(store)) for p in (store / "dss").rglob("*"))


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(SECRET).start()
    yield r
    r.stop()


# --- subscriptions ------------------------------------------------------------------------------

def test_subscribe_writes_a_0600_file_and_never_shows_the_secret(store: Path, receiver: Receiver) -> None:
    sub_id = subscribe(store, receiver.url(), "--dataset", PLAIN_DSID, "--path", "raw/*.nii")
    path = store / "dss" / "subscriptions" / f"{sub_id}.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    saved = json.loads(path.read_text())
    assert saved["url"] == receiver.url() and saved["secret"] == SECRET
    assert saved["dataset"] == PLAIN_DSID and saved["path"] == "raw/*.nii"
    assert saved["created"].endswith("Z") and str(uuid.UUID(saved["id"])) == sub_id
    text = dss("subscriptions", "list", store)
    as_json = dss("subscriptions", "list", store, "--json")
    assert text.returncode == as_json.returncode == 0
    assert sub_id in text.stdout and "path=raw/*.nii" in text.stdout and "pending=0" in text.stdout
    assert json.loads(as_json.stdout) == [{k: v for k, v in saved.items() if k != "secret"} | {"pending": 0}]
    for out in (text.stdout + text.stderr, as_json.stdout + as_json.stderr):
        assert SECRET not in out


def test_subscriptions_list_hides_a_password_in_the_url(store: Path) -> None:
    subscribe(store, "https://hook:pa55word@ci.example.org/dss")
    res = dss("subscriptions", "list", store)
    assert res.returncode == 0 and "https://hook:***@ci.example.org/dss" in res.stdout
    assert "pa55word" not in res.stdout


def _refused(store: Path, args: list[str | Path], message: str) -> None:
    before = listing(store)
    res = dss("subscribe", store, *args)
    assert res.returncode == 1
    assert res.stderr.strip().splitlines() == [f"dss: error: {message}"]
    assert res.stdout == ""
    assert listing(store) == before  # nothing written


def test_subscribe_refuses_a_url_that_is_not_http(store: Path, tmp_path: Path) -> None:
    (tmp_path / "secret").write_text(SECRET)
    _refused(store, ["--url", "ftp://ci.example.org/hook", "--secret-file", tmp_path / "secret"],
             "webhook url 'ftp://ci.example.org/hook' must start with https:// or http:// (got ftp:); "
             "give e.g. https://ci.example.org/dss-hook")


def test_subscribe_refuses_a_url_without_host(store: Path, tmp_path: Path) -> None:
    (tmp_path / "secret").write_text(SECRET)
    _refused(store, ["--url", "https:///hook", "--secret-file", tmp_path / "secret"],
             "webhook url 'https:///hook' has no host; give e.g. https://ci.example.org/dss-hook")


def test_subscribe_refuses_a_missing_secret_file(store: Path, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-secret"
    _refused(store, ["--url", "https://ci.example.org/hook", "--secret-file", missing],
             f"secret file {missing} not found; write the shared secret there first "
             f"(e.g. `openssl rand -hex 32 > {missing}`)")


def test_subscribe_refuses_an_empty_secret_file(store: Path, tmp_path: Path) -> None:
    empty = tmp_path / "secret"
    empty.write_text("\n")
    _refused(store, ["--url", "https://ci.example.org/hook", "--secret-file", empty],
             f"secret file {empty} is empty; write the shared secret there "
             f"(e.g. `openssl rand -hex 32 > {empty}`)")


def test_subscribe_refuses_a_bad_dataset_id(store: Path, tmp_path: Path) -> None:
    (tmp_path / "secret").write_text(SECRET)
    _refused(store, ["--url", "https://ci.example.org/hook", "--secret-file", tmp_path / "secret",
                     "--dataset", "../../etc"],
             "invalid dataset id '../../etc': expected a DataLad dataset id like "
             "'4dc8313d-2567-4475-a4a0-17cdebad9c1d' (see `datalad.dataset.id` in .datalad/config)")


def test_subscriptions_delete_refuses_an_unknown_id(store: Path) -> None:
    kept = subscribe(store, "https://ci.example.org/hook")
    before = listing(store)
    unknown = str(uuid.uuid4())
    res = dss("subscriptions", "delete", store, unknown)
    assert res.returncode == 1
    assert res.stderr.strip().splitlines() == [
        f"dss: error: no subscription {unknown} in {store} (see `dss subscriptions list {store}`)"]
    assert listing(store) == before
    assert [s.id for s in subscriptions.load_all(store)] == [kept]


def test_subscriptions_delete_removes_the_file(store: Path) -> None:
    sub_id = subscribe(store, "https://ci.example.org/hook")
    res = dss("subscriptions", "delete", store, sub_id)
    assert res.returncode == 0 and res.stdout == f"deleted subscription {sub_id}\n"
    assert subscriptions.load_all(store) == []
    assert not (store / "dss" / "subscriptions" / f"{sub_id}.json").exists()


# --- enqueue and filters ------------------------------------------------------------------------

def test_enqueue_applies_dataset_and_path_filters(store: Path, receiver: Receiver) -> None:
    every = subscribe(store, receiver.url("/every"))
    ours = subscribe(store, receiver.url("/ours"), "--dataset", PLAIN_DSID)
    other = subscribe(store, receiver.url("/other"), "--dataset", OTHER_DSID)
    nifti = subscribe(store, receiver.url("/nifti"), "--path", "raw/*.nii")
    first, second = make_event(store, 1), make_event(store, 2)
    assert outbox.enqueue(store, first, ["raw/sub-01/anat.nii", "README"]) == 3
    assert outbox.enqueue(store, second, ["README"]) == 2
    queued = {(e.subscription_id, e.event.event_id) for e in pending(store)}
    assert queued == {(every, first.event_id), (ours, first.event_id), (nifti, first.event_id),
                      (every, second.event_id), (ours, second.event_id)}
    assert other not in {s for s, _ in queued}
    entry = entry_file.load_entry(entry_file.entry_path(store, every, first.event_id))
    assert entry.attempts == 0 and entry.event == first and entry.last_error is None
    namespace = entry_file.DELIVERY_NAMESPACE
    assert entry.delivery_id == str(uuid.uuid5(namespace, f"{every}/{first.event_id}"))

    res = dss("deliver", store, "--once")
    assert res.returncode == 0, res.stderr
    got = {(r.path, r.json["event_id"]) for r in receiver.accepted()}
    assert got == {("/every", first.event_id), ("/ours", first.event_id), ("/nifti", first.event_id),
                   ("/every", second.event_id), ("/ours", second.event_id)}
    assert pending(store) == []


def test_enqueue_with_no_subscriptions_writes_nothing(store: Path) -> None:
    before = listing(store)
    assert outbox.enqueue(store, make_event(store, 1), ["a"]) == 0
    assert [p for p in listing(store) if "outbox" in p] == [p for p in before if "outbox" in p] == []


def test_enqueue_twice_keeps_the_queued_entry(store: Path) -> None:
    sub_id = subscribe(store, "http://127.0.0.1:9/hook")
    event = make_event(store, 1)
    assert outbox.enqueue(store, event, []) == 1
    path = entry_file.entry_path(store, sub_id, event.event_id)
    first = path.read_bytes()
    assert outbox.enqueue(store, event, []) == 1
    assert path.read_bytes() == first
    assert len(pending(store)) == 1


def test_enqueue_imports_nothing_heavy() -> None:
    res = run(sys.executable, "-c", "import sys, dss_remote.hook.post_update, dss_remote.webhooks.outbox, "
              "dss_remote.webhooks.request, dss_remote.webhooks.deliverer; "
              "print(sorted({'requests', 'boto3', 'urllib3', 'google.cloud'} "
              "& set(sys.modules)))")
    assert res.stdout.strip() == "[]"


# --- the request ------------------------------------------------------------------------------

def test_delivery_is_a_signed_post_of_the_event(store: Path, receiver: Receiver) -> None:
    sub_id = subscribe(store, receiver.url())
    event = make_event(store, 7)
    outbox.enqueue(store, event, ["a.txt"])
    res = dss("deliver", store, "--once", "--json")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["delivered"] == 1 and report["pending"] == 0 and report["dead"] == []
    (got,) = receiver.requests
    delivery = str(uuid.uuid5(entry_file.DELIVERY_NAMESPACE, f"{sub_id}/{event.event_id}"))
    assert got.json == event.to_json() | {"subscription_id": sub_id, "delivery_id": delivery}
    assert got.headers["Content-Type"] == "application/json"
    assert got.headers["X-DSS-Event"] == "bundle.created"
    assert got.headers["X-DSS-Delivery"] == delivery
    # the signature is the HMAC-SHA256 of exactly these body bytes, and of nothing else
    expected = hmac.new(SECRET.encode(), got.body, hashlib.sha256).hexdigest()
    assert got.headers["X-DSS-Signature-256"] == f"sha256={expected}"
    tampered = got.body.replace(b"bundle.created", b"bundle.deleted")
    assert tampered != got.body
    assert not signature_ok(SECRET, tampered, got.headers["X-DSS-Signature-256"])
    assert not signature_ok("another secret", got.body, got.headers["X-DSS-Signature-256"])
    assert pending(store) == []


def test_a_wrong_secret_is_rejected_by_the_receiver_and_retried(store: Path, receiver: Receiver) -> None:
    set_policy(store, (0, 0, 60), give_up_after=3600)
    receiver.secret = "the receiver knows another secret"
    subscribe(store, receiver.url())
    outbox.enqueue(store, make_event(store, 1), [])
    first = dss("deliver", store, "--once")
    assert first.returncode == 0, first.stderr
    assert "delivered 0, failed attempts 1" in first.stdout
    (entry,) = pending(store)
    assert entry.attempts == 1 and entry.last_error is not None and "HTTP 401" in entry.last_error
    assert [r.answered for r in receiver.requests] == [401] and receiver.accepted() == []

    receiver.secret = SECRET  # the admins agree on the secret; the retry is accepted
    second = dss("deliver", store, "--once")
    assert second.returncode == 0 and "delivered 1" in second.stdout
    rejected, accepted = receiver.requests
    assert rejected.body == accepted.body and rejected.delivery_id == accepted.delivery_id
    assert rejected.headers["X-DSS-Signature-256"] == accepted.headers["X-DSS-Signature-256"]
    assert (rejected.headers["X-DSS-Attempt"], accepted.headers["X-DSS-Attempt"]) == ("1", "2")
    assert pending(store) == []


# --- retries, crashes, dead letters, quarantine ----------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_receiver_down_then_up_gets_each_event_once_after_retries(store: Path) -> None:
    set_policy(store, (0, 1, 1), give_up_after=3600)
    port = _free_port()
    subscribe(store, f"http://127.0.0.1:{port}/hook")
    sent = [make_event(store, n) for n in (1, 2, 3)]
    for event in sent:
        outbox.enqueue(store, event, [])
    deliverer = subprocess.Popen([require_tool("dss"), "deliver", str(store)], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
    receiver = Receiver(SECRET, port)
    try:
        wait_for(lambda: any(e.attempts >= 2 for e in pending(store)), "two failed attempts")
        assert "cannot connect" in (pending(store)[0].last_error or "")
        receiver.start()
        out, err = deliverer.communicate(timeout=120)
    finally:
        if deliverer.poll() is None:
            deliverer.kill()
            deliverer.communicate()
        receiver.stop()
    assert deliverer.returncode == 0, err
    assert "delivered 3" in out and "pending 0" in out
    assert "failed (attempt 1)" in err and "cannot connect" in err  # logged at warning
    # the first pass found all three due: one connection attempt, the other two not even tried
    assert err.count("failed (attempt 1): not sent, as this receiver just failed: ") == 2
    unique = receiver.unique_accepted()
    assert sorted(r.json["event_id"] for r in unique.values()) == [e.event_id for e in sent]
    assert len(receiver.accepted()) == 3  # exactly one accepted delivery per event
    assert pending(store) == []


def test_kill_9_mid_delivery_loses_nothing(store: Path, receiver: Receiver) -> None:
    set_policy(store, (0, 0, 60), give_up_after=3600, timeout=120)
    subscribe(store, receiver.url())
    sent = [make_event(store, n) for n in (1, 2, 3)]
    for event in sent:
        outbox.enqueue(store, event, [])
    before = {p: p.read_bytes() for p in entry_file.pending_paths(store)}
    receiver.hold = True
    deliverer = subprocess.Popen([require_tool("dss"), "deliver", str(store)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert receiver.arrived.wait(60), "the deliverer never sent its first request"
    finally:
        os.kill(deliverer.pid, signal.SIGKILL)
        deliverer.wait(60)
    receiver.hold = False
    receiver.release.set()
    assert deliverer.returncode == -signal.SIGKILL
    # nothing lost, nothing half-written
    assert {p: p.read_bytes() for p in entry_file.pending_paths(store)} == before

    again = dss("deliver", store)
    assert again.returncode == 0, again.stderr
    assert "delivered 3" in again.stdout
    unique = receiver.unique_accepted()
    assert sorted(r.json["event_id"] for r in unique.values()) == [e.event_id for e in sent]
    first_id = receiver.requests[0].delivery_id
    assert [r.delivery_id for r in receiver.requests].count(first_id) == 2  # resent, same id
    assert pending(store) == []


def test_dead_letter_after_the_schedule_then_retry_dead_resends(store: Path, receiver: Receiver) -> None:
    set_policy(store, (0, 0), give_up_after=0)
    receiver.status = 500
    sub_id = subscribe(store, receiver.url())
    event = make_event(store, 1)
    outbox.enqueue(store, event, [])
    res = dss("deliver", store)
    assert res.returncode == 1
    assert "dead 1" in res.stdout and "gave up after 2 attempts" in res.stdout
    assert len(receiver.requests) == 2 and pending(store) == []
    (failed,) = outbox.iter_failed(store)
    assert (failed.state, failed.subscription_id, failed.event_id, failed.attempts) == \
        ("dead", sub_id, event.event_id, 2)
    assert failed.reason.startswith("gave up after 2 attempts")
    assert failed.last_error == f"{receiver.url()}: HTTP 500 Internal Server Error: no"
    assert failed.path == store / "dss" / "outbox-dead" / sub_id / f"{event.event_id}.json"

    receiver.status = 200
    again = dss("deliver", store, "--retry-dead")
    assert again.returncode == 0, again.stderr
    assert "requeued 1 dead letters, delivered 1" in again.stdout
    assert len(receiver.unique_accepted()) == 1
    assert list(outbox.iter_failed(store)) == [] and pending(store) == []


def test_a_corrupt_entry_is_quarantined_and_the_others_delivered(store: Path, receiver: Receiver) -> None:
    sub_id = subscribe(store, receiver.url())
    good = [make_event(store, n) for n in (1, 2)]
    for event in good:
        outbox.enqueue(store, event, [])
    sub_dir = store / "dss" / "outbox" / sub_id
    garbage = sub_dir / f"{make_event(store, 3).event_id}.json"
    garbage.write_text("{not json")
    missing_field = sub_dir / f"{make_event(store, 4).event_id}.json"
    doc = json.loads(entry_file.entry_path(store, sub_id, good[0].event_id).read_text())
    del doc["delivery_id"]
    missing_field.write_text(json.dumps(doc))

    res = dss("deliver", store, "--once")
    assert res.returncode == 1
    assert "delivered 2" in res.stdout and "quarantined 2" in res.stdout
    assert f"outbox entry {garbage} is corrupt" in res.stderr  # the warning
    assert sorted(r.json["event_id"] for r in receiver.accepted()) == [e.event_id for e in good]
    assert pending(store) == []
    failed = list(outbox.iter_failed(store))
    assert [(f.state, f.subscription_id, f.event_id) for f in failed] == [
        ("quarantined", sub_id, garbage.stem), ("quarantined", sub_id, missing_field.stem)]
    assert "missing ['delivery_id']" in failed[1].reason
    quarantine = store / "dss" / "outbox-quarantine" / sub_id
    assert (quarantine / garbage.name).read_text() == "{not json"
    reason = (quarantine / f"{garbage.name}.reason").read_text()
    assert reason.startswith(f"outbox entry {garbage} is corrupt")


def test_retry_dead_keeps_dead_letters_of_deleted_subscriptions(store: Path, receiver: Receiver) -> None:
    gone = subscribe(store, "http://127.0.0.1:9/hook")
    kept = subscribe(store, receiver.url())
    event = make_event(store, 1)
    assert outbox.enqueue(store, event, []) == 2
    assert dss("subscriptions", "delete", store, gone).returncode == 0
    for entry in pending(store):  # the other one is given up on too
        outbox.dead_letter(store, entry, "gave up for the test")
    res = dss("deliver", store, "--retry-dead")
    assert res.returncode == 0 and "requeued 1 dead letters, delivered 1" in res.stdout
    assert f"stays: subscription {gone} was deleted" in res.stderr
    assert [r.json["subscription_id"] for r in receiver.accepted()] == [kept]
    (left,) = outbox.iter_failed(store)
    assert (left.subscription_id, left.reason) == (gone, f"subscription {gone} was deleted")


def test_deleting_a_subscription_dead_letters_its_pending_entries(store: Path) -> None:
    sub_id = subscribe(store, "http://127.0.0.1:9/hook")
    sent = [make_event(store, n) for n in (1, 2)]
    for event in sent:
        outbox.enqueue(store, event, [])
    res = dss("subscriptions", "delete", store, sub_id)
    assert res.returncode == 0, res.stderr
    assert "moved 2 pending deliveries to dss/outbox-dead/" in res.stdout
    assert pending(store) == []
    failed = list(outbox.iter_failed(store))
    assert [(f.state, f.event_id, f.attempts, f.reason) for f in failed] == [
        ("dead", e.event_id, 0, f"subscription {sub_id} was deleted") for e in sent]


def test_a_running_deliverer_dead_letters_entries_of_a_deleted_subscription(store: Path) -> None:
    sub_id = subscribe(store, "http://127.0.0.1:9/hook")
    event = make_event(store, 1)
    outbox.enqueue(store, event, [])
    lock = outbox.DeliverLock(store)  # stands for a deliverer at work
    assert lock.try_acquire()
    try:
        res = dss("subscriptions", "delete", store, sub_id)
        assert res.returncode == 0 and "the running `dss deliver` moves its 1 pending" in res.stdout
        assert len(pending(store)) == 1
    finally:
        lock.release()
    res = dss("deliver", store, "--once")
    assert res.returncode == 1 and "dead 1" in res.stdout
    (failed,) = outbox.iter_failed(store)
    assert failed.reason == f"subscription {sub_id} was deleted" and failed.event_id == event.event_id


# --- one deliverer per store, and nothing stranded -----------------------------------------------

def test_a_second_deliverer_exits_at_once(store: Path) -> None:
    subscribe(store, "http://127.0.0.1:9/hook")
    outbox.enqueue(store, make_event(store, 1), [])
    before = {p: p.read_bytes() for p in entry_file.pending_paths(store)}
    lock = outbox.DeliverLock(store)
    assert lock.try_acquire()
    try:
        res = dss("deliver", store)
        assert res.returncode == 0, res.stderr
        assert res.stdout.strip() == (f"another `dss deliver` is running (pid {os.getpid()} on "
                                      f"{socket.gethostname()}); it delivers the new entries too")
        assert outbox.spawn_deliverer(store) is None
    finally:
        lock.release()
    assert {p: p.read_bytes() for p in entry_file.pending_paths(store)} == before


@pytest.mark.parametrize("once", [False, True])
def test_an_entry_enqueued_while_the_deliverer_finishes_is_not_stranded(
        store: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch, once: bool) -> None:
    sub_id = subscribe(store, receiver.url())
    first, late = make_event(store, 1), make_event(store, 2)
    outbox.enqueue(store, first, [])
    real_release = outbox.DeliverLock.release
    spawned: list[object] = []

    def release_after_a_push(self: outbox.DeliverLock) -> None:
        # The worst moment: the deliverer found nothing left and is about to let go of the lock
        # when a push enqueues an event and tries to start a deliverer of its own.
        if self.held and not spawned:
            assert pending(store) == []
            assert outbox.enqueue(store, late, []) == 1
            spawned.append(outbox.spawn_deliverer(store))
        real_release(self)

    monkeypatch.setattr(outbox.DeliverLock, "release", release_after_a_push)
    report = Deliverer(store, DeliveryPolicy(), once=once).run()
    assert spawned == [None]  # the push found the lock taken and started nothing
    assert report.delivered == 2 and report.pending == 0
    assert sorted(r.json["event_id"] for r in receiver.accepted()) == [first.event_id, late.event_id]
    assert {r.json["subscription_id"] for r in receiver.accepted()} == {sub_id}
    assert pending(store) == []


def test_spawn_deliverer_runs_detached_without_path(store: Path, receiver: Receiver,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    subscribe(store, receiver.url())
    event = make_event(store, 1)
    outbox.enqueue(store, event, [])
    monkeypatch.setenv("PATH", "/nonexistent")  # the hook's environment may lack our bin dir
    receiver.hold = True  # keep the child busy while we look at it
    proc = outbox.spawn_deliverer(store)
    assert proc is not None
    try:
        assert receiver.arrived.wait(60), "the spawned deliverer never sent its request"
        assert os.getsid(proc.pid) == proc.pid  # its own session: the push's ^C or hangup spares it
        assert proc.stdin is proc.stdout is proc.stderr is None  # nothing tied to the hook's pipes
        receiver.hold = False
        receiver.release.set()
        assert proc.wait(120) == 0
    finally:
        receiver.hold = False
        receiver.release.set()
        if proc.poll() is None:  # a deliverer that failed to finish would retry for days
            proc.kill()
            proc.wait()
    assert [r.json["event_id"] for r in receiver.accepted()] == [event.event_id]
    log = (store / "dss" / "logs" / "deliver.log").read_text()
    assert f"delivered event {event.event_id}" in log and "delivered 1" in log
    assert pending(store) == []


def test_python_m_dss_remote_cli_is_dss() -> None:
    res = run(sys.executable, "-m", "dss_remote.cli", "deliver", "--help")
    assert "usage: dss deliver" in res.stdout and "--retry-dead" in res.stdout


# --- the schedule and its configuration -----------------------------------------------------------

def test_default_schedule_retries_for_seven_days() -> None:
    policy = DeliveryPolicy()
    times = [0.0]
    while (nxt := policy.next_attempt(len(times), times[-1], times[0])) is not None:
        times.append(nxt)
    assert times[:6] == [0, 60, 660, 4260, 25860, 47460]
    assert {b - a for a, b in itertools.pairwise(times[4:])} == {21600}
    assert times[-1] <= 7 * 86400 < times[-1] + 21600
    assert len(times) == 31


def test_store_config_delivery_section_round_trips(store: Path) -> None:
    set_policy(store, (0, 1.5, 30), give_up_after=120, timeout=5)
    saved = json.loads((store / "dss" / "config.json").read_text())
    assert saved["delivery"] == {"schedule": [0, 1.5, 30], "give_up_after": 120, "timeout": 5}
    assert read_config(store).delivery == DeliveryPolicy((0, 1.5, 30), 120, 5)
    set_policy(store, DeliveryPolicy().schedule, DeliveryPolicy().give_up_after)
    assert "delivery" not in json.loads((store / "dss" / "config.json").read_text())


def test_store_config_refuses_a_bad_delivery_schedule(store: Path) -> None:
    path = store / "dss" / "config.json"
    path.write_text(json.dumps({"version": 1, "mirrors": [], "delivery": {"schedule": [0, -5]}}))
    with pytest.raises(ConfigError) as e:
        read_config(store)
    assert str(e.value) == (f"{path}: delivery schedule [0, -5] must be a list of 1 to 100 waits in "
                            "seconds (>= 0), e.g. [0, 60, 600, 3600, 21600]")
    res = dss("deliver", store)
    assert res.returncode == 1 and res.stderr.strip().splitlines() == [f"dss: error: {e.value}"]


def test_store_config_refuses_unknown_delivery_fields(store: Path) -> None:
    path = store / "dss" / "config.json"
    path.write_text(json.dumps({"version": 1, "mirrors": [], "delivery": {"retries": 3}}))
    with pytest.raises(ConfigError) as e:
        read_config(store)
    assert str(e.value) == (f"{path}: 'delivery' has unknown field(s) 'retries' (known: give_up_after, "
                            "schedule, timeout); remove them or upgrade dss-remote")


def test_deliver_schedule_flag_overrides_the_config(store: Path, receiver: Receiver) -> None:
    receiver.status = 503
    subscribe(store, receiver.url())
    outbox.enqueue(store, make_event(store, 1), [])
    res = dss("deliver", store, "--schedule", "0,0,0", "--give-up-after", "0")
    assert res.returncode == 1 and "gave up after 3 attempts" in res.stdout
    assert len(receiver.requests) == 3


def test_a_schedule_ending_in_0_needs_give_up_after_0(store: Path) -> None:
    path = store / "dss" / "config.json"
    path.write_text(json.dumps({"version": 1, "mirrors": [], "delivery": {"schedule": [0, 0]}}))
    with pytest.raises(ConfigError) as e:
        read_config(store)
    assert str(e.value) == (f"{path}: a delivery schedule ending in 0 would retry without pause until "
                            "give_up_after; end it with a wait > 0 or set give_up_after to 0")
    path.write_text(json.dumps({"version": 1, "mirrors": []}))
    res = dss("deliver", store, "--schedule", "0,0")
    assert res.returncode == 1
    assert res.stderr.strip().splitlines() == [
        "dss: error: --schedule/--give-up-after with the store's delivery config: a delivery schedule "
        "ending in 0 would retry without pause until give_up_after; end it with a wait > 0 or set "
        "give_up_after to 0"]


def test_deliver_refuses_a_bad_schedule_flag_as_usage_error(store: Path) -> None:
    res = dss("deliver", store, "--schedule", "0,soon")
    assert res.returncode == 2
    assert ("argument --schedule: --schedule: delivery schedule '0,soon' must be a list of 1 to 100 "
            "waits in seconds (>= 0)") in res.stderr
