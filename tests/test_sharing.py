"""Modes in a store shared by a Unix group (ria_store/sharing.py), and `dss init|adopt --group`.

Here the shared group is this user's own, so these run as any user (the settle tests as root);
tests/test_e2e_group_store.py has two real users in a group of their own.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import require_tool, run

from dss_remote.admin.store import init_store
from dss_remote.webhooks import subscriptions
from ria_store import bare_repo, sharing
from ria_store import store as ria
from ria_store.atomic import create_exclusive, write_bytes_atomic
from ria_store.locks import FileLock

OWN_GROUP = sharing.group_name(os.getegid())
DSID = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
NOBODY = 65534


def dss(*args: str | Path, check: bool = False):  # type: ignore[no-untyped-def]
    return run(require_tool("dss"), *args, check=check)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def modes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.lstat().st_mode for p in [root, *root.rglob("*")]}


@pytest.fixture
def umask077() -> Iterator[None]:
    """A strict umask (common on clusters), for this test and what it runs."""
    sharing.umask.cache_clear()
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)
        sharing.umask.cache_clear()


@pytest.fixture
def shared_dir(tmp_path: Path) -> Path:
    d = tmp_path / "shared"
    d.mkdir()
    os.chmod(d, sharing.SHARED_DIR_MODE)
    return d


@pytest.mark.parametrize(("asked", "shared_mode"), [
    (0o444, 0o444),   # objects, manifests, events: read-only for all
    (0o644, 0o664),   # config, outbox entries: the group gets the owner's bits, as with git
    (0o600, 0o640),   # a secret: the group reads it, others nothing
    (0o664, 0o664),   # lock files and appended logs: every member writes them
    (0o755, 0o775),   # hooks
])
def test_file_mode_shared_and_private(asked: int, shared_mode: int, umask077: None) -> None:
    assert sharing.file_mode(asked, True) == shared_mode
    assert sharing.file_mode(asked, False) == asked & ~0o077


def test_what_dss_writes_in_a_shared_directory_is_the_groups_whatever_the_umask(
        shared_dir: Path, umask077: None) -> None:
    write_bytes_atomic(shared_dir / "a" / "b" / "config.json", b"{}")
    create_exclusive(shared_dir / "events" / "e.json", b"{}", mode=0o444)
    write_bytes_atomic(shared_dir / "subscriptions" / "s.json", b"secret", mode=0o600)
    with FileLock(shared_dir / "locks" / "x.lock"):
        pass
    assert mode(shared_dir / "a") == mode(shared_dir / "a" / "b") == 0o2775
    assert mode(shared_dir / "events") == mode(shared_dir / "locks") == 0o2775
    assert mode(shared_dir / "a" / "b" / "config.json") == 0o664
    assert mode(shared_dir / "events" / "e.json") == 0o444
    assert mode(shared_dir / "subscriptions" / "s.json") == 0o640
    assert mode(shared_dir / "locks" / "x.lock") == 0o664
    assert {p.stat().st_gid for p in shared_dir.rglob("*")} == {shared_dir.stat().st_gid}


def test_an_existing_lock_file_keeps_its_mode(shared_dir: Path) -> None:
    lock = shared_dir / "x.lock"
    lock.write_bytes(b"")
    os.chmod(lock, 0o600)
    with FileLock(lock):
        pass
    assert mode(lock) == 0o600


def test_a_private_directory_keeps_the_umask(tmp_path: Path, umask077: None) -> None:
    write_bytes_atomic(tmp_path / "a" / "config.json", b"{}")
    write_bytes_atomic(tmp_path / "s.json", b"secret", mode=0o600)
    with FileLock(tmp_path / "locks" / "x.lock"):
        pass
    assert mode(tmp_path / "a") == mode(tmp_path / "locks") == 0o700
    assert mode(tmp_path / "a" / "config.json") == mode(tmp_path / "s.json") == 0o600
    assert mode(tmp_path / "locks" / "x.lock") == 0o600


def test_a_setgid_directory_the_group_may_not_write_is_not_shared(tmp_path: Path, umask077: None) -> None:
    """A clone's `.git` below a setgid project directory: setgid, but git made it 2755."""
    d = tmp_path / "project"
    d.mkdir()
    os.chmod(d, 0o2755)
    write_bytes_atomic(d / "cache" / "config.json", b"{}")
    assert mode(d / "cache") == 0o2700  # the kernel's setgid inheritance, the umask's mode
    assert mode(d / "cache" / "config.json") == 0o600


def test_subscriptions_are_0600_in_a_private_store_and_0640_in_a_shared_one(tmp_path: Path) -> None:
    private, shared = tmp_path / "private", tmp_path / "shared"
    init_store(private)
    init_store(shared, group=OWN_GROUP)
    for root, want in ((private, 0o600), (shared, 0o640)):
        sub = subscriptions.create(root, "https://ci.example.org/hook", "s3cret")
        assert mode(subscriptions.subscription_path(root, sub.id)) == want


# --- dss init --group ------------------------------------------------------------------------------

def test_init_group_makes_a_store_the_group_shares(tmp_path: Path, umask077: None) -> None:
    root = tmp_path / "store"
    res = dss("init", "--group", OWN_GROUP, root)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [
        f"created store {root} (use it as ria+file://{root})",
        f"shared by group {OWN_GROUP}; for git to work in repositories other members own, on every "
        f"machine: git config --system --add safe.directory '{root}/*' (git 2.46 or later; older git: "
        "see README, 'A store shared by a group')"]
    for d in (root, root / "error_logs", root / "alias", root / "dss"):
        assert mode(d) == 0o2775, d
    assert mode(root / "ria-layout-version") == mode(root / "dss" / "config.json") == 0o664
    again = dss("init", "--group", OWN_GROUP, root)
    assert again.returncode == 0 and "nothing to do" in again.stdout


def test_init_group_names_an_unknown_group_and_writes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "store"
    res = dss("init", "--group", "no-such-dss-group", root)
    assert res.returncode == 1
    assert res.stderr.strip().splitlines() == [
        "dss: error: no Unix group 'no-such-dss-group' on this machine (check the name with "
        "`getent group no-such-dss-group`, or create it with `groupadd no-such-dss-group`)"]
    assert not root.exists()


def test_init_group_refuses_a_store_with_datasets_and_points_to_adopt(tmp_path: Path) -> None:
    root = tmp_path / "store"
    init_store(root)
    ria.create_dataset(ria.open_store(root), DSID)
    before = modes(root)
    res = dss("init", "--group", OWN_GROUP, root)
    assert res.returncode == 1
    assert res.stderr.strip().splitlines() == [
        f"dss: error: store {root} already holds datasets and is not shared by group {OWN_GROUP}; "
        f"share it with `dss adopt --group {OWN_GROUP} {root}` (it also sets core.sharedRepository "
        "in every dataset's bare repo)"]
    assert modes(root) == before


# --- dss adopt --group -----------------------------------------------------------------------------

def test_adopt_group_shares_an_existing_store_and_every_bare_repo(tmp_path: Path, umask077: None) -> None:
    root = tmp_path / "store"
    init_store(root)
    dsdir = ria.create_dataset(ria.open_store(root), DSID)
    bare_repo.init_bare(dsdir)
    sub = subscriptions.create(root, "https://ci.example.org/hook", "s3cret")
    with FileLock(root / "dss" / "outbox" / ".lock"):
        pass
    assert mode(subscriptions.subscription_path(root, sub.id)) == 0o600
    assert not sharing.is_shared(root)

    res = dss("adopt", "--group", OWN_GROUP, root)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith(f"shared by group {OWN_GROUP} (")
    assert f"{DSID}\thook installed" in res.stdout
    for path, st_mode in modes(root).items():
        if stat.S_ISDIR(st_mode):
            assert st_mode & 0o2070 == 0o2070, path
        elif stat.S_ISREG(st_mode):
            assert st_mode & 0o040, path
    assert mode(subscriptions.subscription_path(root, sub.id)) == 0o640
    assert mode(root / "dss" / "outbox" / ".lock") == 0o660
    assert run("git", f"--git-dir={dsdir}", "config", "core.sharedRepository").stdout.strip() == "group"
    again = dss("adopt", root)  # a shared store stays shared: no --group needed
    assert again.returncode == 0 and f"shared by group {OWN_GROUP} (0 changes)" in again.stdout
    assert f"{DSID}\thook unchanged" in again.stdout


def test_adopt_leaves_a_private_store_private(tmp_path: Path) -> None:
    root = tmp_path / "store"
    init_store(root)
    bare_repo.init_bare(ria.create_dataset(ria.open_store(root), DSID))
    res = dss("adopt", root)
    assert res.returncode == 0 and res.stdout.splitlines() == [f"{DSID}\thook installed"]
    assert not sharing.is_shared(root) and not sharing.is_shared(root / "dss")


# --- settle: a directory another member has just made -----------------------------------------------

def _made_by_another_member(shared_dir: Path) -> Path:
    if os.geteuid() != 0:
        pytest.fail("this test needs root: it gives a directory to another uid (chown)")
    d = shared_dir / "ab"
    d.mkdir()
    os.chown(d, NOBODY, -1)
    os.chmod(d, 0o2755)  # as mkdir leaves it under umask 022, before its maker's chmod
    return d


def test_settle_waits_for_the_maker_to_make_a_new_directory_group_writable(shared_dir: Path) -> None:
    d = _made_by_another_member(shared_dir)
    calls: list[int] = []

    def create() -> str:
        calls.append(mode(d))
        if len(calls) == 1:
            raise PermissionError(13, "Permission denied")  # refused: the maker has not chmodded yet
        if len(calls) == 2:
            os.chmod(d, sharing.SHARED_DIR_MODE)  # the maker's chmod lands while we were refused
            raise PermissionError(13, "Permission denied")
        return "created"

    assert sharing.settle(d, create) == "created"
    assert calls == [0o2755, 0o2755, 0o2775]


def test_settle_does_not_wait_on_a_directory_that_is_not_settling(tmp_path: Path) -> None:
    calls: list[int] = []

    def create() -> str:
        calls.append(1)
        raise PermissionError(13, "Permission denied")

    with pytest.raises(PermissionError):
        sharing.settle(tmp_path, create)
    assert calls == [1]


def test_settle_gives_up_on_a_group_writable_directory_that_still_refuses(shared_dir: Path) -> None:
    d = _made_by_another_member(shared_dir)
    os.chmod(d, sharing.SHARED_DIR_MODE)
    calls: list[int] = []

    def create() -> str:
        calls.append(1)
        raise PermissionError(13, "Permission denied")

    with pytest.raises(PermissionError):
        sharing.settle(d, create)
    assert calls == [1, 1], "one retry in case it settled in between, then the refusal stands"
