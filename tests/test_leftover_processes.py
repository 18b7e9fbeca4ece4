"""The leftover_processes plugin: a test's processes end with it; a run that leaves one fails naming it.

The plugin's own checks run pytest on small test files in a subprocess, with only this plugin
loaded; those runs keep this test's DSS_TEST_ID, so whatever they might leave, this test ends.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from cloud_servers import LoopbackServer
from leftover_processes import RUN_VAR, TEST_VAR, carrying, end_marked, running

TESTS_DIR = Path(__file__).parent
_HANG = 120  # seconds an inner pytest run may take: about 20 are usual, on a loaded machine too


def start_orphan(command: str, env: dict[str, str] | None = None) -> psutil.Process:
    """`command` in the background of a shell that exits at once: a process no one waits for,
    in a session of its own, as the hook's deliverer and `dss sync --git-only` are."""
    out = subprocess.run(["sh", "-c", f"{command} >/dev/null 2>&1 </dev/null & echo $!"], env=env,
                         capture_output=True, text=True, check=True, start_new_session=True).stdout
    return psutil.Process(int(out))


@pytest.fixture
def orphans() -> Iterator[list[psutil.Process]]:
    """Processes a test starts outside the plugin's reach; killed here, whatever the test did."""
    started: list[psutil.Process] = []
    yield started
    for proc in started:
        if running(proc):
            proc.kill()


def test_the_reaper_ends_a_detached_child_carrying_the_marker(process_marker: str) -> None:
    assert os.environ[TEST_VAR] == process_marker
    proc = start_orphan("sleep 600")
    assert proc.ppid() != os.getpid()  # reparented: nobody waits for it
    assert proc.environ()[TEST_VAR] == process_marker
    assert [p.pid for p in carrying(TEST_VAR, process_marker)] == [proc.pid]
    ended = end_marked(TEST_VAR, process_marker)
    assert ended == [f"pid {proc.pid}: sleep 600"]
    assert not running(proc)
    assert carrying(TEST_VAR, process_marker) == []


def test_the_reaper_kills_a_process_that_ignores_sigterm(process_marker: str) -> None:
    # an ignored signal stays ignored across exec: this sleep ignores SIGTERM
    proc = start_orphan("trap '' TERM; exec sleep 600")
    assert end_marked(TEST_VAR, process_marker, grace=0.5) == [f"pid {proc.pid}: sleep 600"]
    assert not running(proc)


def test_the_reaper_leaves_processes_of_other_tests_alone(process_marker: str,
                                                          orphans: list[psutil.Process]) -> None:
    other = start_orphan("sleep 600", env=dict(os.environ, DSS_TEST_ID=f"{process_marker}-other"))
    orphans.append(other)
    unmarked = start_orphan("sleep 600", env={k: v for k, v in os.environ.items() if k != TEST_VAR})
    orphans.append(unmarked)
    assert end_marked(TEST_VAR, process_marker) == []
    assert running(other) and running(unmarked)


def _pytest(tmp_path: Path, test_file: str, *args: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    """Run pytest with only this plugin on `test_file`'s text; its result and the pid directory.

    Its output goes to a file, not a pipe: a process it leaves holding the pipe cannot keep this
    test waiting. A run that hangs is sent SIGABRT first, so faulthandler prints where each of its
    processes waits, and the failure shows that; then its whole session is killed."""
    pids = tmp_path / "pids"
    pids.mkdir()
    (tmp_path / "test_tiny.py").write_text(textwrap.dedent(test_file))
    env = dict(os.environ, PYTHONPATH=str(TESTS_DIR), PIDS=str(pids), PYTHONFAULTHANDLER="1")
    # its own --basetemp: by default it would share /tmp/pytest-of-<user> with this run and spend
    # minutes deleting this run's older numbered directories (what made it hang in CI)
    command = [sys.executable, "-m", "pytest", "-p", "leftover_processes", "-p", "no:cacheprovider",
               "--basetemp", str(tmp_path / "basetemp"), "-q", *args, "test_tiny.py"]
    log = tmp_path / "pytest.out"
    with log.open("w") as out:
        proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            returncode = proc.wait(_HANG)
        except subprocess.TimeoutExpired:
            for sig in (signal.SIGABRT, signal.SIGKILL):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, sig)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(5)
            pytest.fail(f"the inner pytest run still ran after {_HANG} s; where it waited:\n"
                        f"{log.read_text()}")
    return subprocess.CompletedProcess(command, returncode, log.read_text(), ""), pids


_START = '''
    import os, subprocess
    from pathlib import Path

    def start(name, command):
        """`command` detached, its pid in $PIDS/name."""
        out = subprocess.run(["sh", "-c", f"{command} >/dev/null 2>&1 </dev/null & echo $!"],
                             capture_output=True, text=True, check=True, start_new_session=True).stdout
        (Path(os.environ["PIDS"]) / name).write_text(out)
'''


def _pid(pids: Path, name: str) -> int:
    return int((pids / name).read_text())


def _still_runs(pid: int) -> bool:
    try:
        return running(psutil.Process(pid))
    except psutil.NoSuchProcess:
        return False


def test_a_test_that_passes_or_fails_leaves_nothing_running(tmp_path: Path) -> None:
    res, pids = _pytest(tmp_path, _START + '''
    def test_passes():
        start("passed", "sleep 601")

    def test_fails():
        start("failed", "sleep 602")
        assert False, "a test failing with its deliverer still running"
    ''', "-n", "0")
    out = res.stdout + res.stderr
    assert res.returncode == 1, out
    assert "1 failed, 1 passed" in out
    assert "processes left running" not in out  # the reaper ended both before the run's check
    for name in ("passed", "failed"):
        assert not _still_runs(_pid(pids, name)), f"the {name} test's sleep still runs"


@pytest.mark.parametrize("workers", ["0", "2"])
def test_the_run_fails_naming_a_process_left_running(tmp_path: Path, workers: str) -> None:
    """A session fixture starts what no test's end covers: one that never stops, and one that is
    still finishing when the run ends (it gets --leftover-grace seconds and is not named)."""
    res, pids = _pytest(tmp_path, _START + '''
    import pytest

    @pytest.fixture(scope="session")
    def server():
        start("forever", "sleep 3600")
        yield
        start("finishing", "sleep 0.2")

    def test_uses_the_server(server):
        pass
    ''', "-n", workers, "--leftover-grace", "10")
    out = res.stdout + res.stderr
    forever, finishing = _pid(pids, "forever"), _pid(pids, "finishing")
    assert res.returncode == 1, out
    assert "1 passed" in out
    assert "processes left running" in out
    assert f"pid {forever}: sleep 3600\n" in out
    assert f"pid {finishing}:" not in out
    assert ("1 process(es) started by this test run were still running 10 s after it and are killed "
            "now; end them in the test or fixture that starts them") in out
    assert not _still_runs(forever)


def test_a_run_that_leaves_nothing_passes(tmp_path: Path) -> None:
    res, _ = _pytest(tmp_path, _START + '''
    def test_waits_for_its_child():
        subprocess.run(["sleep", "0.1"], check=True)
    ''', "-n", "0")
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert "processes left running" not in out


def test_every_process_of_a_test_carries_its_marker(process_marker: str, tmp_path: Path) -> None:
    """Through a real `git push` to a bare repo: the post-update hook sees this test's marker."""
    bare = tmp_path / "bare.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    hook = bare / "hooks" / "post-update"
    hook.write_text(f'#!/bin/sh\necho "$DSS_TEST_ID" > {tmp_path / "seen"}\n')
    hook.chmod(0o755)
    work = tmp_path / "work"
    subprocess.run(["git", "init", "-q", str(work)], check=True)
    subprocess.run(["git", "-C", str(work), "commit", "-q", "--allow-empty", "-m", "x"], check=True)
    subprocess.run(["git", "-C", str(work), "push", "-q", str(bare), "HEAD:main"], check=True)
    assert (tmp_path / "seen").read_text().strip() == process_marker


def test_sigterm_is_what_ends_a_well_behaved_process(process_marker: str) -> None:
    """The first signal is SIGTERM (a deliverer or sync may clean up); SIGKILL only after the grace."""
    proc = subprocess.Popen(["sleep", "600"])
    try:
        end_marked(TEST_VAR, process_marker)
        assert proc.wait(10) == -signal.SIGTERM
    finally:
        proc.kill()
        proc.wait()


def test_a_deliverer_retrying_for_days_is_found_and_ended(process_marker: str, store: Path) -> None:
    """The failure path this plugin is for: a detached deliverer whose receiver never answers."""
    from test_webhooks import make_event, subscribe

    from dss_remote.webhooks import outbox

    subscribe(store, "http://127.0.0.1:9/hook")  # nothing listens: the default schedule retries for 7 days
    outbox.enqueue(store, make_event(store, 1), [])
    proc = outbox.spawn_deliverer(store)
    assert proc is not None
    try:
        assert os.getsid(proc.pid) == proc.pid  # detached, as the post-update hook starts it
        assert [p.pid for p in carrying(TEST_VAR, process_marker)] == [proc.pid]
        assert end_marked(TEST_VAR, process_marker) == [
            f"pid {proc.pid}: {sys.executable} -m dss_remote.cli deliver {store}"]
        assert proc.wait(10) == -signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_session_server_is_the_runs_not_a_tests(s3_server: LoopbackServer, process_marker: str) -> None:
    """Session servers start before any test's marker is set: no test's end takes them down, and
    the end of the run still sees them if their fixture failed to stop them."""
    env = psutil.Process(s3_server.pid).environ()
    assert TEST_VAR not in env
    assert env[RUN_VAR] == os.environ[RUN_VAR]
    assert s3_server.pid not in [p.pid for p in carrying(TEST_VAR, process_marker)]


def test_a_server_started_inside_a_test_is_the_runs(tmp_path: Path, process_marker: str) -> None:
    """A session server first requested by `request.getfixturevalue` (test_archive_mirrors' `site`)
    starts inside a test, after its marker is set: it must not carry the marker, or the test's end
    kills it and every later test on that server fails (CI run of stop 22 hung that way)."""
    server = LoopbackServer("moto_server", lambda port: ["-H", "127.0.0.1", "-p", str(port)],
                            tmp_path, probe="/moto-api/").start()
    try:
        env = psutil.Process(server.pid).environ()
        assert TEST_VAR not in env
        assert env[RUN_VAR] == os.environ[RUN_VAR]
        assert end_marked(TEST_VAR, process_marker) == []
        assert running(psutil.Process(server.pid))
    finally:
        server.stop()
