"""Publishing an event (queue its deliveries, then journal it), as the hook and `dss sync` do.

The hook's `notify` and the catch-up's `notify_missing` both go through `hook.publish.publish`;
a publish that could not queue leaves the event out of the journal, and the catch-up then
publishes it once the outbox is writable again.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from bare_repos import pushed_repo
from conftest import PLAIN_DSID

from dss_remote.config import paths
from dss_remote.history import bundle_store, events
from dss_remote.hook import catchup, post_update
from dss_remote.hook.publish import publish
from dss_remote.webhooks import entry_file, subscriptions
from ria_store.errors import WriteError

OTHER_DSID = "9f8e7d6c-5b4a-4c3d-8e2f-1a0b9c8d7e6f"
URL = "http://127.0.0.1:9/hook"


def recorded(store: Path, tmp_path: Path) -> bundle_store.Recorded:
    rec = bundle_store.record(store, PLAIN_DSID, pushed_repo(tmp_path), "refs/heads/main")
    assert rec is not None
    return rec


def event_of(rec: bundle_store.Recorded) -> events.Event:
    head = rec.manifest.head
    return events.bundle_created(head.dataset_id, head.version, head.commit, head.ref)


def test_publishing_queues_for_matching_subscribers_then_journals(store: Path) -> None:
    mine = subscriptions.create(store, URL, "secret", dataset=PLAIN_DSID)
    subscriptions.create(store, URL, "secret", dataset=OTHER_DSID)
    event = events.bundle_created(PLAIN_DSID, "2026-11-22T031533.000001Z", "a" * 40, "refs/heads/main")
    assert publish(store, event, ["a.txt"]) == 1
    assert [p.parent.name for p in entry_file.pending_paths(store)] == [mine.id]
    assert events.load(events.event_path(store, event.event_id)) == event
    assert publish(store, event, ["a.txt"]) == 1, "publishing again changes nothing"
    assert len(entry_file.pending_paths(store)) == 1


def test_the_hook_publishes_a_recorded_version(store: Path, tmp_path: Path) -> None:
    sub = subscriptions.create(store, URL, "secret")
    rec = recorded(store, tmp_path)
    result = post_update.HookResult(store, PLAIN_DSID)
    post_update.notify(store, rec, result)
    event = event_of(rec)
    assert result.queued == 1 and result.events == [event]
    assert entry_file.load_entry(entry_file.entry_path(store, sub.id, event.event_id)).event == event
    assert events.event_path(store, event.event_id).is_file()


def test_an_outbox_that_cannot_be_written_keeps_the_event_out_of_the_journal(store: Path,
                                                                              tmp_path: Path) -> None:
    sub = subscriptions.create(store, URL, "secret")
    rec = recorded(store, tmp_path)
    blocker = store / paths.OUTBOX
    blocker.write_text("not a directory\n")
    event = event_of(rec)
    result = post_update.HookResult(store, PLAIN_DSID)
    with pytest.raises(WriteError) as e:
        post_update.notify(store, rec, result)
    target = entry_file.entry_path(store, sub.id, event.event_id)
    assert str(e.value) == (f"event {event.event_id}: 1 webhook deliveries not queued ({target}: write "
                            "failed (File exists)); fix dss/outbox (permissions, space), then `dss sync` "
                            "queues it again")
    assert not events.event_path(store, event.event_id).exists()
    assert result.queued == 0 and result.events == []
    assert blocker.read_text() == "not a directory\n"


def test_catch_up_publishes_what_a_failed_publish_left_out(store: Path, tmp_path: Path) -> None:
    sub = subscriptions.create(store, URL, "secret")
    rec = recorded(store, tmp_path)
    (store / paths.OUTBOX).write_text("not a directory\n")
    with pytest.raises(WriteError):
        post_update.notify(store, rec, post_update.HookResult(store, PLAIN_DSID))
    (store / paths.OUTBOX).unlink()  # the admin fixed the outbox
    event = event_of(rec)
    out = catchup.CatchUp()
    catchup.notify_missing(store, PLAIN_DSID, out)
    assert out.notified == [event.event_id] and out.problems == []
    assert entry_file.load_entry(entry_file.entry_path(store, sub.id, event.event_id)).event == event
    assert events.load(events.event_path(store, event.event_id)) == event
    again = catchup.CatchUp()
    catchup.notify_missing(store, PLAIN_DSID, again)
    assert again.notified == [] and len(entry_file.pending_paths(store)) == 1
