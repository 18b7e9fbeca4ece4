"""One way to write UTC times (`...Z`), two ways read (`Z` and 0.1's `+00:00`), version ids unchanged.

The last tests record a version, publish it to a subscriber, fail and retry a delivery and dead-
letter it, then read every time field the store holds: each one ends in `Z`.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from bare_repos import pushed_repo
from conftest import PLAIN_DSID
from hypothesis import given
from hypothesis import strategies as st

from dss_remote.config import paths
from dss_remote.history import bundle_store, bundles, events, times
from dss_remote.hook.publish import publish
from dss_remote.webhooks import entry_file, outbox, subscriptions
from ria_store.errors import DssError

AWARE = st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1),
                     timezones=st.sampled_from([timezone.utc, timezone(timedelta(hours=5, minutes=30)),
                                                timezone(timedelta(hours=-8))]))
#: what 0.1 wrote for a version id (bundles.py, before the helper): must stay byte for byte
VERSION_0_1 = "%Y-%m-%dT%H%M%S.%fZ"


def test_a_time_is_written_in_utc_ending_in_z() -> None:
    when = datetime(2026, 11, 22, 4, 15, 33, 123456, tzinfo=timezone(timedelta(hours=1)))
    assert times.format_utc(when) == "2026-11-22T03:15:33.123456Z"
    assert times.format_utc(when, timespec="seconds") == "2026-11-22T03:15:33Z"
    assert times.format_utc(when.timestamp()) == "2026-11-22T03:15:33.123456Z"


def test_a_whole_second_keeps_its_microseconds() -> None:
    when = datetime(2026, 11, 22, 3, 15, 33, tzinfo=timezone.utc)
    assert times.format_utc(when) == "2026-11-22T03:15:33.000000Z"


def test_a_time_without_a_zone_is_refused_when_written() -> None:
    with pytest.raises(ValueError, match=r"^time 2026-11-22 03:15:33 has no time zone; give an aware"):
        times.format_utc(datetime(2026, 11, 22, 3, 15, 33))


@pytest.mark.parametrize("text", [
    "2026-11-22T03:15:33.123456Z",       # 0.2 on
    "2026-11-22T03:15:33.123456+00:00",  # manifests of 0.1
    "2026-11-22T03:15:33.123456z",
    "2026-11-22T04:15:33.123456+01:00",
    "2026-11-22T03:15:33.123456",        # no zone: UTC
])
def test_a_time_reads_with_z_or_an_offset(text: str) -> None:
    got = times.parse_utc(text)
    assert got == datetime(2026, 11, 22, 3, 15, 33, 123456, tzinfo=timezone.utc)
    assert got.utcoffset() == timedelta(0)


@pytest.mark.parametrize("text", ["", "Z", "yesterday", "2026-11-22T25:00:00Z", "2026-13-01T00:00:00Z"])
def test_a_bad_time_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        times.parse_utc(text)


@given(AWARE)
def test_a_written_time_reads_back(when: datetime) -> None:
    text = times.format_utc(when)
    assert text.endswith("Z") and "+" not in text
    assert times.parse_utc(text) == when
    assert times.parse_utc(text.removesuffix("Z") + "+00:00") == when


@given(AWARE)
def test_version_ids_are_byte_for_byte_what_0_1_wrote(when: datetime) -> None:
    assert bundles.format_version(when) == when.astimezone(timezone.utc).strftime(VERSION_0_1)


@given(st.from_regex(r"20[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3])[0-5][0-9]"
                     r"[0-5][0-9]\.[0-9]{6}Z", fullmatch=True))
def test_a_stored_version_id_reads_and_writes_back_unchanged(version: str) -> None:
    assert bundles.format_version(bundles.parse_version(version)) == version


def test_an_events_time_is_its_versions_time() -> None:
    event = events.bundle_created(PLAIN_DSID, "2026-11-22T031533.000001Z", "a" * 40, "refs/heads/main")
    assert event.time == "2026-11-22T03:15:33.000001Z"


@pytest.mark.parametrize(("since", "key"), [
    ("2026-11-22T03:15:33Z", "2026-11-22T031533.000000Z"),
    ("2026-11-22T03:15:33+00:00", "2026-11-22T031533.000000Z"),
    ("2026-11-22T04:15:33+01:00", "2026-11-22T031533.000000Z"),
    ("2026-11-22T03:15:33", "2026-11-22T031533.000000Z"),
    ("2026-11-22", "2026-11-22T000000.000000Z"),
    ("2026-11-22T25:15:33Z", None),
])
def test_events_since_a_time_in_either_form(since: str, key: str | None) -> None:
    if key is None:
        with pytest.raises(DssError, match=r"^--since '2026-11-22T25:15:33Z' is neither an event id nor a "
                                           r"time; give e\.g\. 2026-11-22T03:15:33Z"):
            events.since_key(since)
    else:
        assert events.since_key(since) == key


def _time_fields(obj: object, path: str = "") -> dict[str, str]:
    """Every string field of a JSON document that holds a time (not a version or event id)."""
    names = ("created", "time", "enqueued", "next_attempt", "first_attempt", "last_attempt", "dead_at")
    out: dict[str, str] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k in names and isinstance(v, str):
                out[f"{path}{k}"] = v
            out |= _time_fields(v, f"{path}{k}.")
    return out


def test_every_time_the_store_writes_ends_in_z(tmp_path: Path, store: Path) -> None:
    repo = pushed_repo(tmp_path)
    sub = subscriptions.create(store, "http://127.0.0.1:9/hook", "secret")
    rec = bundle_store.record(store, PLAIN_DSID, repo, "refs/heads/main")
    assert rec is not None
    event = events.bundle_created(PLAIN_DSID, rec.manifest.head.version, rec.manifest.head.commit,
                                  "refs/heads/main")
    assert publish(store, event, rec.changed) == 1
    entry = entry_file.load_entry(entry_file.entry_path(store, sub.id, event.event_id))
    entry_file.save(dataclasses.replace(entry, attempts=1, first_attempt=1.5e9, last_attempt=1.5e9,
                                        last_error="HTTP 500"))
    dead = outbox.dead_letter(store, entry_file.load_entry(entry.path), "test")
    files = [rec.path, events.event_path(store, event.event_id),
             subscriptions.subscription_path(store, sub.id), dead]
    found = {}
    for f, kind in zip(files, ("manifest", "event", "subscription", "dead letter"), strict=True):
        found |= {f"{kind} {k}": v for k, v in _time_fields(json.loads(f.read_bytes())).items()}
    assert sorted(found) == [
        "dead letter dead_at", "dead letter enqueued", "dead letter event.time", "dead letter first_attempt",
        "dead letter last_attempt", "dead letter next_attempt", "event time", "manifest created",
        "subscription created"]
    assert [k for k, v in found.items() if not v.endswith("Z") or "+00:00" in v] == []
    assert not (store / paths.OUTBOX / sub.id / f"{event.event_id}.json").exists()
