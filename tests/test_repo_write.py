"""ria_store.repo_write and ria_store.annex_branch: commits without a work tree, moved only from
the commits they were built on, and git-annex's formats exactly as git-annex itself writes them."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from conftest import require_tool, run

from dss_remote.service import file_pool
from ria_store import annex_branch, repo_write

UUID = "5f2c8a1e-3b4d-4c6e-8f90-123456789abc"
OTHER = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"


def _bare(tmp_path: Path) -> Path:
    repo = tmp_path / "r.git"
    run("git", "init", "-q", "--bare", repo)
    return repo


def test_names_git_would_quote_round_trip_through_fast_import(tmp_path: Path) -> None:
    repo = _bare(tmp_path)
    names = ['we"ird', "back\\slash", "space name.txt", "ünïcode/δ.txt", "nested/deep/a.json", '"lead']
    made = repo_write.write_commits(repo, [repo_write.CommitSpec(
        "refs/heads/main", None, "m", files={n: ("100644", n.encode() + b"\n") for n in names})],
        "t <t@x>", 1_700_000_000)
    assert set(repo_write.tree_listing(repo, made["refs/heads/main"])) == set(names)
    got = repo_write.read_paths(repo, made["refs/heads/main"], [*names, "absent"])
    assert got == {n: n.encode() + b"\n" for n in names}
    # nothing moved and no temporary ref is left
    assert run("git", "--git-dir", repo, "for-each-ref", cwd=tmp_path).stdout == ""


def test_branches_move_together_and_only_from_the_commits_they_were_built_on(tmp_path: Path) -> None:
    repo = _bare(tmp_path)

    def commit(parent: str | None, text: bytes) -> dict[str, str]:
        return repo_write.write_commits(repo, [
            repo_write.CommitSpec("refs/heads/main", parent, "m", files={"f": ("100644", text)}),
            repo_write.CommitSpec("refs/heads/git-annex", None, "a", files={"uuid.log": ("100644", text)})],
            "t <t@x>", 1_700_000_000)

    first = commit(None, b"1")
    repo_write.move_branches(repo, {b: (c, None) for b, c in first.items()})
    second, third = commit(first["refs/heads/main"], b"2"), commit(first["refs/heads/main"], b"3")
    repo_write.move_branches(repo, {b: (c, first[b]) for b, c in second.items()})
    with pytest.raises(repo_write.RefMoved):  # built on `first`, which is no longer the tip
        repo_write.move_branches(repo, {b: (c, first[b]) for b, c in third.items()})
    with pytest.raises(repo_write.RefMoved):  # one branch right, the other stale: neither moves
        main, annex = "refs/heads/main", "refs/heads/git-annex"
        repo_write.move_branches(repo, {main: (third[main], second[main]),
                                        annex: (third[annex], first[annex])})
    for branch, sha in second.items():
        assert run("git", "--git-dir", repo, "rev-parse", branch, cwd=tmp_path).stdout.strip() == sha
    run("git", "--git-dir", repo, "fsck", "--strict", cwd=tmp_path)


def test_location_logs_say_present_once_and_the_last_line_per_uuid_wins() -> None:
    log = annex_branch.with_present(b"", UUID, "1700000000.000000001s")
    assert log == f"1700000000.000000001s 1 {UUID}\n".encode()
    assert annex_branch.with_present(log, UUID, "1800000000s") == log
    dropped = log + f"1700000001s 0 {UUID}\n1700000002s 1 {OTHER}".encode()
    assert not annex_branch.present_in(dropped, UUID) and annex_branch.present_in(dropped, OTHER)
    again = annex_branch.with_present(dropped, UUID, "1800000000s")
    assert again.endswith(f"\n1800000000s 1 {UUID}\n".encode()) and annex_branch.present_in(again, UUID)
    with pytest.raises(Exception, match="uuid"):
        annex_branch.with_present(b"", "not-a-uuid", "1s")
    with pytest.raises(Exception, match="whitespace"):
        annex_branch.remote_log_line(UUID, {"url": "ria+file:///a store"}, "1s")


def test_symlinks_and_location_log_paths_are_the_ones_git_annex_makes(tmp_path: Path) -> None:
    require_tool("git-annex")
    repo = tmp_path / "annexed"
    run("git", "init", "-q", repo)
    run("git", "annex", "init", "-q", cwd=repo)
    files = {"top.nii.gz": os.urandom(100), "a/b/c/deep.json": b"{}\n", "odd name.tar.gz": b"x"}
    for rel, data in files.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_bytes(data)
    run("git", "-c", "annex.backend=SHA256E", "annex", "add", "-q", ".", cwd=repo)
    run("git", "commit", "-q", "-m", "add", cwd=repo)
    branch = set(run("git", "ls-tree", "-r", "--name-only", "git-annex", cwd=repo).stdout.split("\n"))
    for rel, data in files.items():
        target = os.readlink(repo / rel)
        key = target.rsplit("/", 1)[-1]
        assert annex_branch.symlink_target(rel, key) == target
        assert annex_branch.location_log_path(key) in branch
        # the key the file pool gives the same bytes under the same name
        assert file_pool.key_for(hashlib.sha256(data).hexdigest(), len(data), rel) == key
