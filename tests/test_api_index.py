"""The server's derived file index: built from the manifests, following the journal, rebuilt when
missing, corrupt or of an older schema, shared by several processes."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from api_data import Pushed, isolated_home, push_more, push_new

from dss_remote.server import dss_mapping
from dss_remote.server.file_index import FileIndex, default_cache_dir


@pytest.fixture
def pushed(tmp_path: Path, tools_path: str) -> Pushed:
    """A store of this test's own, for a test that pushes to it or records into it."""
    with isolated_home(tmp_path / "pushing", tools_path):
        return push_new(tmp_path / "store", tmp_path / "ds", {"a.txt": b"a\n", "b.txt": b"b\n"})


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory, tools_path: str) -> Pushed:
    """One store for the tests that only read it (each builds its index in its own cache dir)."""
    base = tmp_path_factory.mktemp("index")
    with isolated_home(base / "pushing", tools_path):
        return push_new(base / "store", base / "ds", {"a.txt": b"a\n", "b.txt": b"b\n"})


def _generation(cache: Path) -> str:
    return (cache / "current").read_text().strip()


def test_the_index_follows_the_journal_once_its_interval_passed(pushed: Pushed, tmp_path: Path,
                                                                tools_path: str) -> None:
    index = FileIndex(pushed.store, tmp_path / "cache", refresh_seconds=3600)
    assert index.bundle_versions(pushed.dataset_id) == pushed.versions
    built = _generation(tmp_path / "cache")
    with isolated_home(tmp_path / "pushing", tools_path):
        newest = push_more(pushed, {"a.txt": b"changed\n"})
    # within the interval the index is not asked again
    assert index.bundle_versions(pushed.dataset_id) == pushed.versions[:1]
    index.refresh(force=True)
    assert index.bundle_versions(pushed.dataset_id) == pushed.versions
    assert _generation(tmp_path / "cache") == built, "followed, not rebuilt"
    a = index.file(dss_mapping.file_uuid(pushed.dataset_id, "a.txt"))
    b = index.file(dss_mapping.file_uuid(pushed.dataset_id, "b.txt"))
    assert a is not None and b is not None
    assert (a.file_version, b.file_version) == (newest, pushed.versions[0])


def test_a_missing_index_is_rebuilt(shared: Pushed, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    index = FileIndex(shared.store, cache, refresh_seconds=0)
    assert index.bundle_versions(shared.dataset_id) == shared.versions
    for p in cache.iterdir():
        p.unlink()
    assert index.bundle_versions(shared.dataset_id) == shared.versions


def test_a_corrupt_index_is_rebuilt(shared: Pushed, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    index = FileIndex(shared.store, cache, refresh_seconds=0)
    index.refresh()
    broken = _generation(cache)
    (cache / broken).write_bytes(b"this is not a database" * 100)
    assert index.bundle_versions(shared.dataset_id) == shared.versions
    assert _generation(cache) != broken
    assert not (cache / broken).exists(), "the old generation is removed"


def test_an_index_of_an_older_schema_is_rebuilt(shared: Pushed, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    index = FileIndex(shared.store, cache, refresh_seconds=0)
    index.refresh()
    old = _generation(cache)
    with sqlite3.connect(cache / old) as db:
        db.execute("UPDATE meta SET value = '0' WHERE name = 'schema'")
        db.execute("DELETE FROM bundles")
    assert index.bundle_versions(shared.dataset_id) == shared.versions
    assert _generation(cache) != old


def test_a_current_pointing_outside_the_cache_is_rebuilt(shared: Pushed, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    index = FileIndex(shared.store, cache, refresh_seconds=0)
    index.refresh()
    (cache / "current").write_text("../../etc/passwd\n")
    assert index.bundle_versions(shared.dataset_id) == shared.versions
    assert _generation(cache).startswith("index-")


def test_several_processes_build_and_read_one_index(shared: Pushed, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    script = textwrap.dedent(f"""
        from pathlib import Path
        from dss_remote.server.file_index import FileIndex
        index = FileIndex(Path({str(shared.store)!r}), Path({str(cache)!r}), refresh_seconds=0)
        for _ in range(5):
            print(",".join(index.bundle_versions({shared.dataset_id!r})))
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(3)]
    try:
        outs = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert [p.returncode for p in procs] == [0, 0, 0], [e for _, e in outs]
    for out, _ in outs:
        assert out.split() == [",".join(shared.versions)] * 5
    assert len([p for p in cache.glob("index-*.sqlite")]) == 1, "one generation, built once"


def test_the_default_cache_dir_is_per_store_under_xdg_cache_home(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    one, two = default_cache_dir(tmp_path / "s1"), default_cache_dir(tmp_path / "s2")
    assert one.parent == two.parent == tmp_path / "xdg" / "dss-remote" / "serve"
    assert one != two
    (tmp_path / "s1").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "s1")
    assert default_cache_dir(tmp_path / "link") == one, "the store's real path names it"


def test_an_index_that_cannot_be_built_is_503_with_the_dss_body(shared: Pushed, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient
    from gate_double import GateDouble

    from dss_remote.server.app import create_app

    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache directory should be")
    app = create_app(shared.store, GateDouble(public={shared.dataset_id}), cache_dir=blocker / "cache")
    res = TestClient(app).get(f"/v1/bundles/{shared.dataset_id}")
    assert res.status_code == 503 and res.headers["Retry-After"] == "10"
    assert res.json() == {"status": 503, "code": "unavailable", "title": (
        "the server cannot read or build its index of the store now; retry later (the cause is in "
        "the server's log)")}
    assert blocker.read_text() == "a file where the cache directory should be"


def test_a_build_that_fails_part_way_leaves_the_previous_index_current(
        shared: Pushed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dss_remote.history import bundle_store

    cache = tmp_path / "cache"
    FileIndex(shared.store, cache, refresh_seconds=0).refresh()
    before = _generation(cache)

    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("killed during the build")

    (cache / before).write_bytes(b"corrupt, so the next refresh rebuilds")
    monkeypatch.setattr(bundle_store, "load", crash)
    with pytest.raises(RuntimeError, match="killed during the build"):
        FileIndex(shared.store, cache, refresh_seconds=0).refresh()
    assert _generation(cache) == before, "current still names the last complete generation"
    assert sorted(p.name for p in cache.iterdir()) == sorted({"build.lock", "current", before}), (
        "the half-built generation is removed")


def test_a_version_dss_sync_rebuilt_with_an_old_time_is_found(pushed: Pushed, tmp_path: Path) -> None:
    from datetime import timedelta

    from conftest import run

    from dss_remote.history import bundle_store, bundles, events
    from ria_store.layout import dataset_relpath

    index = FileIndex(pushed.store, tmp_path / "cache", refresh_seconds=0)
    assert index.bundle_versions(pushed.dataset_id) == pushed.versions
    repo = pushed.store / dataset_relpath(pushed.dataset_id)
    older = run("git", "rev-parse", "HEAD~1", cwd=pushed.dataset).stdout.strip()
    # what `dss sync` does for a push the hook missed: a version at the push's (earlier) time
    when = bundles.parse_version(pushed.versions[0]) - timedelta(hours=1)
    rec = bundle_store.record(pushed.store, pushed.dataset_id, repo, "refs/heads/main", commit=older,
                              now=when, rebuilt=True)
    assert rec is not None
    rebuilt = rec.manifest.head.version
    events.append(pushed.store, events.bundle_created(pushed.dataset_id, rebuilt, older, "refs/heads/main"))
    assert rebuilt < pushed.versions[0], "its event sorts before the index's cursor"
    assert index.bundle_versions(pushed.dataset_id) == sorted([rebuilt, *pushed.versions])


def test_an_index_damaged_past_its_meta_table_is_rebuilt_after_one_503(shared: Pushed,
                                                                       tmp_path: Path) -> None:
    from fastapi.testclient import TestClient
    from gate_double import GateDouble

    from dss_remote.server.app import create_app

    cache = tmp_path / "cache"
    client = TestClient(create_app(shared.store, GateDouble(public={shared.dataset_id}), cache_dir=cache))
    url = f"/v1/bundles/{shared.dataset_id}"
    assert client.get(url).status_code == 200
    with sqlite3.connect(cache / _generation(cache)) as db:
        db.execute("DROP TABLE bundle_files")
    damaged = client.get(url, params={"version": shared.versions[0]})
    assert damaged.status_code == 503 and damaged.json()["code"] == "unavailable"
    assert client.get(url).json()["bundle"]["version"] == shared.versions[0]


def test_a_thread_keeps_its_connection_until_a_rebuild_switches_the_generation(shared: Pushed,
                                                                               tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    index = FileIndex(shared.store, cache, refresh_seconds=0)
    fuuid = dss_mapping.file_uuid(shared.dataset_id, "a.txt")
    assert index.file(fuuid) is not None
    first = index._local.db
    assert index.file(fuuid) is not None
    assert index._local.db is first, "the second lookup reuses the thread's connection"
    (cache / "current").unlink()  # what another worker's rebuild looks like from here: a new generation
    assert index.file(fuuid) is not None
    assert index._local.db[0] != first[0] and _generation(cache) == index._local.db[0].name
