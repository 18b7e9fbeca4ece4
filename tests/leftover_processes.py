"""pytest plugin: a test's processes end with it, and a run that leaves one running fails naming it.

Every test runs with `DSS_TEST_ID=<run>.<test>` in its environment, and every process of a run
(xdist workers, session servers, tests) with `DSS_TEST_RUN=<run>`. Children inherit both, detached
ones included: the deliverer and `dss sync --git-only` the post-update hook starts, git-annex's
special remotes, anything `git push` or `datalad` runs. A process's environment as it was when it
started is in /proc/<pid>/environ, readable by the same user, so:

- when a test is over (passed or failed), the processes carrying its `DSS_TEST_ID` are ended:
  SIGTERM, then SIGKILL after TERM_GRACE seconds;
- when the run is over, its controller looks for processes carrying its `DSS_TEST_RUN`; what is
  still running `--leftover-grace` seconds later is named (pid and command line), killed, and the
  run fails.

A process started with an environment built from scratch (`env={...}` without os.environ), or a
fork that never execs, carries no marker and is not seen.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import signal
import sys
import time
import uuid
from collections.abc import Iterable, Iterator

import psutil
import pytest

logger = logging.getLogger(__name__)

RUN_VAR = "DSS_TEST_RUN"
TEST_VAR = "DSS_TEST_ID"
TERM_GRACE = 5.0  # seconds a process gets to exit on SIGTERM before SIGKILL
LEFTOVER_GRACE = 10.0  # seconds detached processes get to finish on their own at the end of a run
_PREVIOUS_RUN = pytest.StashKey[str | None]()
_RUN = pytest.StashKey[str]()
_LEFT = pytest.StashKey[list[str]]()


def carrying(name: str, value: str) -> list[psutil.Process]:
    """The running processes (not this one) whose environment holds `name=value`."""
    found = []
    for proc in psutil.process_iter():
        if proc.pid == os.getpid():
            continue
        try:
            if proc.environ().get(name) == value:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):  # gone, a zombie, or another user's
            continue
    return found


def running(proc: psutil.Process) -> bool:
    """False once `proc` exited, also while it waits as a zombie for its parent to reap it."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_gone(procs: Iterable[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait up to `timeout` seconds for `procs` to exit; those still running."""
    deadline = time.monotonic() + timeout
    alive = [p for p in procs if running(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [p for p in alive if running(p)]
    return alive


def describe(proc: psutil.Process) -> str:
    """`pid N: command line`, as a report names a process."""
    try:
        command = shlex.join(proc.cmdline()) or f"[{proc.name()}]"
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        command = "(exited)"
    return f"pid {proc.pid}: {command}"


def terminate(procs: list[psutil.Process], grace: float = TERM_GRACE) -> None:
    """SIGTERM, then SIGKILL what is still running `grace` seconds later."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for proc in procs:
            with contextlib.suppress(psutil.NoSuchProcess):  # psutil checks the pid was not reused
                proc.send_signal(sig)
        procs = wait_gone(procs, grace)
        if not procs:
            return
    # still here after SIGKILL: stuck in the kernel (uninterruptible I/O); nothing more to do
    logger.warning("still running after SIGKILL: %s", "; ".join(describe(p) for p in procs))


def wait_for_detached(timeout: float = 120.0) -> None:
    """Wait for what a push of this test left running detached (the hook's `dss sync --git-only`
    and `dss deliver`), before the test moves the store away under them; fails naming them."""
    mine = carrying(TEST_VAR, os.environ.get(TEST_VAR, ""))
    detached = []
    for proc in mine:
        try:
            command = proc.cmdline()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if any(c.endswith("dss") or c == "dss_remote.cli" for c in command) and (
                "sync" in command or "deliver" in command):
            detached.append(proc)
    alive = wait_gone(detached, timeout)
    if alive:
        pytest.fail(f"still running after {timeout:g} s: {'; '.join(describe(p) for p in alive)}")


def end_marked(name: str, value: str, grace: float = TERM_GRACE) -> list[str]:
    """End every process carrying `name=value`, and those they start meanwhile; who was ended."""
    ended: list[str] = []
    for _ in range(5):  # a process may fork between the scan and the signal: scan again
        procs = carrying(name, value)
        if not procs:
            break
        ended += [describe(p) for p in procs]
        terminate(procs, grace)
    return ended


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")  # an xdist worker; its controller checks the run


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--leftover-grace", type=float, default=LEFTOVER_GRACE, metavar="SECONDS",
                     help="how long detached processes the tests started may take to finish after "
                          f"the last test before the run fails naming them (default {LEFTOVER_GRACE:g})")


def pytest_configure(config: pytest.Config) -> None:
    if _is_worker(config):
        config.stash[_RUN] = os.environ.get(RUN_VAR) or uuid.uuid4().hex
        return
    # A new run, also one started inside a test (it keeps that test's DSS_TEST_ID, so what it
    # leaves is still that test's to end).
    config.stash[_PREVIOUS_RUN] = os.environ.get(RUN_VAR)
    config.stash[_RUN] = os.environ[RUN_VAR] = uuid.uuid4().hex


def pytest_unconfigure(config: pytest.Config) -> None:
    if _is_worker(config) or _PREVIOUS_RUN not in config.stash:
        return
    previous = config.stash[_PREVIOUS_RUN]
    if previous is None:
        os.environ.pop(RUN_VAR, None)
    else:
        os.environ[RUN_VAR] = previous


@pytest.fixture(autouse=True)
def process_marker(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """This test's `DSS_TEST_ID`; what carries it is ended when the test is over."""
    marker = f"{request.config.stash[_RUN]}.{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv(TEST_VAR, marker)
    yield marker
    ended = end_marked(TEST_VAR, marker)
    if ended:
        logger.info("ended %d process(es) the test left running: %s", len(ended), "; ".join(ended))


@pytest.hookimpl(trylast=True)  # after xdist has stopped its workers
def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    if _is_worker(config) or _RUN not in config.stash:
        return
    run = config.stash[_RUN]
    grace: float = config.getoption("leftover_grace")
    if not wait_gone(carrying(RUN_VAR, run), grace):
        return
    left = end_marked(RUN_VAR, run)
    if not left:
        return
    lines = [*left, f"{len(left)} process(es) started by this test run were still running {grace:g} s "
             "after it and are killed now; end them in the test or fixture that starts them"]
    if config.pluginmanager.get_plugin("terminalreporter") is None:
        sys.stderr.write("".join(f"{line}\n" for line in lines))
    else:
        config.stash[_LEFT] = lines  # pytest_terminal_summary prints them with the run's summary
    if session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    lines = config.stash.get(_LEFT, [])
    if lines:
        terminalreporter.write_sep("=", "processes left running", red=True)
        for line in lines:
            terminalreporter.write_line(line, red=True)
