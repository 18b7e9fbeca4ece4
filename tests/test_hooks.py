"""The post-update hook through real pushes: bundle versions, events, adopt, failure and catch-up."""

from __future__ import annotations

import json
import os
import select
import subprocess
import threading
from pathlib import Path

from conftest import require_tool, run, write_files

from dss_remote.admin.sibling import Sibling, create_sibling
from dss_remote.history import bundle_store
from dss_remote.hook.install import CHAINED, MARKER
from ria_store.layout import dataset_relpath


def _dss(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run("dss", *args, check=check)


def _bundles(store: Path, dsid: str | None = None) -> list[dict[str, object]]:
    args = ["bundles", "list", store, "--json"] + (["--dataset", dsid] if dsid else [])
    return list(json.loads(_dss(*args).stdout))


def _events(store: Path, *extra: str) -> list[dict[str, str]]:
    out = _dss("events", store, "--json", *extra).stdout
    return [json.loads(line) for line in out.splitlines()]


def _commit(ds: Path, files: dict[str, bytes], msg: str) -> None:
    write_files(ds, files)
    run("datalad", "-l", "error", "save", "-m", msg, cwd=ds)


def test_push_records_a_bundle_version_with_keys_and_checksums(published: Sibling, store: Path,
                                                               dataset: Path) -> None:
    rows = _bundles(store)
    assert [(r["dataset_id"], r["ref"]) for r in rows] == [(published.dataset_id, "refs/heads/main")]
    head = run("git", "rev-parse", "HEAD", cwd=dataset).stdout.strip()
    assert rows[0]["commit"] == head
    manifest = json.loads(_dss("bundles", "show", store, "~sample", "--json").stdout)
    assert manifest["version"] == rows[0]["version"]
    assert manifest["parent_version"] is None
    files = {f["path"]: f for f in manifest["files"]}
    key = run("git", "annex", "lookupkey", "small.txt", cwd=dataset).stdout.strip()
    assert files["small.txt"]["key"] == key
    assert files["small.txt"]["checksums"] == {"md5": key.split("--")[1].split(".")[0]}
    assert files["small.txt"]["size"] == len(b"hello store\n")
    assert files[".datalad/config"]["type"] == "git"
    path = store / "dss" / "bundles" / published.dataset_id / f"{manifest['version']}.json"
    assert path.stat().st_mode & 0o222 == 0, "manifests are immutable"
    evs = _events(store)
    assert [(e["type"], e["version"], e["commit"]) for e in evs] == [
        ("bundle.created", manifest["version"], head)]
    assert (store / dataset_relpath(published.dataset_id) / "info" / "refs").is_file()


def test_second_push_names_its_parent_and_git_annex_only_pushes_add_nothing(
        published: Sibling, store: Path, dataset: Path) -> None:
    first = _bundles(store)[0]
    _commit(dataset, {"new.csv": b"a,b\n1,2\n"}, "more")
    run("datalad", "-l", "error", "push", "--to", "store", cwd=dataset)
    rows = _bundles(store)
    assert len(rows) == 2
    second = json.loads(_dss("bundles", "show", store, f"{published.dataset_id}@{rows[1]['version']}",
                             "--json").stdout)
    assert second["parent_version"] == first["version"]
    assert {f["path"] for f in second["files"]} >= {"new.csv", "small.txt"}
    # Only the git-annex branch moves: no new version, no new event.
    run("git", "annex", "metadata", "small.txt", "-s", "tag=x", cwd=dataset)
    run("git", "push", "store", "git-annex", cwd=dataset)
    assert len(_bundles(store)) == 2
    assert len(_events(store)) == 2
    assert [e["event_id"] for e in _events(store, "--since", _events(store)[0]["event_id"])] == [
        _events(store)[1]["event_id"]]


def test_tags_are_ignored(published: Sibling, store: Path, dataset: Path) -> None:
    run("git", "tag", "v1", cwd=dataset)
    res = run("git", "push", "store", "v1", cwd=dataset)
    assert "bundle version" not in res.stderr
    assert len(_bundles(store)) == 1


def test_bundles_show_unknown_version_says_how_to_list(published: Sibling, store: Path) -> None:
    res = _dss("bundles", "show", store, f"{published.dataset_id}@2020-01-01T000000.000000Z", check=False)
    assert res.returncode == 1
    assert res.stderr.strip() == (
        f"dss: error: no bundle version {published.dataset_id}@2020-01-01T000000.000000Z "
        f"(see `dss bundles list {store} --dataset {published.dataset_id}`)")
    bad = _dss("bundles", "show", store, f"{published.dataset_id}@yesterday", check=False)
    assert bad.returncode == 1
    assert "expected UTC time like 2026-11-22T031533.123456Z" in bad.stderr


def test_events_since_garbage_names_the_forms(store: Path) -> None:
    res = _dss("events", store, "--since", "last tuesday", check=False)
    assert res.returncode == 1
    assert "is neither an event id nor a time" in res.stderr


def test_adopt_chains_datalads_hook_and_is_idempotent(store: Path, dataset: Path) -> None:
    require_tool("datalad")
    run("datalad", "-l", "error", "create-sibling-ria", "-s", "ria", "--new-store-ok",
        "--post-update-hook", f"ria+file://{store}", cwd=dataset)
    dsid = run("datalad", "configuration", "get", "datalad.dataset.id", cwd=dataset).stdout.strip()
    hooks = store / dataset_relpath(dsid) / "hooks"
    datalads = (hooks / "post-update").read_text()
    out = _dss("adopt", store).stdout
    assert f"{dsid}\thook chained" in out
    assert (hooks / CHAINED).read_text() == datalads
    assert MARKER in (hooks / "post-update").read_text()
    assert f"{dsid}\thook unchanged" in _dss("adopt", store).stdout
    (store / dataset_relpath(dsid) / "info" / "refs").unlink()
    run("datalad", "-l", "error", "push", "--to", "ria", cwd=dataset)
    assert [r["dataset_id"] for r in _bundles(store)] == [dsid]
    assert (store / dataset_relpath(dsid) / "info" / "refs").is_file()


def test_failed_manifest_write_keeps_the_push_and_sync_rebuilds_it(published: Sibling, store: Path,
                                                                   dataset: Path) -> None:
    dsid = published.dataset_id
    bdir = store / "dss" / "bundles" / dsid
    saved = bdir.with_name("saved")
    os.rename(bdir, saved)
    bdir.write_text("not a directory")  # every write under it fails, even as root
    _commit(dataset, {"later.txt": b"later\n"}, "later")
    res = run("datalad", "-l", "error", "push", "--to", "store", cwd=dataset)
    assert res.returncode == 0
    head = run("git", "rev-parse", "HEAD", cwd=dataset).stdout.strip()
    assert run("git", "--git-dir", store / dataset_relpath(dsid), "rev-parse", "main").stdout.strip() == head
    bdir.unlink()
    os.rename(saved, bdir)
    assert len(_bundles(store)) == 1
    out = _dss("sync", store).stdout
    assert "rebuilt bundle version" in out
    rows = _bundles(store)
    assert [r["commit"] for r in rows][-1] == head
    assert rows[-1]["rebuilt"] is True
    assert [e["commit"] for e in _events(store)][-1] == head
    again = _dss("sync", store).stdout
    assert "rebuilt" not in again and "missing event" not in again


def test_missing_event_is_written_by_sync(published: Sibling, store: Path) -> None:
    ev = _events(store)[0]
    path = store / "dss" / "events" / ev["event_id"][:10] / f"{ev['event_id']}.json"
    path.unlink()
    assert "wrote missing event" in _dss("sync", store).stdout
    assert _events(store) == [ev]


def test_two_pushes_racing_on_two_datasets(store: Path, tmp_path: Path) -> None:
    require_tool("datalad")
    datasets = []
    for name in ("one", "two"):
        ds = tmp_path / name
        run("datalad", "-l", "error", "create", ds)
        _commit(ds, {f"{name}.txt": name.encode()}, name)
        create_sibling(ds, "store", f"ria+file://{store}")
        datasets.append(ds)
    errors: list[BaseException] = []

    def push(ds: Path) -> None:
        try:
            run("git", "push", "store", "main", cwd=ds)
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=push, args=(ds,)) for ds in datasets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    rows = _bundles(store)
    assert len(rows) == 2
    evs = _events(store)
    assert len(evs) == 2
    assert {e["dataset_id"] for e in evs} == {r["dataset_id"] for r in rows}
    assert [e["time"] for e in evs] == sorted(e["time"] for e in evs)
    assert [e["event_id"] for e in evs] == sorted(e["event_id"] for e in evs)


def test_bundle_store_versions_of_one_dataset_strictly_increase(published: Sibling, store: Path,
                                                                dataset: Path) -> None:
    repo = store / dataset_relpath(published.dataset_id)
    run("git", "--git-dir", repo, "branch", "other", "main")
    recs = [bundle_store.record(store, published.dataset_id, repo, "refs/heads/other") for _ in range(2)]
    assert recs[0] is not None and recs[1] is None, "an unmoved branch records nothing"
    versions = [str(r["version"]) for r in _bundles(store)]
    assert versions == sorted(versions) and len(set(versions)) == 2


def test_push_delivers_a_signed_webhook_for_matching_subscriptions(published: Sibling, store: Path,
                                                                   dataset: Path) -> None:
    from test_webhooks import subscribe, wait_for
    from webhook_receiver import Receiver

    receiver = Receiver("s3cret").start()
    try:
        subscribe(store, receiver.url(), "--dataset", published.dataset_id, "--path", "*.csv",
                  secret="s3cret")
        subscribe(store, receiver.url("/other"), "--path", "derived/*", secret="s3cret")
        _commit(dataset, {"table.csv": b"x,y\n"}, "csv")
        run("datalad", "-l", "error", "push", "--to", "store", cwd=dataset)
        wait_for(lambda: len(receiver.accepted()) >= 1, "the deliverer the hook started")
        got = receiver.accepted()
        assert [r.path for r in got] == ["/hook"], "only the subscription whose filters match"
        assert got[0].signed_ok
        body = got[0].json
        newest = _bundles(store)[-1]
        assert (body["type"], body["dataset_id"], body["version"]) == (
            "bundle.created", published.dataset_id, newest["version"])
        assert got[0].headers["X-DSS-Event"] == "bundle.created"
        assert _dss("events", store, "--failed").returncode == 0
    finally:
        receiver.stop()


def test_incremental_manifest_equals_a_full_listing(published: Sibling, store: Path, dataset: Path) -> None:
    """A child version is built from its parent's rows and `git diff-tree`; it must equal what
    listing the whole tree gives, for adds, edits, deletions, type changes and subdatasets."""
    from dss_remote.history import bundles
    from ria_store import bare_repo

    run("datalad", "-l", "error", "create", "-d", dataset, dataset / "subds")
    run("git", "rm", "-q", "small.txt", "dir/sub/zero.dat", cwd=dataset)
    (dataset / "dir" / "sub" / "zero.dat").mkdir(parents=True)  # a file becomes a directory
    write_files(dataset, {"dir/sub/zero.dat/inner.txt": b"inner\n", "new.json": b"{}\n"})
    run("git", "annex", "unlock", "dir/data.bin", cwd=dataset)
    (dataset / "dir" / "data.bin").write_bytes(b"edited\n")  # locked -> unlocked, new key
    run("git", "annex", "add", ".", cwd=dataset)
    run("git", "commit", "-q", "-m", "many changes", cwd=dataset)
    run("git", "push", "store", "main", cwd=dataset)
    repo = store / dataset_relpath(published.dataset_id)
    newest = _bundles(store, published.dataset_id)[-1]
    manifest = bundle_store.load(store, published.dataset_id, str(newest["version"]))
    assert manifest.head.parent_version is not None
    entries = bare_repo.tree_entries(repo, str(newest["commit"]))
    contents = bare_repo.read_blobs(repo, [e.sha for e in entries if bundles.needs_content(e)])
    assert manifest.files == bundles.rows_of(entries, contents)
    types = {f["path"]: f["type"] for f in manifest.files}
    assert types["subds"] == "subdataset" and "small.txt" not in types
    assert types["dir/sub/zero.dat/inner.txt"] == "annex"
    assert types["dir/data.bin"] == "annex", "an unlocked file's pointer names its key"


def test_events_follow_prints_new_events_as_they_come(store: Path) -> None:
    from dss_remote.history import events

    first = events.bundle_created("0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", "2026-11-22T031533.000001Z",
                                  "a" * 40, "refs/heads/main")
    events.append(store, first)
    proc = subprocess.Popen(["dss", "events", str(store), "--follow", "--json", "--since", first.event_id],
                            stdout=subprocess.PIPE, text=True)
    try:
        later = events.bundle_created(first.dataset_id, "2026-11-22T031534.000002Z", "b" * 40,
                                      "refs/heads/main")
        events.append(store, later)
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        assert ready, "dss events --follow printed nothing within 60 s"
        line = proc.stdout.readline()
        assert json.loads(line)["event_id"] == later.event_id
    finally:
        proc.kill()
        proc.wait()


def test_a_hook_installed_by_version_0_1_still_records_and_adopt_updates_it(
        published: Sibling, store: Path, dataset: Path) -> None:
    """Hooks installed before the reshaping run `python -m dss_remote.post_update`: they keep
    recording versions, and `dss adopt` rewrites them to the current entry point."""
    hook = published.dataset_dir / "hooks" / "post-update"
    current = hook.read_text()
    assert "-m dss_remote.hook " in current
    old = current.replace("-m dss_remote.hook ", "-m dss_remote.post_update ")
    hook.chmod(0o755)
    hook.write_text(old)
    _commit(dataset, {"after-upgrade.txt": b"pushed through a 0.1 hook\n"}, "old hook")
    res = run("datalad", "-l", "error", "push", "--to", "store", cwd=dataset)
    assert "error" not in res.stderr.lower()
    rows = _bundles(store)
    assert len(rows) == 2
    head = run("git", "rev-parse", "HEAD", cwd=dataset).stdout.strip()
    assert rows[1]["commit"] == head
    assert len(_events(store)) == 2
    adopted = _dss("adopt", store).stdout
    assert f"{published.dataset_id}\thook updated" in adopted
    assert "-m dss_remote.hook " in hook.read_text()
