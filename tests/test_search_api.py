"""`POST /v1/search` under uvicorn over datasets pushed with real DataLad: each query kind finds exactly
its bundle versions, raw output carries the documents, paging follows the Link with the same body,
ACLs hide private datasets (from total_hits too), a tombstone leaves the next search, each bad input
is a 400 naming it, and a read-only server or an index the server cannot write still answers."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from api_data import Pushed, isolated_home
from api_server import api_server
from conftest import run
from fastapi.testclient import TestClient
from gate_double import GateDouble
from search_data import SearchStore, search_store

from dss_remote.admin.store import init_store
from dss_remote.history import bundle_store
from dss_remote.search.sqlite_index import SqliteIndex, index_path
from dss_remote.server import search_api
from dss_remote.server.app import create_app

LAB = {"Authorization": "Bearer tok-lab"}
OTHER = {"Authorization": "Bearer tok-other"}
SPECIES = "files.meta_sample_json.species"
HUMANS = 12  # versions of `human` (private): with mouse's two, more results than the smallest page


@dataclass
class Served:
    data: SearchStore
    url: str

    @staticmethod
    def fqids(p: Pushed) -> list[str]:
        return sorted(f"{p.dataset_id}.{v}" for v in p.versions)

    @property
    def mice(self) -> list[str]:
        return self.fqids(self.data.mouse)

    @property
    def humans(self) -> list[str]:
        return self.fqids(self.data.human)

    @property
    def everything(self) -> list[str]:
        return sorted(self.mice + self.humans)


def _gate(data: SearchStore) -> dict[str, Any]:
    """mouse is public; human is readable by the group lab (tok-lab), not by tok-other."""
    return {"tokens": {"tok-lab": {"user": "ann", "groups": ["lab"]},
                       "tok-other": {"user": "bob", "groups": ["other"]}},
            "public": [data.mouse.dataset_id], "readers": {data.human.dataset_id: ["lab"]}}


def shared_search_store(tmp_path_factory: pytest.TempPathFactory, tools_path: str) -> SearchStore:
    """search_data's store with HUMANS versions of `human`, built once per run and shared by the xdist
    workers and by test_search_hca (a lock in the run's temp root, as hca_venv does). Servers only
    read it (and catch their index up); a test that changes the store works on a copy."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the run's root, above each worker's own
    base = root / "search-api-store"
    built = base / "built.json"
    with open(root / "search-api-store.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not built.exists():
            shutil.rmtree(base, ignore_errors=True)  # what a failed attempt left
            _build(base, tools_path)
    saved = json.loads(built.read_text())
    store = Path(saved["store"])
    return SearchStore(store, *(Pushed(store, Path(saved[n]["dataset"]), saved[n]["dataset_id"],
                                       saved[n]["versions"]) for n in ("mouse", "human")))


def _build(base: Path, tools_path: str) -> None:
    data = search_store(base, tools_path)
    human = data.human
    with isolated_home(base, tools_path):
        # versions are cheap as empty commits: the hook records each push (same document, new fqid)
        for i in range(HUMANS - 1):
            run("git", "commit", "-q", "--allow-empty", "-m", f"empty {i}", cwd=human.dataset)
            run("git", "push", "-q", "store", "main", cwd=human.dataset)
    human.versions = bundle_store.versions(data.store, human.dataset_id)
    assert len(human.versions) == HUMANS
    saved = {"store": str(data.store)} | {
        n: {"dataset": str(p.dataset), "dataset_id": p.dataset_id, "versions": p.versions}
        for n, p in (("mouse", data.mouse), ("human", human))}
    (base / "built.json").write_text(json.dumps(saved))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, tools_path: str) -> Iterator[Served]:
    data = shared_search_store(tmp_path_factory, tools_path)
    with api_server(data.store, _gate(data), tmp_path_factory.mktemp("search-api-srv")) as srv:
        yield Served(data, srv.url)


@pytest.fixture(scope="module")
def empty_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server over a store without datasets: bad input is refused before any lookup."""
    base = tmp_path_factory.mktemp("search-api-empty")
    init_store(base / "store")
    with api_server(base / "store", {}, base / "srv") as srv:
        yield srv.url


def _post(url: str, es_query: Any = None, *, headers: dict[str, str] | None = None,
          **params: Any) -> requests.Response:
    body = {} if es_query is None else {"es_query": es_query}
    return requests.post(f"{url}/v1/search", json=body, params=params, headers=headers, timeout=60)


def _found(url: str, es_query: Any, headers: dict[str, str] | None = LAB) -> list[str]:
    res = _post(url, es_query, headers=headers, per_page=500)
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["total_hits"] == len(body["results"])
    return [r["bundle_fqid"] for r in body["results"]]


def _q(clause: dict[str, Any]) -> dict[str, Any]:
    return {"query": clause}


# -- queries ------------------------------------------------------------------------------------

def test_each_query_kind_finds_exactly_its_versions(served: Served) -> None:
    d, url = served.data, served.url
    assert _found(url, _q({"term": {SPECIES: "rat"}})) == [d.mouse_v2]
    assert _found(url, _q({"term": {SPECIES: "Rat"}})) == []  # a term is exact
    assert _found(url, _q({"match": {SPECIES: "Mouse"}})) == [d.mouse_v1]  # match is full text
    assert _found(url, _q({"range": {"files.meta_sample_json.weight_g": {"gte": 100}}})) == [d.mouse_v2]
    assert _found(url, _q({"range": {"files.meta_sample_json.donors.age": {"gt": 60, "lte": 61}}})) == (
        served.humans)
    assert _found(url, _q({"wildcard": {"manifest.files.name": "raw/*.nii.gz"}})) == sorted(
        [d.mouse_v1, d.mouse_v2])
    assert _found(url, _q({"exists": {"field": "files.meta_sample_json.donors"}})) == served.humans
    either = {"bool": {"should": [{"term": {SPECIES: "rat"}}, {"term": {SPECIES: "human"}}]}}
    assert _found(url, _q(either)) == sorted([d.mouse_v2, *served.humans])
    not_newest_human = {"bool": {"filter": [{"term": {SPECIES: "human"}}],
                                 "must_not": [{"term": {"version": served.data.human.versions[-1]}}]}}
    assert _found(url, _q(not_newest_human)) == served.humans[:-1]
    low_field = {"range": {"files.meta_sample_json.scan.field_t": {"lt": 5}}}
    cortex_high_field = {"bool": {"must": [{"match": {"files.meta_sample_json.organ": "cortex"}}],
                                  "must_not": [low_field]}}
    assert _found(url, _q(cortex_high_field)) == [d.mouse_v1]
    assert _found(url, {}) == served.everything
    assert _found(url, _q({"match_all": {}})) == served.everything


def test_summary_results_name_the_bundle_and_its_absolute_url(served: Served) -> None:
    res = _post(served.url, _q({"term": {SPECIES: "rat"}}), headers=LAB, replica="aws")
    assert res.status_code == 200
    body = res.json()
    assert body["es_query"] == _q({"term": {SPECIES: "rat"}})
    assert body["total_hits"] == 1
    (hit,) = body["results"]
    assert set(hit) == {"bundle_fqid", "bundle_url", "search_score"}
    assert hit["search_score"] is None
    dsid, version = served.data.mouse_v2.split(".", 1)
    assert hit["bundle_url"] == f"{served.url}/v1/bundles/{dsid}?version={version}&replica=aws"
    bundle = requests.get(hit["bundle_url"], headers=LAB, timeout=60).json()["bundle"]
    assert (bundle["uuid"], bundle["version"]) == (dsid, version)


def test_raw_output_carries_each_bundle_document(served: Served) -> None:
    res = _post(served.url, _q({"match": {"files.meta_sample_json.organ": "cortex"}}), headers=LAB,
                output_format="raw")
    assert res.status_code == 200
    results = res.json()["results"]
    assert [r["bundle_fqid"] for r in results] == sorted([served.data.mouse_v1, served.data.mouse_v2])
    for r in results:
        doc = r["metadata"]
        assert doc["bundle_fqid"] == r["bundle_fqid"]
        assert doc["files"]["meta_sample_json"]["organ"] == "cortex"
        assert "raw/sub-01.nii.gz" in {f["name"] for f in doc["manifest"]["files"]}


def test_paging_follows_the_link_with_the_same_body(served: Served) -> None:
    """As the hca client pages: POST the Link's absolute URL with the same body, and its own
    parameters again (identical duplicates)."""
    seen: list[str] = []
    totals = set()
    res = _post(served.url, {}, headers=LAB, replica="aws", per_page=10)
    pages = 1
    while True:
        assert res.status_code in (200, 206), res.text
        body = res.json()
        totals.add(body["total_hits"])
        seen += [r["bundle_fqid"] for r in body["results"]]
        if res.status_code == 200:
            assert "next" not in res.links
            break
        following = res.links["next"]["url"]
        assert following.startswith(f"{served.url}/v1/search?")
        assert len(body["results"]) == 10
        res = requests.post(following, json={"es_query": {}}, params={"replica": "aws", "per_page": 10},
                            headers=LAB, timeout=60)
        pages += 1
    assert pages == 2
    assert seen == served.everything  # each exactly once, in bundle fqid order
    assert totals == {len(served.everything)}


def test_raw_pages_hold_at_most_ten_documents(served: Served) -> None:
    res = _post(served.url, {}, headers=LAB, output_format="raw")
    assert res.status_code == 206
    assert len(res.json()["results"]) == 10
    assert "output_format=raw" in res.links["next"]["url"]


# -- access ---------------------------------------------------------------------------------------

def test_a_private_dataset_is_neither_listed_nor_counted_for_those_who_may_not_read_it(
        served: Served) -> None:
    public = served.mice
    assert _found(served.url, {}, headers=None) == public  # anonymous
    assert _found(served.url, {}, headers=OTHER) == public
    assert _found(served.url, {}, headers=LAB) == served.everything
    donors = _q({"exists": {"field": "files.meta_sample_json.donors"}})
    for who in (None, OTHER):
        res = _post(served.url, donors, headers=who)
        assert res.json() == {"es_query": donors, "results": [], "total_hits": 0}
    assert _found(served.url, donors, headers=LAB) == served.humans
    assert served.data.human.dataset_id not in _post(served.url, {}, headers=None).text


def test_a_bad_token_is_401(served: Served) -> None:
    res = _post(served.url, {}, headers={"Authorization": "Bearer nope"})
    assert res.status_code == 401
    assert res.json()["code"] == "unauthorized"


# -- freshness and the index --------------------------------------------------------------------

def _copy(served: Served, target: Path) -> Path:
    """The shared store without its index (another server may be writing that one)."""
    shutil.copytree(served.data.store, target, symlinks=True, ignore=_no_index)
    return target


def _no_index(directory: str, names: list[str]) -> set[str]:
    return {"index"} if Path(directory).name == "dss" else set()


def test_a_tombstoned_version_leaves_the_next_search(served: Served, tmp_path: Path) -> None:
    store = _copy(served, tmp_path / "store")  # the server builds the index at start
    d = served.data
    mouse = _q({"match": {SPECIES: "mouse"}})
    with api_server(store, _gate(d), tmp_path / "srv") as srv:
        assert _found(srv.url, mouse) == [d.mouse_v1]
        before = len(_found(srv.url, {}))
        run("dss", "bundles", "delete", store, d.mouse_v1.replace(".", "@", 1), "--reason", "retracted")
        deadline = time.monotonic() + 10  # a search catches up when the last catch-up is 1 s old
        while _found(srv.url, mouse):
            assert time.monotonic() < deadline, f"the server still finds the dead version\n{srv.output()}"
            time.sleep(0.2)
        assert len(_found(srv.url, {})) == before - 1


def test_a_read_only_server_still_searches(served: Served, tmp_path: Path) -> None:
    gate = GateDouble(public={served.data.mouse.dataset_id})
    client = TestClient(create_app(served.data.store, gate, cache_dir=tmp_path / "cache", read_only=True))
    res = client.post("/v1/search", json={"es_query": _q({"term": {SPECIES: "rat"}})})
    assert res.status_code == 200, res.text
    assert [r["bundle_fqid"] for r in res.json()["results"]] == [served.data.mouse_v2]
    refused = client.request("DELETE", f"/v1/bundles/{served.data.mouse.dataset_id}", json={"reason": "x"})
    assert refused.status_code == 503 and refused.json()["code"] == "read_only"


def test_an_index_the_server_cannot_write_is_searched_as_it_is(served: Served, tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    store = _copy(served, tmp_path / "store")
    with SqliteIndex(store) as index:
        index.catch_up()
    lock = index_path(store).with_name(index_path(store).name + ".lock")
    lock.unlink()
    lock.mkdir()  # the catch-up cannot take its lock (as in a store this user may only read)
    app = create_app(store, GateDouble.from_spec(_gate(served.data)), cache_dir=tmp_path / "cache")
    app.state.search_index = search_api.ServedIndex(store, refresh_seconds=0)  # every search tries
    client = TestClient(app)
    with caplog.at_level(logging.WARNING, logger="dss_remote.server.search_api"):
        for _ in range(2):
            res = client.post("/v1/search", json={"es_query": {}}, headers=LAB)
            assert res.status_code == 200, res.text
            assert res.json()["total_hits"] == len(served.everything)
    warned = [r for r in caplog.records if r.name == "dss_remote.server.search_api"]
    assert len(warned) == 1 and "cannot be brought up to date" in warned[0].getMessage()


def test_no_index_and_none_can_be_built_is_503_naming_the_fix(tmp_path: Path) -> None:
    store = tmp_path / "store"
    init_store(store)
    index_path(store).with_name(index_path(store).name + ".lock").mkdir(parents=True)  # cannot lock
    client = TestClient(create_app(store, GateDouble(), cache_dir=tmp_path / "cache"))
    res = client.post("/v1/search", json={"es_query": {}})
    assert res.status_code == 503, res.text
    assert res.json()["code"] == "unavailable"
    assert "`dss index STORE`" in res.json()["title"] and str(tmp_path) not in res.text


# -- bad input: each a 400 naming the problem ---------------------------------------------------

def _refused(res: requests.Response, *named: str) -> None:
    assert res.status_code == 400, res.text
    body = res.json()
    assert body["code"] == "illegal_arguments" and body["status"] == 400
    assert "Traceback" not in body["title"]
    for word in named:
        assert word in body["title"], body["title"]


def test_an_unsupported_clause_is_400_naming_it(empty_url: str) -> None:
    _refused(_post(empty_url, _q({"prefix": {"alias": "mou"}})), "'prefix'", "not supported")


def test_an_unsupported_clause_deep_in_a_bool_is_400_naming_where(empty_url: str) -> None:
    query = _q({"bool": {"must": [{"term": {"alias": "a"}}, {"fuzzy": {"alias": "b"}}]}})
    _refused(_post(empty_url, query), "'fuzzy'", "query.bool.must[1].fuzzy")


def test_per_page_below_the_range_is_400_naming_it(empty_url: str) -> None:
    _refused(_post(empty_url, {}, per_page=9), "per_page", "from 10 to 500")


def test_per_page_above_the_range_is_400_naming_it(empty_url: str) -> None:
    _refused(_post(empty_url, {}, per_page=501), "per_page", "from 10 to 500")


def test_a_raw_page_of_more_than_ten_is_400_naming_it(empty_url: str) -> None:
    _refused(_post(empty_url, {}, per_page=11, output_format="raw"), "per_page", "from 1 to 10", "raw")


def test_per_page_not_a_number_is_400_naming_it(empty_url: str) -> None:
    _refused(_post(empty_url, {}, per_page="ten"), "per_page")


def test_a_malformed_search_after_is_400_naming_it(empty_url: str) -> None:
    _refused(_post(empty_url, {}, search_after="not-a-bundle"), "search_after", "<bundle uuid>.<version>")


def test_an_unknown_output_format_is_400_naming_it(empty_url: str) -> None:
    _refused(_post(empty_url, {}, output_format="full"), "output_format", "summary or raw")


def test_an_unknown_replica_is_400_naming_the_known_ones(empty_url: str) -> None:
    _refused(_post(empty_url, {}, replica="azure"), "unknown replica 'azure'", "aws")


def test_an_unknown_parameter_is_400_naming_it(empty_url: str) -> None:
    _refused(_post(empty_url, {}, sort="version"), "'sort'")


def test_a_body_that_is_not_json_is_400(empty_url: str) -> None:
    res = requests.post(f"{empty_url}/v1/search", data=b'{"es_query": {', timeout=60,
                        headers={"Content-Type": "application/json"})
    _refused(res, "not JSON")


def test_a_body_that_is_not_an_object_is_400(empty_url: str) -> None:
    res = requests.post(f"{empty_url}/v1/search", json=[{"es_query": {}}], timeout=60)
    _refused(res, "must be a JSON object", "a list")


def test_es_query_a_list_is_400(empty_url: str) -> None:
    _refused(_post(empty_url, [{"match_all": {}}]), "es_query must be an object", "a list")


def test_an_unknown_body_field_is_400_naming_it(empty_url: str) -> None:
    res = requests.post(f"{empty_url}/v1/search", json={"es_query": {}, "size": 5}, timeout=60)
    _refused(res, "'size'")


def test_no_body_is_everything(empty_url: str) -> None:
    res = requests.post(f"{empty_url}/v1/search", timeout=60)
    assert res.status_code == 200, res.text
    assert res.json() == {"es_query": {}, "results": [], "total_hits": 0}


def test_a_body_over_the_limit_is_413_and_never_read_whole(empty_url: str) -> None:
    padding = "x" * (search_api.MAX_BODY + 1)
    res = requests.post(f"{empty_url}/v1/search", json={"es_query": {"match": {"alias": padding}}},
                        timeout=60)
    assert res.status_code == 413, res.text
    assert res.json()["code"] == "too_large" and "at most 1048576" in res.json()["title"]
