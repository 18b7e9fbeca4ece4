"""`dss gc`: content no live bundle version and no branch needs leaves every replica, end to end
with real DataLad (loose and packed keys), a property test of what is kept, a kill -9 loop, and the
bad inputs (bad grace, unknown dataset, damaged archive, unreadable manifest, a push meanwhile)."""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import time
from datetime import timedelta
from pathlib import Path

import pytest
from cloud_servers import MirrorFixture
from conftest import annex_keys, dss, require_tool, run, write_files
from hypothesis import given, settings
from hypothesis import strategies as st

from dss_remote.admin.sibling import Sibling, create_sibling
from dss_remote.admin.store import add_mirror
from dss_remote.config import paths
from dss_remote.config.mirrors import Mirror
from dss_remote.config.store_config import read_config
from dss_remote.history import bundle_store
from dss_remote.history.references import live_keys
from dss_remote.replication.gc import collect, select
from dss_remote.replication.store_replicas import open_replicas, open_store_replicas
from ria_store import archive_write
from ria_store.archive_index import load_index
from ria_store.keys import parse_key
from ria_store.layout import ARCHIVE_PATH, OBJECTS_DIR, archive_members, dataset_relpath, object_relpath

DAY = 86400


def commit_and_push(dataset: Path, files: dict[str, bytes | None]) -> None:
    for rel, data in files.items():
        if data is None:
            (dataset / rel).unlink()
        else:
            p = dataset / rel
            if p.is_symlink() or p.exists():
                run("git", "annex", "unlock", rel, cwd=dataset)
                p.unlink()
            write_files(dataset, {rel: data})
    run("datalad", "-l", "error", "save", "-m", "change", cwd=dataset)
    run("datalad", "-l", "error", "push", "--to", "store", cwd=dataset)


def age_everything(sib: Sibling, seconds: int = 2 * DAY) -> None:
    """Make every object and the archive of the dataset look written `seconds` ago."""
    then = time.time() - seconds
    for p in [*(sib.dataset_dir / OBJECTS_DIR).rglob("*"), sib.dataset_dir / ARCHIVE_PATH]:
        if p.is_file():
            os.utime(p, (then, then))


def present(sib: Sibling, key: str) -> bool:
    """The key is loose in the store, or a member of its archive."""
    if (sib.dataset_dir / object_relpath(key, "2")).is_file():
        return True
    archive = sib.dataset_dir / ARCHIVE_PATH
    return archive.exists() and load_index(archive).first(archive_members(key)) is not None


@pytest.fixture
def history(published: Sibling, store: Path, dataset: Path) -> dict[str, object]:
    """Three versions: v1 (sample + gone.bin), v2 (gone.bin removed, kept.bin added), v3
    (small.txt changed). Returns the versions, their commits and the keys that matter."""
    commit_and_push(dataset, {"gone.bin": os.urandom(3000)})
    gone = annex_keys(dataset)["gone.bin"]
    old_small = annex_keys(dataset)["small.txt"]
    commit_and_push(dataset, {"gone.bin": None, "kept.bin": os.urandom(4000)})
    commit_and_push(dataset, {"small.txt": b"changed in v3\n"})
    log = bundle_store.read_log(store, published.dataset_id)
    return {"versions": [e.version for e in log], "commits": [e.commit for e in log], "gone": gone,
            "old_small": old_small, "keys": annex_keys(dataset)}


def test_gc_collects_what_no_live_version_needs_and_every_live_version_still_gets(
        published: Sibling, store: Path, dataset: Path, history: dict[str, object],
        tmp_path: Path) -> None:
    versions = history["versions"]
    assert isinstance(versions, list) and len(versions) >= 3
    gone, old_small = str(history["gone"]), str(history["old_small"])
    # only the versions that held gone.bin are tombstoned: the sample's first push and v1
    holders = [v for v in versions if any(f.get("key") == gone
                                          for f in bundle_store.load(store, published.dataset_id, v).files)]
    for v in holders:
        dss("bundles", "delete", store, f"{published.dataset_id}@{v}", "--reason", "retracted")
    dss("pack", store, "--min-age", "0s", "--remove-loose")  # so the archive path is exercised too
    age_everything(published)

    _, out, _ = dss("gc", store, "--grace", "1d", "--dry-run", "--json")
    (row,) = json.loads(out)["datasets"]
    assert [c["key"] for c in row["collected"]] == [gone], row
    assert row["collected"][0]["in_archive"] and row["collected"][0]["bytes"] == 3000
    assert present(published, gone), "a dry run removes nothing"

    _, out, _ = dss("gc", store, "--grace", "1d")
    assert "collected 1 key(s), 3000 bytes" in out
    assert not present(published, gone)
    assert present(published, old_small), "an older version that is live keeps its keys"
    report = next((store / paths.GC_REPORTS).iterdir())
    assert json.loads(report.read_text())["datasets"][0]["collected"][0]["key"] == gone
    _, out, _ = dss("events", store, "--json")
    collected = [e for e in map(json.loads, out.splitlines()) if e["type"] == "keys.collected"]
    assert len(collected) == 1 and "1 key(s), 3000 bytes" in collected[0]["reason"]
    archive = published.dataset_dir / ARCHIVE_PATH
    index, problems = archive_write.verify(archive, [])
    assert problems == [] and all(m.offset is not None for m in index.members.values())

    # every live version clones and gets in full, from the repacked archive
    live = [v for v in versions if v not in holders]
    commits = dict(zip(versions, history["commits"], strict=True))  # type: ignore[call-overload]
    clone = tmp_path / "clone"
    run("datalad", "-l", "error", "clone", f"ria+file://{store}#~sample", clone)
    for v in live:
        run("git", "checkout", "-q", commits[v], cwd=clone)
        run("datalad", "-l", "error", "get", ".", cwd=clone)
        for path, key in annex_keys(clone).items():
            assert (clone / path).is_file(), (v, path, key)
    run("git", "annex", "fsck", "--from", "store-storage", cwd=clone)  # the last live version
    rc, out, err = dss("fsck", store, "--deep", check=False)
    assert rc == 0, out + err


def test_a_key_a_branch_tip_references_is_kept_even_with_every_version_dead(
        published: Sibling, store: Path, dataset: Path) -> None:
    dss("bundles", "delete", store, published.dataset_id, "--reason", "all gone")
    age_everything(published)
    keys = set(annex_keys(dataset).values())
    _, out, _ = dss("gc", store, "--grace", "1d", "--json")
    (row,) = json.loads(out)["datasets"]
    assert row["collected"] == [] and row["referenced"] == len(keys)
    assert all(present(published, k) for k in keys)


def test_keys_younger_than_the_grace_period_are_kept(published: Sibling, store: Path,
                                                     history: dict[str, object]) -> None:
    dss("bundles", "delete", store, published.dataset_id, "--reason", "all gone")
    _, out, _ = dss("gc", store, "--grace", "1h", "--json")  # everything was just written
    (row,) = json.loads(out)["datasets"]
    assert row["collected"] == [] and row["young"] >= 1
    assert present(published, str(history["gone"]))


def test_bad_grace_unknown_dataset_and_a_damaged_archive_change_nothing(
        published: Sibling, store: Path, history: dict[str, object]) -> None:
    rc, _, err = dss("gc", store, "--grace", "a month", check=False)
    assert rc == 1 and "--grace 'a month' is not an age" in err and "30d" in err
    rc, _, err = dss("gc", store, "--dataset", "~nosuch", check=False)
    assert rc == 1 and "nosuch" in err and len(err.strip().splitlines()) == 1
    dss("pack", store, "--min-age", "0s", "--remove-loose")
    archive = published.dataset_dir / ARCHIVE_PATH
    archive.chmod(0o644)
    archive.write_bytes(b"7z\xbc\xaf\x27\x1c" + bytes(40))
    for v in history["versions"]:  # type: ignore[attr-defined]
        dss("bundles", "delete", store, f"{published.dataset_id}@{v}", "--reason", "x", check=False)
    age_everything(published)
    rc, _, err = dss("gc", store, "--grace", "1d", check=False)
    assert rc == 1 and "dss repair" in err and "nothing was collected" in err, err
    assert archive.read_bytes() == b"7z\xbc\xaf\x27\x1c" + bytes(40)


def test_an_unreadable_manifest_stops_the_gc_of_its_dataset(published: Sibling, store: Path,
                                                            history: dict[str, object]) -> None:
    versions = history["versions"]
    assert isinstance(versions, list)
    dss("bundles", "delete", store, f"{published.dataset_id}@{versions[0]}", "--reason", "x")
    manifest = store / paths.BUNDLES / published.dataset_id / f"{versions[-1]}.json"
    manifest.chmod(0o644)
    manifest.write_text("{not json")
    age_everything(published)
    before = sorted(p.name for p in (published.dataset_dir / OBJECTS_DIR).rglob("*") if p.is_file())
    rc, _, err = dss("gc", store, "--grace", "1d", check=False)
    assert rc == 1 and "not valid JSON" in err, err
    assert sorted(p.name for p in (published.dataset_dir / OBJECTS_DIR).rglob("*") if p.is_file()) == before


def test_a_push_during_the_gc_makes_it_collect_nothing(published: Sibling, store: Path,
                                                       history: dict[str, object]) -> None:
    dss("bundles", "delete", store, published.dataset_id, "--reason", "x")
    age_everything(published)
    answers = iter([frozenset(), frozenset({str(history["gone"])})])  # the second look sees a push
    with open_store_replicas(store) as sr:
        with pytest.raises(Exception, match="changed during the gc"):
            collect(sr, published.dataset_id, lambda: next(answers), grace=timedelta(0))
    assert present(published, str(history["gone"]))


# -- the property: a key any live version or tip references is never collected ----------------------
KEYS = [f"MD5E-s{i}--{i:032x}.bin" for i in range(1, 25)]


@settings(max_examples=300, deadline=None)
@given(versions=st.dictionaries(st.text("0123456789", min_size=1, max_size=3),
                                st.sets(st.sampled_from(KEYS), max_size=8), max_size=8),
       dead_pick=st.sets(st.integers(0, 7)),
       tips=st.lists(st.sets(st.sampled_from(KEYS), max_size=6), max_size=3),
       stored=st.dictionaries(st.sampled_from(KEYS),
                              st.one_of(st.none(), st.floats(0, 2 * DAY, allow_nan=False)), max_size=24),
       grace=st.floats(0, DAY, allow_nan=False))
def test_no_key_of_a_live_version_or_a_tip_is_ever_selected(versions: dict[str, set[str]],
                                                           dead_pick: set[int], tips: list[set[str]],
                                                           stored: dict[str, float | None],
                                                           grace: float) -> None:
    names = sorted(versions)
    dead = {names[i] for i in dead_pick if i < len(names)}
    keep = live_keys(versions, dead, tips)
    now = 2 * DAY
    chosen, young, no_age = select(stored, keep, now - grace)
    needed = set().union(*(versions[v] for v in names if v not in dead), *tips)
    assert not set(chosen) & needed
    # and it collects exactly the unreferenced keys old enough to have an age past the grace
    assert set(chosen) == {k for k, m in stored.items() if k not in needed and m is not None
                           and m <= now - grace}
    assert young + no_age + len(chosen) == len([k for k in stored if k not in needed])


# -- kill -9 at any point ------------------------------------------------------------------------
@pytest.mark.slow(60)
def test_a_kill_9_at_any_point_of_a_gc_loses_no_live_key(published: Sibling, store: Path,
                                                         dataset: Path, tmp_path: Path) -> None:
    files = {f"d/{i}.bin": os.urandom(3000 + i) for i in range(30)}
    commit_and_push(dataset, files)
    doomed = {annex_keys(dataset)[p] for p in list(files)[:15]}
    commit_and_push(dataset, dict.fromkeys(list(files)[:15]))
    live = {k for k in annex_keys(dataset).values()}
    old_versions = [e.version for e in bundle_store.read_log(store, published.dataset_id)][:-1]
    for v in old_versions:
        dss("bundles", "delete", store, f"{published.dataset_id}@{v}", "--reason", "x")
    dss("pack", store, "--min-age", "0s")  # half of each key's copies packed, all loose too
    half = sorted(doomed)[: len(doomed) // 2]
    for k in half:  # some doomed keys only in the archive
        p = published.dataset_dir / object_relpath(k, "2")
        p.unlink()
    age_everything(published)
    dsdir = published.dataset_dir
    backup = tmp_path / "backup"
    shutil.copytree(dsdir / "annex", backup / "annex")
    shutil.copy2(dsdir / ARCHIVE_PATH, backup / "archive.7z")
    cmd = [require_tool("dss"), "gc", str(store), "--grace", "1d"]
    started = time.monotonic()
    run(*cmd)
    full = time.monotonic() - started
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    for i in range(50):
        for p in [dsdir / "annex", *(dsdir / "annex").rglob("*")]:
            if p.is_dir():
                p.chmod(0o755)
        shutil.rmtree(dsdir / "annex")
        shutil.copytree(backup / "annex", dsdir / "annex")
        with contextlib.suppress(FileNotFoundError):
            (dsdir / ARCHIVE_PATH).unlink()
        shutil.copy2(backup / "archive.7z", dsdir / ARCHIVE_PATH)
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        try:
            time.sleep(rng.uniform(0, full * 1.1))
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        missing = [k for k in live if not present(published, k)]
        assert missing == [], f"seed {seed}, kill {i}: live keys gone: {missing}"
        archive = dsdir / ARCHIVE_PATH
        assert archive_write.verify(archive, [parse_key(k) for k in live
                                              if load_index(archive).first(archive_members(k))])[1] == []
    run(*cmd)  # a run after the kills finishes the job
    assert not any(present(published, k) for k in doomed)
    rc, out, err = dss("fsck", store, "--deep", check=False)
    assert rc == 0, out + err


def test_gc_removes_collected_keys_from_the_mirrors_too(store: Path, dataset: Path,
                                                         s3_mirror: MirrorFixture) -> None:
    require_tool("git-annex-remote-dss")
    add_mirror(store, Mirror(url=s3_mirror.url, name="s3", endpoint_url=s3_mirror.endpoint_url))
    sib = create_sibling(dataset, "store", f"ria+file://{store}", alias="sample")
    run("datalad", "-l", "error", "push", "--to", "store", cwd=dataset)
    commit_and_push(dataset, {"gone.bin": os.urandom(2500)})
    gone = annex_keys(dataset)["gone.bin"]
    commit_and_push(dataset, {"gone.bin": None})
    holder = [v for v in bundle_store.versions(store, sib.dataset_id)
              if any(f.get("key") == gone for f in bundle_store.load(store, sib.dataset_id, v).files)]
    for v in holder:
        dss("bundles", "delete", store, f"{sib.dataset_id}@{v}", "--reason", "x")
    s3 = dict(open_replicas(f"ria+file://{store}", read_config(store)).backends)["s3"]
    rel = f"{dataset_relpath(sib.dataset_id)}/{object_relpath(gone, '2')}"
    assert s3.info(rel) is not None, "the push wrote the key to the mirror"
    age_everything(sib)
    _, out, _ = dss("gc", store, "--grace", "1d", "--json")
    (row,) = json.loads(out)["datasets"]
    assert [(c["key"], c["replicas"]) for c in row["collected"]] == [(gone, ["store", "s3"])], row
    assert s3.info(rel) is None and not present(sib, gone)
    for path, key in annex_keys(dataset).items():  # what the tip needs stays on both
        assert present(sib, key), path
        assert s3.info(f"{dataset_relpath(sib.dataset_id)}/{object_relpath(key, '2')}") is not None
