"""The writer threads of a ReplicaSet are shut down by whoever opened it: the remote when git-annex
closes the conversation, the `dss` subcommands when they are done."""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import PLAIN_DSID, require_tool

from dss_remote.admin.store import add_mirror
from dss_remote.cli import main as cli_main
from dss_remote.config.mirrors import Mirror
from dss_remote.config.store_config import read_config
from dss_remote.replication.replica_set import ReplicaSet
from dss_remote.replication.store_replicas import StoreReplicas, open_replicas
from ria_store.keys import AnnexKey, parse_key
from ria_store.layout import dataset_relpath, object_relpath

DATA = os.urandom(5000)
KEY = parse_key(f"MD5E-s{len(DATA)}--{hashlib.md5(DATA).hexdigest()}.dat")
REL = f"{dataset_relpath(PLAIN_DSID)}/{object_relpath(KEY, '2')}"
SHUT_DOWN = (f"DEBUG dss_remote.replication.replica_set: dataset {PLAIN_DSID}: "
             "replica writer threads shut down")


@pytest.fixture
def mirrored(store: Path, dsdir: Path, tmp_path: Path) -> list[Path]:
    """The store's two file:// mirrors (so a write runs on the writer threads)."""
    roots = [tmp_path / "m1", tmp_path / "m2"]
    for i, root in enumerate(roots):
        add_mirror(store, Mirror(url=f"file://{root}", name=f"m{i + 1}"))
    return roots


@pytest.fixture
def payload(tmp_path: Path) -> Path:
    p = tmp_path / "payload"
    p.write_bytes(DATA)
    return p


def replicas(store: Path) -> StoreReplicas:
    return open_replicas(f"ria+file://{store}", read_config(store))


def stored(rs: ReplicaSet, key: AnnexKey, payload: Path) -> None:
    rs.store(key, payload)
    assert rs._pool is not None, "several writers: the write ran on the pool"


def test_close_shuts_the_writer_pool_down(store: Path, mirrored: list[Path], payload: Path) -> None:
    rs = replicas(store).for_dataset(PLAIN_DSID)
    stored(rs, KEY, payload)
    pool = rs._pool
    assert pool is not None
    rs.close()
    assert rs._pool is None
    with pytest.raises(RuntimeError, match="cannot schedule new futures after shutdown"):
        pool.submit(print)


def test_a_closed_set_starts_new_threads_when_used_again(
        store: Path, mirrored: list[Path], payload: Path) -> None:
    rs = replicas(store).for_dataset(PLAIN_DSID)
    rs.close()  # nothing to shut down yet
    stored(rs, KEY, payload)
    rs.close()
    assert rs.present(KEY) is True
    for root in (store, *mirrored):
        assert (root / REL).read_bytes() == DATA


def test_store_replicas_closes_every_dataset_set_on_leaving_the_with_block(
        store: Path, mirrored: list[Path], payload: Path) -> None:
    with replicas(store) as sr:
        rs = sr.for_dataset(PLAIN_DSID)
        stored(rs, KEY, payload)
        pool = rs._pool
    assert rs._pool is None and pool is not None
    with pytest.raises(RuntimeError, match="cannot schedule new futures after shutdown"):
        pool.submit(print)


@pytest.fixture
def closes(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[StoreReplicas]]:
    """Every StoreReplicas closed while the test runs."""
    closed: list[StoreReplicas] = []
    real = StoreReplicas.close

    def spy(self: StoreReplicas) -> None:
        closed.append(self)
        real(self)

    monkeypatch.setattr(StoreReplicas, "close", spy)
    yield closed


@pytest.mark.parametrize("command", ["fsck", "repair"])
def test_dss_subcommands_close_the_replicas(command: str, store: Path, mirrored: list[Path],
                                            payload: Path, closes: list[StoreReplicas]) -> None:
    with replicas(store) as sr:
        sr.for_dataset(PLAIN_DSID).store(KEY, payload)
    closes.clear()
    assert cli_main([command, str(store)]) == 0
    assert len(closes) == 1


def test_dss_fsck_closes_the_replicas_when_it_finds_problems(
        store: Path, mirrored: list[Path], payload: Path, closes: list[StoreReplicas]) -> None:
    with replicas(store) as sr:
        sr.for_dataset(PLAIN_DSID).store(KEY, payload)
    (mirrored[0] / REL).chmod(0o644)
    (mirrored[0] / REL).unlink()
    closes.clear()
    assert cli_main(["fsck", str(store)]) == 1
    assert len(closes) == 1


class RemoteProcess:
    """`git-annex-remote-dss` as git-annex runs it, answering its queries from `config`."""

    def __init__(self, config: dict[str, str], git_dir: Path) -> None:
        self.config, self.git_dir = config, git_dir
        env = dict(os.environ, DSS_DEBUG="1")
        self.proc = subprocess.Popen([require_tool("git-annex-remote-dss")], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self.lines: list[str] = []

    def greeting(self) -> str:
        return self._line()

    def _line(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, f"the remote ended early: {self.lines}"
        self.lines.append(line.rstrip("\n"))
        return self.lines[-1]

    def _send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def request(self, line: str) -> str:
        """Send one request; answer the queries it asks; return its reply."""
        self._send(line)
        while True:
            reply = self._line()
            cmd, _, arg = reply.partition(" ")
            if cmd == "GETCONFIG":
                self._send(f"VALUE {self.config.get(arg, '')}")
            elif cmd == "GETGITDIR":
                self._send(f"VALUE {self.git_dir}")
            elif cmd == "GETGITREMOTENAME":
                self._send("VALUE store-storage")
            elif cmd not in ("DEBUG", "PROGRESS"):
                return reply

    def end(self) -> tuple[int, list[str], str]:
        """Close the conversation as git-annex does (end of its input); the exit code, the
        lines the remote wrote after that, and its stderr."""
        before = len(self.lines)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        rest = self.proc.stdout.read().splitlines()
        self.lines += rest
        code = self.proc.wait(timeout=60)
        assert self.proc.stderr is not None
        return code, self.lines[before:], self.proc.stderr.read()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def test_the_remote_shuts_its_writer_threads_down_and_exits_cleanly(
        store: Path, mirrored: list[Path], payload: Path, tmp_path: Path) -> None:
    git_dir = tmp_path / "clone.git"
    git_dir.mkdir()
    remote = RemoteProcess({"url": f"ria+file://{store}", "archive-id": PLAIN_DSID}, git_dir)
    try:
        assert remote.greeting() == "VERSION 1"
        assert remote.request("PREPARE") == "PREPARE-SUCCESS"
        assert remote.request(f"TRANSFER STORE {KEY} {payload}") == f"TRANSFER-SUCCESS STORE {KEY}"
        code, after, stderr = remote.end()
    finally:
        remote.kill()
    assert (code, after, stderr) == (0, [SHUT_DOWN], "")
    for root in (store, *mirrored):
        assert (root / REL).read_bytes() == DATA
