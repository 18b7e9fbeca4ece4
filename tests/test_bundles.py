"""Pure parts of bundle versions: version ids, which refs count, keys from tree entries, manifests."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from conftest import require_tool, run
from hypothesis import given
from hypothesis import strategies as st

from dss_remote.history import bundle_store, bundles
from ria_store.bare_repo import TreeEntry
from ria_store.errors import DssError

SHA256 = hashlib.sha256(b"x").hexdigest()
MD5 = hashlib.md5(b"x").hexdigest()
CREATED = datetime(2026, 11, 22, 3, 15, 34, 5, tzinfo=timezone.utc)


def test_version_is_the_dss_form_and_round_trips() -> None:
    when = datetime(2026, 11, 22, 3, 15, 33, 123456, tzinfo=timezone.utc)
    assert bundles.format_version(when) == "2026-11-22T031533.123456Z"
    assert bundles.parse_version("2026-11-22T031533.123456Z") == when


def test_version_of_a_local_time_is_utc() -> None:
    when = datetime(2026, 11, 22, 4, 15, 33, 5, tzinfo=timezone(timedelta(hours=1)))
    assert bundles.format_version(when) == "2026-11-22T031533.000005Z"


@pytest.mark.parametrize("bad", ["2026-11-22T03:15:33Z", "2026-11-22T031533Z", "../etc", ""])
def test_bad_version_names_the_expected_form(bad: str) -> None:
    with pytest.raises(DssError, match=r"expected UTC time like 2026-11-22T031533\.123456Z"):
        bundles.parse_version(bad)


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)),
       st.integers(min_value=-10_000_000, max_value=10_000_000))
def test_next_version_is_always_after_the_latest(base: datetime, skew_us: int) -> None:
    latest = bundles.format_version(base.replace(tzinfo=timezone.utc))
    now = base.replace(tzinfo=timezone.utc) + timedelta(microseconds=skew_us)
    v = bundles.next_version(now, latest)
    assert v > latest
    assert bundles.parse_version(v) >= now


@pytest.mark.parametrize(("ref", "recorded"), [
    ("refs/heads/main", True), ("refs/heads/feature/x", True), ("refs/heads/git-annex", False),
    ("refs/heads/synced/main", False), ("refs/heads/adjusted/main(unlocked)", False),
    ("refs/tags/v1", False), ("refs/notes/commits", False), ("HEAD", False),
    ("refs/heads/git-annex-stuff", True)])
def test_which_refs_make_versions(ref: str, recorded: bool) -> None:
    assert bundles.is_recorded_branch(ref) is recorded


def _blob(path: str, mode: str = "100644", size: int = 10, sha: str = "a" * 40) -> TreeEntry:
    return TreeEntry(mode, "blob", sha, size, path)


def test_key_of_a_locked_file_is_its_symlink_target() -> None:
    key = f"SHA256E-s1--{SHA256}.txt"
    target = f"../.git/annex/objects/Xk/3q/{key}/{key}".encode()
    assert str(bundles.annex_key_of(_blob("a.txt", "120000"), target)) == key


def test_key_of_an_unlocked_file_is_its_pointer() -> None:
    key = f"MD5E-s1--{MD5}.bin"
    assert str(bundles.annex_key_of(_blob("a.bin"), f"/annex/objects/{key}\n".encode())) == key


@pytest.mark.parametrize("content", [b"hello\n", b"/annex/objects/not a key\n", b"../other/file",
                                     b"/annex/objects/MD5E-s1--x\nmore\n"])
def test_other_blobs_are_git_files(content: bytes) -> None:
    mode = "120000" if content.startswith(b"..") else "100644"
    assert bundles.annex_key_of(_blob("f", mode), content) is None


def test_only_symlinks_and_small_blobs_are_read() -> None:
    assert bundles.needs_content(_blob("l", "120000", 5000))
    assert bundles.needs_content(_blob("s", size=bundles.POINTER_MAX))
    assert not bundles.needs_content(_blob("big", size=bundles.POINTER_MAX + 1))
    assert not bundles.needs_content(TreeEntry("160000", "commit", "c" * 40, None, "sub"))


def test_manifest_rows_carry_keys_checksums_types_and_subdatasets() -> None:
    sha_key, md5_key = f"SHA256E-s1--{SHA256}.csv", f"MD5E-s1--{MD5}"
    url_key = "URL--https&c%%example.org%x"
    entries = [
        _blob("a.csv", "120000", sha="1" * 40), _blob("b", sha="2" * 40), _blob("c.txt", sha="3" * 40),
        _blob("u.json", "120000", sha="4" * 40), TreeEntry("160000", "commit", "5" * 40, None, "sub"),
    ]
    contents = {"1" * 40: f"../.git/annex/objects/a/b/{sha_key}/{sha_key}".encode(),
                "2" * 40: f"/annex/objects/{md5_key}".encode(), "3" * 40: b"plain\n",
                "4" * 40: f"../.git/annex/objects/a/b/{url_key}/{url_key}".encode()}
    ref = bundles.BundleRef("d" * 8, "2026-11-22T031533.123456Z", "refs/heads/main", "f" * 40, None, CREATED)
    m = bundles.build_manifest(ref, bundles.rows_of(entries, contents))
    assert m.head.bundle_fqid == f"{'d' * 8}.2026-11-22T031533.123456Z"
    assert m.head.file_count == 5
    rows = {r["path"]: r for r in m.files}
    assert rows["a.csv"] == {"path": "a.csv", "type": "annex", "key": sha_key, "size": 1,
                             "checksums": {"sha256": SHA256}, "content_type": "text/csv"}
    assert rows["b"]["checksums"] == {"md5": MD5}
    assert rows["b"]["content_type"] == "application/octet-stream"
    assert rows["c.txt"] == {"path": "c.txt", "type": "git", "git_blob": "3" * 40, "size": 10,
                             "checksums": {}, "content_type": "text/plain"}
    assert rows["u.json"]["key"] == url_key
    assert rows["u.json"]["checksums"] == {}
    assert rows["u.json"]["size"] is None
    assert rows["sub"] == {"path": "sub", "type": "subdataset", "commit": "5" * 40}


def test_changed_paths_lists_added_modified_and_removed() -> None:
    before = [{"path": "a", "type": "annex", "key": "K1"}, {"path": "b", "type": "git", "git_blob": "x"},
              {"path": "c", "type": "git", "git_blob": "y"}]
    after = [{"path": "a", "type": "annex", "key": "K2"}, {"path": "b", "type": "git", "git_blob": "x"},
             {"path": "d", "type": "subdataset", "commit": "z"}]
    assert bundles.changed_paths(before, after) == ["a", "c", "d"]
    assert bundles.changed_paths(None, after) == ["a", "b", "d"]


def test_path_globs_cross_directories() -> None:
    assert bundles.path_matches("*.csv", ["raw/2026/x.csv"])
    assert bundles.path_matches("raw/*", ["raw/a/b"])
    assert not bundles.path_matches("derived/*", ["raw/a/b"])


def test_stored_manifest_is_json_with_a_line_per_file() -> None:
    ref = bundles.BundleRef("d" * 8, "2026-11-22T031533.123456Z", "refs/heads/main", "f" * 40, None, CREATED)
    entries = [_blob(f"dir/ä {i}.txt", sha=f"{i:040d}") for i in range(3)]
    m = bundles.build_manifest(ref, bundles.rows_of(entries, {e.sha: b"text" for e in entries}))
    data = bundles.dumps_manifest(m)
    assert json.loads(data) == m.to_json()
    assert bundles.Manifest.from_json(json.loads(data)) == m
    assert data.count(b"\n") == 3 + 2


# Manifest heads on disk: a 0.1 manifest (`created` ending in +00:00) still reads, and what is
# written differs from it only there; each damaged head is refused naming the file and the field.

OLD_DSID = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
OLD_VERSION = "2026-11-22T031533.123456Z"
#: a manifest as dss-remote 0.1 wrote it (bundles.dumps_manifest, `created` from isoformat())
OLD_MANIFEST = (
    '{"format": "dss-bundle/1", "bundle_fqid": "' + OLD_DSID + '.' + OLD_VERSION + '", "dataset_id": "'
    + OLD_DSID + '", "version": "' + OLD_VERSION + '", "ref": "refs/heads/main", "commit": "' + "f" * 40
    + '", "parent_version": null, "created": "2026-11-22T03:15:33.654321+00:00", "file_count": 2, '
    '"rebuilt": true, "files": [\n'
    '{"path": "a.csv", "type": "annex", "key": "MD5E-s1--' + MD5 + '.csv", "size": 1, "checksums": '
    '{"md5": "' + MD5 + '"}, "content_type": "text/csv"},\n'
    '{"path": "b.txt", "type": "git", "git_blob": "' + "a" * 40 + '", "size": 2, "checksums": {}, '
    '"content_type": "text/plain"}\n]}\n')


def _stored(store_root: Path, text: str) -> Path:
    path = bundle_store.bundles_dir(store_root, OLD_DSID) / f"{OLD_VERSION}.json"
    path.parent.mkdir(parents=True)
    path.write_text(text)
    return path


def test_a_manifest_written_by_0_1_still_reads(tmp_path: Path) -> None:
    _stored(tmp_path, OLD_MANIFEST)
    m = bundle_store.load(tmp_path, OLD_DSID)
    assert m.head == bundles.ManifestHead(
        OLD_DSID, OLD_VERSION, "refs/heads/main", "f" * 40, None,
        datetime(2026, 11, 22, 3, 15, 33, 654321, tzinfo=timezone.utc), 2, rebuilt=True)
    assert m.head.bundle_fqid == f"{OLD_DSID}.{OLD_VERSION}"
    assert [f["path"] for f in m.files] == ["a.csv", "b.txt"]
    # written again, only the time's suffix differs
    assert bundles.dumps_manifest(m).decode() == OLD_MANIFEST.replace(".654321+00:00", ".654321Z")


def test_dss_bundles_show_reads_a_manifest_written_by_0_1(store: Path) -> None:
    _stored(store, OLD_MANIFEST)
    res = run(require_tool("dss"), "bundles", "show", store, f"{OLD_DSID}@{OLD_VERSION}")
    assert res.stdout.splitlines()[:4] == [
        f"bundle {OLD_DSID}.{OLD_VERSION}", f"  ref refs/heads/main commit {'f' * 40}", "  parent -",
        "  2 files:"]
    shown = json.loads(run(require_tool("dss"), "bundles", "show", store, OLD_DSID, "--json").stdout)
    assert shown == json.loads(OLD_MANIFEST.replace("+00:00", "Z"))


def test_a_head_without_rebuilt_writes_no_rebuilt_key() -> None:
    head = bundles.ManifestHead(OLD_DSID, OLD_VERSION, "refs/heads/main", "f" * 40, OLD_VERSION, CREATED, 0)
    assert "rebuilt" not in head.to_json()
    assert bundles.ManifestHead.from_json(head.to_json()) == head


def _refused(tmp_path: Path, old: str, new: str, why: str) -> None:
    """A stored manifest with `old` replaced by `new` is refused naming it and `why`; unchanged."""
    assert old in OLD_MANIFEST
    path = _stored(tmp_path, OLD_MANIFEST.replace(old, new))
    with pytest.raises(DssError) as e:
        bundle_store.load(tmp_path, OLD_DSID, OLD_VERSION)
    assert str(e.value) == (f"manifest {path} is not a dss manifest ({why}); restore it from a mirror "
                            "(`dss sync`)")
    assert path.read_text() == OLD_MANIFEST.replace(old, new)
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_a_manifest_of_another_format_is_refused(tmp_path: Path) -> None:
    _refused(tmp_path, '"format": "dss-bundle/1"', '"format": "dss-bundle/9"',
             "format 'dss-bundle/9', not dss-bundle/1")


def test_a_manifest_without_a_commit_is_refused(tmp_path: Path) -> None:
    _refused(tmp_path, f'"commit": "{"f" * 40}"', '"commit": 7', "commit: missing or not a string")


def test_a_manifest_whose_created_is_not_a_time_is_refused(tmp_path: Path) -> None:
    _refused(tmp_path, "2026-11-22T03:15:33.654321+00:00", "last tuesday",
             "created 'last tuesday' is not a time")


def test_a_manifest_whose_file_count_is_wrong_is_refused(tmp_path: Path) -> None:
    _refused(tmp_path, '"file_count": 2', '"file_count": 3', "file_count 3 but 2 files")


def test_a_manifest_whose_fqid_names_another_version_is_refused(tmp_path: Path) -> None:
    _refused(tmp_path, f'"bundle_fqid": "{OLD_DSID}.', f'"bundle_fqid": "{OLD_DSID}.x',
             f"bundle_fqid '{OLD_DSID}.x{OLD_VERSION}' is not '{OLD_DSID}.{OLD_VERSION}'")


def test_a_manifest_whose_rebuilt_is_not_a_flag_is_refused(tmp_path: Path) -> None:
    _refused(tmp_path, '"rebuilt": true', '"rebuilt": "yes"', "rebuilt 'yes' is not true or false")


def test_a_manifest_stored_under_another_versions_name_is_refused(tmp_path: Path) -> None:
    other = "2026-11-22T031533.123457Z"
    path = _stored(tmp_path, OLD_MANIFEST.replace(OLD_VERSION, other))
    with pytest.raises(DssError) as e:
        bundle_store.load(tmp_path, OLD_DSID, OLD_VERSION)
    assert str(e.value) == (f"manifest {path} is not a dss manifest (it is {OLD_DSID}.{other}); restore "
                            "it from a mirror (`dss sync`)")
    assert path.read_text() == OLD_MANIFEST.replace(OLD_VERSION, other)
