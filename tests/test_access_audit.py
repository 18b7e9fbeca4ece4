"""The audit log: one JSON line per record in a daily 0600 file; a full disk or an unwritable
directory is a warning, never an exception."""

from __future__ import annotations

import json
import logging
import stat
from datetime import datetime, timezone
from pathlib import Path

import pytest

from dss_remote.access import audit

WHEN = datetime(2026, 12, 3, 23, 59, 59, 123456, tzinfo=timezone.utc)
RECORD = {"identity": "alice", "remote": "127.0.0.1", "method": "GET", "path": "/v1/bundles/x",
          "dataset": "x", "status": 403}


def test_a_record_is_one_json_line_in_the_utc_days_file(store: Path) -> None:
    assert audit.append(store, RECORD, now=WHEN)
    assert audit.append(store, {"identity": None, "status": 401, "extra": "kept"}, now=WHEN)
    f = store / "dss/audit/2026-12-03.jsonl"
    lines = f.read_text().splitlines()
    assert [json.loads(x) for x in lines] == [
        {"time": "2026-12-03T23:59:59.123456Z"} | RECORD,
        {"time": "2026-12-03T23:59:59.123456Z", "identity": None, "remote": None, "method": None,
         "path": None, "dataset": None, "status": 401, "extra": "kept"}]
    assert list(json.loads(lines[0])) == ["time", "identity", "remote", "method", "path", "dataset", "status"]
    assert audit.read_day(store, "2026-12-03") == [json.loads(x) for x in lines]


def test_the_day_is_the_utc_day(store: Path) -> None:
    from datetime import timedelta
    local = WHEN.astimezone(timezone(timedelta(hours=5)))
    audit.append(store, RECORD, now=local)
    assert (store / "dss/audit/2026-12-03.jsonl").is_file()


def test_the_audit_file_is_0600_in_a_0700_dir(store: Path) -> None:
    audit.append(store, RECORD, now=WHEN)
    assert stat.S_IMODE((store / "dss/audit/2026-12-03.jsonl").stat().st_mode) == 0o600
    assert stat.S_IMODE((store / "dss/audit").stat().st_mode) == 0o700


def test_a_full_disk_is_a_warning_not_an_exception(store: Path, caplog: pytest.LogCaptureFixture) -> None:
    (store / "dss/audit").mkdir(mode=0o700)
    (store / "dss/audit/2026-12-03.jsonl").symlink_to("/dev/full")  # every write: ENOSPC
    with caplog.at_level(logging.WARNING, logger="dss_remote.access.audit"):
        assert audit.append(store, RECORD, now=WHEN) is False
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    assert message.startswith(f"audit record not written to {store}/dss/audit/2026-12-03.jsonl: ")
    assert "No space left on device" in message


def test_an_unwritable_audit_dir_is_a_warning_not_an_exception(store: Path,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    (store / "dss/audit").write_text("a file where the directory should be")
    with caplog.at_level(logging.WARNING, logger="dss_remote.access.audit"):
        assert audit.append(store, RECORD, now=WHEN) is False
    assert "Not a directory" in caplog.records[0].getMessage()
    assert (store / "dss/audit").read_text() == "a file where the directory should be"


def test_a_record_that_is_not_json_is_written_as_text(store: Path) -> None:
    assert audit.append(store, {"status": 200, "path": Path("/x")}, now=WHEN)
    assert audit.read_day(store, "2026-12-03")[0]["path"] == "/x"
