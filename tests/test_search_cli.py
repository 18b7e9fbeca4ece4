"""`dss search`, `dss index` and `dss meta` end to end: datasets pushed with real DataLad, their
JSON files found by the query language; tombstones, rebuilds and bad files."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from api_data import isolated_home, push_new
from conftest import run
from search_data import SearchStore, shared_store

from dss_remote.admin.store import add_mirror
from dss_remote.config.mirrors import Mirror
from dss_remote.search import query_language
from dss_remote.search.sqlite_index import SCHEMA, SqliteIndex, index_path


@pytest.fixture(scope="module")
def ss(tmp_path_factory: pytest.TempPathFactory, tools_path: str) -> SearchStore:
    """The store (one per run), copied per test that changes it (`own`)."""
    return shared_store(tmp_path_factory, tools_path)


@pytest.fixture
def own(ss: SearchStore, tmp_path: Path) -> SearchStore:
    """A copy of the module's store this test may change (tombstones, metadata, a broken index)."""
    copy = tmp_path / "store"
    index_dir = index_path(ss.store).parent  # other workers search the shared store meanwhile
    shutil.copytree(ss.store, copy, symlinks=True,
                    ignore=lambda d, names: names if Path(d) == index_dir else [])
    return SearchStore(copy, ss.mouse, ss.human)


def _dss(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run("dss", *args, check=check)


def _found(store: Path, query: str, *extra: str) -> list[str]:
    """What `dss search --json` finds (a process per call: for the tests of the command itself)."""
    out = json.loads(_dss("search", store, query, "--json", *extra).stdout)
    return [r["bundle_fqid"] for r in out["results"]]


def _hits(store: Path, query: str, sort: str = "version:desc") -> list[str]:
    """What `dss search` finds, in this process (its catch-up and search, without the start-up)."""
    with SqliteIndex(store) as index:
        index.catch_up()
        res = index.search(query_language.parse(query), sort=query_language.parse_sort(sort), limit=50)
    return [h.bundle_fqid for h in res.hits]


def test_search_finds_exactly_the_versions_whose_json_says_so(ss: SearchStore) -> None:
    s = ss.store
    assert _found(s, "meta.species:mouse") == [ss.mouse_v1]
    assert _hits(s, "files.meta_sample_json.species:rat") == [ss.mouse_v2]
    assert _hits(s, "meta.species:human AND meta.donors.age>=60") == [ss.human_v1]
    assert _hits(s, "meta.donors.age>61") == []
    assert _hits(s, "cortex", "version") == [ss.mouse_v1, ss.mouse_v2]  # the description too
    assert _hits(s, "path:raw/*.nii.gz", "version") == [ss.mouse_v1, ss.mouse_v2]
    assert _hits(s, "path:raw/sub-02.nii.gz") == [ss.mouse_v2]
    assert _hits(s, "files.meta_sample_json.scan.field_t>=7") == [ss.mouse_v1]
    assert _hits(s, "alias:human-liver") == [ss.human_v1]
    assert _hits(s, "NOT alias:mouse-study") == [ss.human_v1]
    assert _hits(s, f"dataset:{ss.human.dataset_id} OR meta.species:rat", "version") == [
        ss.mouse_v2, ss.human_v1]
    assert _hits(s, "size>2.5KB", "version") == [ss.mouse_v1, ss.mouse_v2, ss.human_v1]
    assert _hits(s, "size>3KB") == [ss.human_v1]  # only huge.json is over 3,000 bytes
    # DataLad's own metadata: the dataset id from .datalad/config
    assert _found(s, f'files._datalad_config.datalad.dataset.id:"{ss.human.dataset_id}"') == [ss.human_v1]


def test_search_prints_one_line_per_version_and_pages(ss: SearchStore) -> None:
    first = _dss("search", ss.store, "", "--limit", "2", "--sort", "version").stdout.splitlines()
    assert first[:2] == [ss.mouse_v1.replace(".", "\t", 1), ss.mouse_v2.replace(".", "\t", 1)]
    assert first[2] == "(3 matches; 2 shown: --page 2 for more)"
    second = _dss("search", ss.store, "", "--limit", "2", "--page", "2", "--sort", "version").stdout
    assert second.splitlines() == [ss.human_v1.replace(".", "\t", 1)]


def test_documents_are_shaped_as_the_dss_built_them(ss: SearchStore) -> None:
    out = json.loads(_dss("search", ss.store, "alias:human-liver", "--json").stdout)
    doc = out["results"][0]["document"]
    assert {k: doc[k] for k in ("uuid", "dataset_id", "alias")} == {
        "uuid": ss.human.dataset_id, "dataset_id": ss.human.dataset_id, "alias": "human-liver"}
    assert doc["bundle_fqid"] == ss.human_v1
    assert doc["files"]["meta_sample_json"] == {"species": "human", "organ": "liver",
                                                "donors": [{"age": 34}, {"age": 61}]}
    rows = {r["path"]: r for r in doc["manifest"]["files"]}
    assert rows["meta/sample.json"]["indexed"] is True
    assert rows["tables/counts.tsv"]["indexed"] is False
    # broken and too large files stay in the manifest, without content
    assert rows["broken.json"]["indexed"] is True and "broken_json" not in doc["files"]
    assert "huge_json" not in doc["files"]


def test_a_broken_or_huge_json_file_is_reported_once_and_fails_nothing(own: SearchStore) -> None:
    first = json.loads(_dss("index", own.store, "--json").stdout)
    reasons = {p["path"]: p["reason"] for p in first["problems"]}
    assert reasons["broken.json"].startswith("not valid JSON")
    assert "over the index limit of 4096 (search.max_bytes)" in reasons["huge.json"]
    assert json.loads(_dss("index", own.store, "--json").stdout)["problems"] == []
    assert first["documents"] == 3


def test_a_tombstoned_version_leaves_the_results(own: SearchStore) -> None:
    assert _found(own.store, "meta.species:mouse") == [own.mouse_v1]
    _dss("bundles", "delete", own.store, own.mouse_v1.replace(".", "@", 1), "--reason", "retracted")
    assert _found(own.store, "meta.species:mouse") == []
    assert _found(own.store, "cortex") == [own.mouse_v2]


def test_rebuild_gives_the_same_results_as_catching_up(own: SearchStore) -> None:
    queries = ["", "meta.species:mouse", "cortex", "path:raw/*", "size>1KB", "NOT meta.organ:liver",
               "meta.doi:*", "meta.weight_g<100"]
    _dss("bundles", "delete", own.store, own.mouse_v2.replace(".", "@", 1), "--reason", "bad scan")
    _dss("meta", "set", own.store, "~human-liver", "doi=10.5281/zenodo.1", "year:=2026")
    caught_up = [_hits(own.store, q) for q in queries]
    _dss("index", own.store, "--rebuild")
    assert [_hits(own.store, q) for q in queries] == caught_up
    assert caught_up[6] == [own.human_v1]


def test_meta_set_adds_a_versioned_record_with_an_event(own: SearchStore) -> None:
    _dss("index", own.store)
    out = _dss("meta", "set", own.store, "~mouse-study", "doi=10.5281/zenodo.42", "funding.grant=R01").stdout
    assert "set doi, set funding.grant" in out
    both = [own.mouse_v1, own.mouse_v2]
    assert _found(own.store, "meta.doi:10.5281/zenodo.42", "--sort", "version") == both
    assert _found(own.store, "meta.funding.grant:R01", "--sort", "version") == both
    v1 = own.mouse_v1.split(".", 1)[1]
    _dss("meta", "set", own.store, f"~mouse-study@{v1}", "--unset", "doi")
    assert _found(own.store, "meta.doi:*") == [own.mouse_v2]
    shown = json.loads(_dss("meta", "show", own.store, f"~mouse-study@{v1}", "--json").stdout)
    assert shown["meta"] == {"funding.grant": "R01"}
    assert len(shown["records"]) == 2
    evs = [json.loads(line) for line in _dss("events", own.store, "--json").stdout.splitlines()]
    assert [e["type"] for e in evs].count("meta.updated") == 2


def test_a_corrupt_index_is_rebuilt_and_says_so(own: SearchStore) -> None:
    _dss("index", own.store)
    index_path(own.store).write_bytes(b"this is not sqlite" * 100)
    res = _dss("index", own.store)
    assert "rebuilt the index: it is not a readable SQLite index" in res.stdout
    assert _found(own.store, "meta.species:human") == [own.human_v1]


def test_an_index_of_an_older_schema_is_rebuilt_and_says_so(own: SearchStore) -> None:
    _dss("index", own.store)
    con = sqlite3.connect(index_path(own.store))
    con.execute("PRAGMA user_version = 0")
    con.close()
    res = _dss("index", own.store)
    assert f"rebuilt the index: it has schema 0, this dss-remote writes {SCHEMA}" in res.stdout


def test_a_query_that_does_not_parse_points_at_the_position(ss: SearchStore) -> None:
    res = _dss("search", ss.store, "meta.species:mouse AND (size>1GB", check=False)
    assert res.returncode == 1
    assert res.stderr.startswith("dss: error: ") and "position" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_meta_set_refuses_bad_assignments_and_writes_nothing(own: SearchStore) -> None:
    res = _dss("meta", "set", own.store, "~human-liver", "year:=20x6", check=False)
    assert res.returncode == 1 and "the value after := is not JSON" in res.stderr
    res = _dss("meta", "set", own.store, "~human-liver", "no equals sign", check=False)
    assert res.returncode == 1 and "neither key=value nor key:=JSON" in res.stderr
    assert not (own.store / "dss" / "meta").exists() or not any((own.store / "dss" / "meta").rglob("*.json"))


def test_metadata_records_reach_the_mirrors_and_sync_writes_a_missing_event(own: SearchStore,
                                                                             tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    add_mirror(own.store, Mirror(url=f"file://{mirror}", name="backup"))
    out = _dss("meta", "set", own.store, "~human-liver", "doi=10.5281/zenodo.7").stdout
    event_id = out.split("(event ")[1].rstrip(")\n")
    records = list((own.store / "dss" / "meta").rglob("*.json"))
    assert len(records) == 1
    assert (mirror / records[0].relative_to(own.store)).read_bytes() == records[0].read_bytes()
    event_file = next((own.store / "dss" / "events").rglob(f"{event_id}.json"))
    event_file.unlink()
    assert f"wrote missing event {event_id}" in _dss("sync", own.store).stdout
    assert json.loads(event_file.read_bytes())["type"] == "meta.updated"
    assert _found(own.store, "meta.doi:*") == [own.human_v1]


def test_json_files_packed_into_an_archive_are_still_indexed(own: SearchStore) -> None:
    queries = ("meta.species:human", "meta.scan.modality:T1w", "cortex")
    before = [_found(own.store, q) for q in queries]

    def loose_json() -> list[Path]:
        return list(own.store.glob("*/*/annex/objects/*/*/*/*.json"))

    assert loose_json()
    _dss("pack", own.store, "--min-age", "0s", "--remove-loose")
    assert not loose_json()
    _dss("index", own.store, "--rebuild")
    assert [_found(own.store, q) for q in queries] == before
    assert before[0] == [own.human_v1]


def test_content_pushed_after_the_commit_is_indexed_by_the_next_catch_up(own: SearchStore, tmp_path: Path,
                                                                          tools_path: str) -> None:
    _dss("index", own.store)
    with isolated_home(tmp_path, tools_path):
        late = push_new(own.store, tmp_path / "late", {"meta/sample.json": b'{"species": "axolotl"}\n'},
                        data="nothing")
        first = json.loads(_dss("index", own.store, "--json").stdout)
        assert [p["path"] for p in first["problems"]] == ["meta/sample.json"]
        assert _found(own.store, "meta.species:axolotl") == []
        run("datalad", "-l", "error", "push", "--to", "store", cwd=late.dataset)  # the content, no new commit
    assert _found(own.store, "meta.species:axolotl") == [f"{late.dataset_id}.{late.versions[0]}"]


_DIE_MID_WRITE = """
import os, sqlite3, sys
con = sqlite3.connect(sys.argv[1], isolation_level=None)
con.execute("PRAGMA cache_size = 1")  # spill: the journal and the file both change before a commit
con.execute("BEGIN IMMEDIATE")
con.execute("DELETE FROM leaves")
os._exit(9)  # as a kill -9 mid-transaction
"""


def test_a_writer_killed_mid_transaction_leaves_nothing_a_rebuild_trips_on(own: SearchStore) -> None:
    _dss("index", own.store)
    path = index_path(own.store)
    res = subprocess.run([sys.executable, "-c", _DIE_MID_WRITE, str(path)], check=False)
    assert res.returncode == 9
    assert path.with_name(path.name + "-journal").exists(), "the killed writer left its journal"
    _dss("index", own.store, "--rebuild")
    assert not path.with_name(path.name + "-journal").exists()
    assert _found(own.store, "meta.species:human") == [own.human_v1]
    again = json.loads(_dss("index", own.store, "--json").stdout)
    assert (again["documents"], again["rebuilt_because"]) == (0, None), again
