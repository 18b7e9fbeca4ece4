"""kill -9 of `git annex copy --to` a store with an S3 mirror, at random points: no reader ever sees
a partial object, no key is lost, and what the kills leave `dss sync` cleans up."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
from cloud_servers import MirrorFixture, s3_admin_client
from conftest import require_tool, run
from test_concurrency import make_repo

from dss_remote.admin.store import add_mirror
from dss_remote.backends.posix import PosixBackend
from dss_remote.config.mirrors import Mirror
from ria_store import store as ria
from ria_store.atomic import TMP_PREFIX
from ria_store.keys import parse_key
from ria_store.layout import dataset_relpath, object_relpath

DSID = "7a8b9c0d-1e2f-4a3b-8c4d-5e6f7a8b9c0d"
MiB = 1 << 20
#: over the S3 backend's 8 MiB multipart threshold, so that kills land in multipart uploads
SIZES = [9 * MiB + 1234, 10 * MiB + 77, 9 * MiB + 5, 12 * MiB]
KILLS = 20
#: more attempts, if the kills so far left nothing for sync to clean or too few copies were still
#: running when killed (they land at random, and a copy's time changes with the machine's load)
EXTRA_KILLS = 10


def copy_killed_after(repo: Path, delay: float) -> float | None:
    """`git annex copy --to store`, its whole process group (git-annex, our remote, their children)
    killed with SIGKILL after `delay` seconds: None; the seconds it took if it finished before."""
    started = time.monotonic()
    proc = subprocess.Popen(["git", "annex", "copy", "--to", "store", "."], cwd=repo,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        proc.wait(timeout=delay)
        return time.monotonic() - started
    except subprocess.TimeoutExpired:
        return None
    finally:
        with contextlib.suppress(ProcessLookupError):  # the group may be gone already
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def forget_copies(repo: Path, store: Path, mirror: MirrorFixture, keys: list[str]) -> None:
    """Remove every key's objects from the store and the mirror (leftovers stay) and tell git-annex
    the store lacks them, so that the next copy sends each key again."""
    backend = PosixBackend(store)
    client = s3_admin_client(mirror.endpoint_url)
    for key in keys:
        rel = f"{dataset_relpath(DSID)}/{object_relpath(key, '2')}"
        backend.remove(rel)
        client.delete_object(Bucket=mirror.bucket, Key=f"lab/store/{rel}")
    uuid = run("git", "config", "remote.store.annex-uuid", cwd=repo).stdout.strip()
    batch = "".join(f"{key} {uuid} 0\n" for key in keys)
    res = subprocess.run(["git", "annex", "setpresentkey", "--batch"], cwd=repo, input=batch, text=True,
                         capture_output=True, timeout=120, check=False)
    assert res.returncode == 0, res.stderr


def uploads(mirror: MirrorFixture) -> list[str]:
    answer = s3_admin_client(mirror.endpoint_url).list_multipart_uploads(Bucket=mirror.bucket)
    return [u["Key"] for u in answer.get("Uploads", [])]


def temp_files(dsdir: Path) -> list[Path]:
    return [p for p in dsdir.rglob(f"{TMP_PREFIX}*") if p.is_file()]


def empty_dirs(objects: Path) -> list[Path]:
    return [Path(d) for d, dirs, files in os.walk(objects) if not dirs and not files and Path(d) != objects]


def visible_objects(dsdir: Path, mirror: MirrorFixture) -> dict[str, list[int]]:
    """{key: [size seen on each replica that shows it]}: what a reader could open now."""
    seen: dict[str, list[int]] = {}
    for path in (dsdir / "annex" / "objects").rglob("*"):
        if path.is_file() and not path.name.startswith(TMP_PREFIX):
            seen.setdefault(path.name, []).append(path.stat().st_size)
    client = s3_admin_client(mirror.endpoint_url)
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=mirror.bucket, Prefix="lab/store/"):
        for obj in page.get("Contents", []):
            if "/annex/objects/" in obj["Key"]:
                seen.setdefault(obj["Key"].rsplit("/", 1)[-1], []).append(obj["Size"])
    return seen


@pytest.mark.slow(45)
def test_kill_9_during_copy_leaves_no_partial_object_and_sync_cleans_what_is_left(
        store: Path, tmp_path: Path, s3_mirror: MirrorFixture) -> None:
    require_tool("git-annex-remote-dss")
    dsdir = ria.create_dataset(ria.open_store(store), DSID)
    add_mirror(store, Mirror(url=s3_mirror.url, name="s3", endpoint_url=s3_mirror.endpoint_url))
    files = {f"big{i}.bin": os.urandom(size) for i, size in enumerate(SIZES)}
    repo = tmp_path / "repo"
    make_repo(repo, files, store, DSID)
    keys = dict(line.split("\t") for line in run(
        "git", "annex", "find", "--format=${file}\\t${key}\\n", cwd=repo).stdout.splitlines())

    # one copy that runs to its end sets the range the kills are spread over (no assertion on it)
    started = time.monotonic()
    run("git", "annex", "copy", "--to", "store", ".", cwd=repo)
    whole = time.monotonic() - started
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    kills, left = 0, 0
    for attempt in range(KILLS + EXTRA_KILLS):
        if attempt >= KILLS and left and kills >= KILLS // 2:
            break
        forget_copies(repo, store, s3_mirror, list(keys.values()))  # all go up again
        took = copy_killed_after(repo, rng.uniform(0.05, 1.0) * whole)
        if took is None:
            kills += 1
        else:  # the machine got faster (the other tests' load changes): spread the kills over this
            whole = min(whole, took)
        for key, sizes in visible_objects(dsdir, s3_mirror).items():
            expected = parse_key(key).expected_size
            assert all(size == expected for size in sizes), (
                f"seed {seed}, kill {attempt}: a reader could see a partial {key}: sizes {sizes}")
        left = max(left, len(temp_files(dsdir)) + len(uploads(s3_mirror)))
    assert kills >= KILLS // 2, f"seed {seed}: only {kills} copies were still running when killed"
    assert left, f"seed {seed}: {kills} kills left nothing to clean up"

    run("git", "annex", "copy", "--to", "store", ".", cwd=repo)  # every key, after all those kills
    res = run("dss", "sync", store, "--leftover-age", "0")
    assert "0 failed" in res.stderr, res.stderr
    res = run("dss", "fsck", store, "--deep", "--json", check=False)
    assert (res.returncode, json.loads(res.stdout)["findings"]) == (0, []), res.stdout
    assert temp_files(dsdir) == []
    assert uploads(s3_mirror) == []
    assert empty_dirs(dsdir / "annex" / "objects") == []
    client = s3_admin_client(s3_mirror.endpoint_url)
    for name, key in keys.items():
        want = hashlib.sha256(files[name]).hexdigest()
        rel = f"{dataset_relpath(DSID)}/{object_relpath(key, '2')}"
        assert hashlib.sha256((store / rel).read_bytes()).hexdigest() == want, key
        body = client.get_object(Bucket=s3_mirror.bucket, Key=f"lab/store/{rel}")["Body"].read()
        assert hashlib.sha256(body).hexdigest() == want, key
    run("git", "annex", "fsck", "--from", "store", "--fast", "-q", cwd=repo)
