"""`ria_store.listing.list_dir` and the store listings built on it: a missing directory is empty,
an unreadable one is a one-line DssError naming it.

An unreadable directory is a real one (mode 000) read by a real unprivileged process: the listing
runs in a forked child, as `nobody` when the tests run as root (root reads any directory).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from dss_remote.config import paths
from dss_remote.history import bundle_store, events
from dss_remote.webhooks import entry_file, subscriptions
from ria_store.errors import DssError, UnavailableError
from ria_store.listing import list_dir

DSID = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
NOBODY = 65534
LISTINGS: dict[str, Callable[[Path], object]] = {
    "versions": lambda p: bundle_store.versions(p, DSID),
    "datasets": bundle_store.datasets,
    "subscription ids": lambda p: sorted(subscriptions.ids(p)),
    "events": lambda p: [str(e) for e in events.iter_events(p)],
    "outbox entries": lambda p: [str(e) for e in entry_file.pending_paths(p)],
}


def list_unprivileged(cwd: Path, listing: Callable[[Path], object], rel: str) -> dict[str, object]:
    """Run `listing(rel)` in a forked child that cannot read mode-000 directories (it drops to
    `nobody` when we are root); the child enters `cwd` first, so it needs no access above it.
    (A fork, not a new interpreter: `nobody` may not be allowed to run this one.)"""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 0
        try:
            os.close(read_end)
            os.chdir(cwd)
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(NOBODY)
                os.setuid(NOBODY)
            try:
                out: dict[str, object] = {"ok": listing(Path(rel))}
            except DssError as e:
                out = {"error": type(e).__name__, "message": str(e)}
            os.write(write_end, json.dumps(out).encode())
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0 and data, "the unprivileged child failed"
    result: dict[str, object] = json.loads(data)
    return result


def unreadable(directory: Path) -> Path:
    directory.mkdir(parents=True)
    (directory / "kept.json").write_text("{}\n")
    directory.chmod(0o000)
    return directory


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A store root the unprivileged child can enter (the directories below decide what it reads)."""
    root = tmp_path / "store"
    root.mkdir()
    root.chmod(0o755)
    return root


def restore(directory: Path) -> None:
    directory.chmod(0o755)
    assert [p.name for p in directory.iterdir()] == ["kept.json"], "a listing must not change anything"


def test_a_missing_directory_lists_as_empty(tmp_path: Path) -> None:
    assert list_dir(tmp_path / "never" / "made") == []
    assert not (tmp_path / "never").exists()


def test_a_directory_lists_sorted_with_hidden_names(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    for name in ("b", ".lock", "a"):
        (d / name).write_text("")
    assert list_dir(d) == [".lock", "a", "b"]


def test_an_unreadable_directory_is_a_one_line_error_naming_it(root: Path) -> None:
    d = unreadable(root / "locked")
    got = list_unprivileged(root, list_dir, "locked")
    assert got == {"error": "UnavailableError",
                   "message": "locked: permission denied; check the permissions of the store"}
    restore(d)


def test_a_file_where_a_directory_should_be_is_an_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("not a directory\n")
    with pytest.raises(UnavailableError) as e:
        list_dir(tmp_path / "plain")
    assert str(e.value) == f"{tmp_path / 'plain'}: unreadable (Not a directory); check the mount"
    assert (tmp_path / "plain").read_text() == "not a directory\n"


@pytest.mark.parametrize(("call", "rel"), [
    ("versions", f"{paths.BUNDLES}/{DSID}"),
    ("datasets", paths.BUNDLES),
    ("subscription ids", paths.SUBSCRIPTIONS),
    ("events", paths.EVENTS),
    ("outbox entries", paths.OUTBOX),
])
def test_store_listings_of_an_unreadable_directory_name_it(root: Path, call: str, rel: str) -> None:
    d = unreadable(root / rel)
    got = list_unprivileged(root, LISTINGS[call], ".")
    assert got == {"error": "UnavailableError",
                   "message": f"{rel}: permission denied; check the permissions of the store"}
    restore(d)


def test_store_listings_of_a_new_store_are_empty(root: Path) -> None:
    assert bundle_store.versions(root, DSID) == []
    assert bundle_store.datasets(root) == []
    assert subscriptions.ids(root) == set()
    assert list(events.iter_events(root)) == []
    assert entry_file.pending_paths(root) == []
    assert list(root.iterdir()) == []


def test_a_stray_file_in_the_outbox_is_not_a_subscription_directory(root: Path) -> None:
    (root / paths.OUTBOX).mkdir(parents=True)
    (root / paths.OUTBOX / "notes.txt").write_text("admin notes\n")
    assert entry_file.pending_paths(root) == []
