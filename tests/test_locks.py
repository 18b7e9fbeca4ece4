"""`ria_store.locks.FileLock`, and that the bundle store, `dss sync --git-only` and the deliverer
use it on their own lock files, waiting or not as each one should.

Contention is real: another process holds the lock (a child Python), or another FileLock in a
thread. That a waiter is blocked is read from /proc/locks (the kernel lists a blocked `flock` as
`->`), so no test depends on how long anything takes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from bare_repos import pushed_repo

from dss_remote.config import paths
from dss_remote.history import bundle_store
from dss_remote.replication import sync
from dss_remote.webhooks import outbox
from ria_store.locks import FileLock

DSID = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
HOLDER = ("import sys\nfrom pathlib import Path\nfrom ria_store.locks import FileLock\n"
          "FileLock(Path(sys.argv[1])).acquire()\nprint('held', flush=True)\nsys.stdin.read()\n")


@pytest.fixture
def holder() -> Iterator[Callable[[Path], subprocess.Popen[str]]]:
    """Start a process that holds the lock on a path until its stdin closes; ended after the test."""
    started: list[subprocess.Popen[str]] = []

    def start(path: Path) -> subprocess.Popen[str]:
        proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
        started.append(proc)
        assert proc.stdout is not None and proc.stdout.readline() == "held\n"
        return proc

    yield start
    for proc in started:
        proc.kill()
        proc.wait()
        for f in (proc.stdin, proc.stdout):
            if f is not None:
                f.close()


def blocked_on(path: Path) -> bool:
    """Whether some flock waits for `path` (a `->` line of /proc/locks naming its inode)."""
    st = os.stat(path)
    inode = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino} "
    return any("->" in line and inode in line for line in Path("/proc/locks").read_text().splitlines())


def wait_until(condition: Callable[[], bool], what: str, limit: float = 60) -> None:
    """Poll until `condition` holds; fail naming `what` if it never does (a bound, not a timing)."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.02)


def in_thread(work: Callable[[], object]) -> tuple[threading.Thread, threading.Event, list[BaseException]]:
    """Run `work` in a thread; the event is set when it returned, errors are collected."""
    done = threading.Event()
    errors: list[BaseException] = []

    def body() -> None:
        try:
            work()
        except BaseException as e:  # handed to the test
            errors.append(e)
        done.set()

    t = threading.Thread(target=body, daemon=True)
    t.start()
    return t, done, errors


def assert_waits_for(lock_path: Path, work: Callable[[], object]) -> None:
    """While another FileLock holds `lock_path`, `work` blocks on it and runs once it is released."""
    other = FileLock(lock_path)
    other.acquire()
    try:
        t, done, errors = in_thread(work)
        wait_until(lambda: blocked_on(lock_path) or done.is_set(), f"a waiter on {lock_path}")
        assert not done.is_set(), f"ran without waiting for {lock_path}"
    finally:
        other.release()
    t.join(60)
    assert done.is_set() and errors == []


def test_a_lock_creates_its_file_and_directories_and_leaves_the_file(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / ".lock"
    with FileLock(path) as lock:
        assert lock.held and path.is_file()
    assert not lock.held and path.is_file()


def test_trying_a_lock_another_process_holds_fails_at_once(tmp_path: Path, holder: Callable[
        [Path], subprocess.Popen[str]]) -> None:
    path = tmp_path / ".lock"
    holder(path)
    lock = FileLock(path)
    assert lock.acquire(wait=False) is False
    assert not lock.held


def test_waiting_for_a_lock_gets_it_when_the_holding_process_exits(tmp_path: Path, holder: Callable[
        [Path], subprocess.Popen[str]]) -> None:
    path = tmp_path / ".lock"
    proc = holder(path)
    lock = FileLock(path)
    t, done, errors = in_thread(lock.acquire)
    wait_until(lambda: blocked_on(path), "the waiting FileLock to block")
    assert not done.is_set() and not lock.held
    assert proc.stdin is not None
    proc.stdin.close()  # the holder exits, and the kernel drops its lock
    t.join(60)
    assert done.is_set() and errors == [] and lock.held
    lock.release()
    assert proc.wait() == 0


def test_two_threads_with_a_lock_each_take_turns(tmp_path: Path) -> None:
    path = tmp_path / ".lock"
    order: list[str] = []

    def second() -> None:
        with FileLock(path):
            order.append("second holds")

    with FileLock(path):
        order.append("first holds")
        assert FileLock(path).acquire(wait=False) is False
        t, _, errors = in_thread(second)
        wait_until(lambda: blocked_on(path), "the second thread to block")
        order.append("first releases")
    t.join(60)
    assert errors == [] and order == ["first holds", "first releases", "second holds"]


def test_a_held_lock_is_acquired_again_at_once_and_released_once(tmp_path: Path) -> None:
    path = tmp_path / ".lock"
    lock = FileLock(path)
    assert lock.acquire() and lock.acquire(wait=False)
    lock.release()
    assert not lock.held
    assert FileLock(path).acquire(wait=False)


def test_a_process_that_dies_holding_a_lock_releases_it(tmp_path: Path, holder: Callable[
        [Path], subprocess.Popen[str]]) -> None:
    path = tmp_path / ".lock"
    proc = holder(path)
    proc.kill()
    proc.wait()
    assert FileLock(path).acquire(wait=False)


def test_recording_a_bundle_version_waits_for_the_dataset_lock(tmp_path: Path) -> None:
    store, repo = tmp_path / "store", pushed_repo(tmp_path)
    lock = bundle_store.bundles_dir(store, DSID) / ".lock"
    assert_waits_for(lock, lambda: bundle_store.record(store, DSID, repo, "refs/heads/main"))
    assert [e.ref for e in bundle_store.read_log(store, DSID)] == ["refs/heads/main"]


def test_git_side_uploads_of_two_pushes_take_turns(tmp_path: Path) -> None:
    def upload() -> None:
        with sync._serialised(tmp_path):
            pass

    assert_waits_for(tmp_path / paths.GIT_SYNC_LOCK, upload)


def test_the_deliverer_lock_is_only_tried(tmp_path: Path, holder: Callable[
        [Path], subprocess.Popen[str]]) -> None:
    holder(tmp_path / paths.OUTBOX / outbox.LOCK_NAME)
    lock = outbox.DeliverLock(tmp_path)
    assert lock.try_acquire() is False
    assert outbox.spawn_deliverer(tmp_path) is None


def test_the_deliverer_lock_names_its_holder(tmp_path: Path) -> None:
    lock = outbox.DeliverLock(tmp_path)
    assert lock.try_acquire() and lock.try_acquire()
    try:
        assert outbox.DeliverLock(tmp_path).try_acquire() is False
        assert lock.holder().startswith(f"pid {os.getpid()} on ")
    finally:
        lock.release()
    again = outbox.DeliverLock(tmp_path)
    assert again.try_acquire()
    again.release()
