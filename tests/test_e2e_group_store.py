"""A store shared by a Unix group, used by two real users: each one's push, keys and webhooks work.

Runs as root (it makes throwaway users with tests/unix_users.py). User A (umask 022) creates and
publishes a dataset and subscribes a webhook; user B (umask 077, a primary group of its own)
clones it, changes it, copies the new key to the store with `git annex copy` and pushes back with
plain `git push`; B's push records a bundle version and delivers A's webhook. Both are members of
the store's group only through `dss init --group`'s setgid root.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import require_tool, run
from test_webhooks import wait_for
from unix_users import Team, User, unix_group
from webhook_receiver import Receiver

from ria_store.layout import dataset_relpath, object_relpath

SECRET = "group-store-webhook-secret"
NOBODY = 65534  # a uid and gid in no group of ours: what "other users" may do


@pytest.fixture
def team() -> Iterator[Team]:
    # Under /tmp, not tmp_path: pytest's base directory is 0700, so other users could not reach it.
    base = Path(tempfile.mkdtemp(prefix="dss-group-store-"))
    try:
        os.chmod(base, 0o755)
        with unix_group(base, {"a": 0o022, "b": 0o077}) as t:
            yield t
    finally:
        shutil.rmtree(base)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(SECRET).start()
    yield r
    r.stop()


def _verify_remote(user: User, clone: Path) -> None:
    """git-annex refuses writes to an autoenabled special remote until the clone vouches for it."""
    out = user.run("git", "annex", "verifyremote", "store-storage", cwd=clone).stdout
    m = re.search(r"verifyremote store-storage --safe (\S+)", out)
    assert m is not None, out
    user.run("git", "annex", "verifyremote", "store-storage", "--safe", m.group(1), cwd=clone)


def _bundles(store: Path) -> list[dict[str, str]]:
    return list(json.loads(run("dss", "bundles", "list", store, "--json").stdout))


def _assert_shared(store: Path, gid: int) -> None:
    """Every directory setgid and group-writable, every path the group's and readable by it."""
    for path in [store, *store.rglob("*")]:
        st = path.lstat()
        mode = stat.S_IMODE(st.st_mode)
        assert st.st_gid == gid, f"{path} belongs to group {st.st_gid}, not the store's"
        if stat.S_ISDIR(st.st_mode):
            assert mode & 0o2070 == 0o2070, f"{path} is {mode:o}: not setgid and group-writable"
        elif stat.S_ISREG(st.st_mode):
            assert mode & 0o040, f"{path} is {mode:o}: not readable by the group"


def test_two_members_clone_push_back_copy_keys_and_get_the_webhook(team: Team, receiver: Receiver) -> None:
    require_tool("datalad")
    a, b = team.users["a"], team.users["b"]
    store = a.home.parent / "store"
    out = run("dss", "init", "--group", team.group, store).stdout
    assert f"shared by group {team.group}" in out and f"safe.directory '{store}/*'" in out
    assert stat.S_IMODE(store.stat().st_mode) == 0o2775 and store.stat().st_gid == team.gid

    # A publishes a dataset and subscribes a webhook
    ds_a = a.home / "ds"
    a.run("datalad", "-l", "error", "create", ds_a)
    a.write(ds_a / "first.bin", os.urandom(5000))
    a.run("datalad", "-l", "error", "save", "-m", "first", cwd=ds_a)
    out = a.run("dss", "create-sibling", "-d", ds_a, "--name", "store", f"ria+file://{store}").stdout
    dsid = a.run("git", "config", "-f", ds_a / ".datalad" / "config", "datalad.dataset.id").stdout.strip()
    dsdir = store / dataset_relpath(dsid)
    assert f"git config --global --add safe.directory {dsdir}" in out
    # `git init --shared=group` writes 1, git's old spelling of "group"
    assert run("git", f"--git-dir={dsdir}", "config", "core.sharedRepository").stdout.strip() == "1"
    a.run("datalad", "-l", "error", "push", "--to", "store", cwd=ds_a)
    secret_file = a.home / "hook.secret"
    a.write(secret_file, SECRET.encode() + b"\n")
    sub_id = json.loads(a.run("dss", "subscribe", store, "--url", receiver.url(), "--secret-file",
                              secret_file, "--json").stdout)["id"]
    sub = store / "dss" / "subscriptions" / f"{sub_id}.json"
    st = sub.stat()
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o640, a.uid, team.gid)
    denied = run("setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--",
                 "cat", sub, check=False)
    assert denied.returncode == 1 and "Permission denied" in denied.stderr, "others must not read secrets"

    # B clones: git refuses another user's repository until B marks it safe, as the README says
    clone = b.home / "clone"
    refused = b.run("datalad", "-l", "error", "clone", f"ria+file://{store}#{dsid}", clone, check=False)
    assert refused.returncode != 0 and "dubious ownership" in refused.stdout + refused.stderr
    b.run("git", "config", "--global", "--add", "safe.directory", dsdir)
    b.run("datalad", "-l", "error", "clone", f"ria+file://{store}#{dsid}", clone)
    b.run("datalad", "-l", "error", "get", ".", cwd=clone)
    assert (clone / "first.bin").read_bytes() == (ds_a / "first.bin").read_bytes()

    # B changes it, copies the new key into the same dataset and pushes back
    new = os.urandom(7000)
    b.write(clone / "second.bin", new)
    b.run("datalad", "-l", "error", "save", "-m", "second, by b", cwd=clone)
    _verify_remote(b, clone)
    b.run("git", "annex", "copy", "--to", "store-storage", "second.bin", cwd=clone)
    pushed = b.run("git", "push", "origin", "main", "git-annex", cwd=clone)
    assert "dss: bundle version" in pushed.stderr and "dss: warning" not in pushed.stderr, pushed.stderr

    # B's push made a bundle version, and the deliverer it started delivered A's webhook
    head_b = b.run("git", "rev-parse", "HEAD", cwd=clone).stdout.strip()
    versions = _bundles(store)
    assert [v["commit"] for v in versions][-1] == head_b and len(versions) == 2
    wait_for(lambda: len(receiver.accepted()) >= 1, "the webhook of B's push")
    got = receiver.accepted()
    assert len(got) == 1 and got[0].signed_ok
    assert (got[0].json["dataset_id"], got[0].json["version"]) == (dsid, versions[-1]["version"])

    # B's key is in the store, read-only for all and the group's; A gets it back
    key = b.run("git", "annex", "lookupkey", "second.bin", cwd=clone).stdout.strip()
    obj = dsdir / object_relpath(key, "2")
    st = obj.stat()
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o444, b.uid, team.gid)
    a.run("git", "fetch", "-q", "store", cwd=ds_a)  # main and git-annex: where B's key is
    a.run("git", "merge", "-q", "--ff-only", "store/main", cwd=ds_a)
    a.run("git", "annex", "get", "second.bin", cwd=ds_a)
    assert (ds_a / "second.bin").read_bytes() == new
    _assert_shared(store, team.gid)


def test_a_non_member_cannot_share_a_store_with_a_group(team: Team) -> None:
    a, b = team.users["a"], team.users["b"]
    store = a.home / "store"
    res = a.run("dss", "init", "--group", b.name, store, check=False)  # B's own group
    assert res.returncode == 1
    assert res.stderr.strip().splitlines() == [
        f"dss: error: cannot share a store with group {b.name!r}: this user is not a member (see "
        "`id -Gn`); run it as root or as a member of the group"]
    assert not store.exists()


def test_adopt_group_by_a_member_who_owns_nothing_names_the_fix_and_changes_nothing(team: Team) -> None:
    a = team.users["a"]
    store = a.home.parent / "store"
    run("dss", "init", store)  # root's, not shared
    before = {p: p.lstat() for p in [store, *store.rglob("*")]}
    res = a.run("dss", "adopt", "--group", team.group, store, check=False)
    assert res.returncode == 1
    assert res.stderr.strip().splitlines() == [
        f"dss: error: store {store}: {len(before)} path(s) could not be given to group {team.group} "
        f"(first: {store}: Operation not permitted); run `dss adopt --group {team.group} {store}` as "
        "root or as their owner"]
    after = {p: p.lstat() for p in [store, *store.rglob("*")]}
    assert {p: (s.st_mode, s.st_gid) for p, s in after.items()} == {
        p: (s.st_mode, s.st_gid) for p, s in before.items()}
