"""Real write failures under real `git annex copy`: a read-only store and a full disk.

Run as root, the store is made read-only with a read-only bind mount, and the disk is filled
with a tiny tmpfs, each inside a private mount namespace (`unshare -m`), so the kernel itself
answers EROFS / ENOSPC. Run as another user, the read-only store uses file modes instead; the
full disk then needs root and the test says so.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import pytest
from conftest import require_tool, run, write_files

from dss_remote.admin.sibling import Sibling

IS_ROOT = os.geteuid() == 0


def in_namespace(setup: str, command: str, cwd: Path) -> tuple[int, str]:
    """Run `setup` (mounts) then `command` in a private mount namespace; (exit code, output)."""
    unshare = require_tool("unshare", "apt-get install util-linux")
    script = f"set -e; {setup}; set +e; {command}; echo \"rc=$?\"; "
    res = run(unshare, "-m", "--propagation", "private", "sh", "-c", script, cwd=cwd, check=False)
    out = res.stdout + res.stderr
    if res.returncode != 0 or "rc=" not in out:
        pytest.fail(f"cannot set up a private mount namespace (needs root with CAP_SYS_ADMIN): {out[-500:]}")
    rc = int(out.rsplit("rc=", 1)[1].split()[0])
    return rc, out


def tree(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*") if p.is_file()}


def test_read_only_store_copy_fails_cleanly(published: Sibling, dataset: Path, store: Path) -> None:
    write_files(dataset, {"new.bin": os.urandom(50_000)})
    run("datalad", "-l", "error", "save", "-m", "new", cwd=dataset)
    before = tree(store)
    copy = "git annex copy --to store-storage new.bin"
    if IS_ROOT:
        s = shlex.quote(str(store))
        rc, out = in_namespace(f"mount --bind {s} {s}; mount -o remount,ro,bind {s} {s}", copy, dataset)
    else:
        objects = published.dataset_dir / "annex" / "objects"
        dirs = [objects, *[p for p in objects.rglob("*") if p.is_dir()]]
        for d in dirs:
            d.chmod(0o555)
        try:
            res = run(*shlex.split(copy), cwd=dataset, check=False)
        finally:
            for d in dirs:
                d.chmod(0o755)
        rc, out = res.returncode, res.stdout + res.stderr
    assert rc != 0
    assert "is read-only for this user" in out and "ask the store admin for write access" in out
    assert tree(store) == before
    whereis = run("git", "annex", "whereis", "--in=store-storage", "new.bin", cwd=dataset, check=False)
    assert whereis.stdout.strip() == "", "git-annex must not think the key reached the store"


def test_disk_full_during_copy_leaves_no_partial_object(published: Sibling, dataset: Path) -> None:
    if not IS_ROOT:
        pytest.fail("this test fills a private tmpfs and needs root (run the suite as root, as CI does)")
    write_files(dataset, {"big.bin": os.urandom(3 << 20)})
    run("datalad", "-l", "error", "save", "-m", "big", cwd=dataset)
    objects = shlex.quote(str(published.dataset_dir / "annex" / "objects"))
    rc, out = in_namespace(
        f"mount -t tmpfs -o size=1m tmpfs {objects}",
        f"git annex copy --to store-storage big.bin; r=$?; echo FILES:; find {objects} -type f; (exit $r)",
        dataset)
    assert rc != 0
    assert "no space left" in out and "free space or raise the quota" in out
    files = out.split("FILES:", 1)[1].split("rc=")[0].split()
    assert files == [], f"partial files left on the full file system: {files}"
    whereis = run("git", "annex", "whereis", "--in=store-storage", "big.bin", cwd=dataset, check=False)
    assert whereis.stdout.strip() == ""
