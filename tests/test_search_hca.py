"""The real `hca dss post-search` (hca 7.0.1) against `POST /v1/search` under uvicorn: it finds exactly the
matching bundle versions, and pages (re-POSTing the body to each Link) through every result, summary and
raw."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_server import api_server
from hca_client import run_hca
from test_search_api import HUMANS, Served, shared_search_store

pytest_plugins = ["hca_client"]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, tools_path: str) -> Iterator[Served]:
    """test_search_api's store (built once per run): mouse's 2 versions and HUMANS of human."""
    data = shared_search_store(tmp_path_factory, tools_path)
    gate = {"public": [data.mouse.dataset_id, data.human.dataset_id]}
    with api_server(data.store, gate, tmp_path_factory.mktemp("search-hca-srv")) as srv:
        yield Served(data, srv.url)


def _post_search(hca: Path, work: Path, url: str, es_query: dict[str, Any], *args: str) -> dict[str, Any]:
    out = run_hca(hca, work, url, "dss", "post-search", "--replica", "aws",
                  "--es-query", json.dumps(es_query), *args)
    body: dict[str, Any] = json.loads(out.stdout)  # the first page's body, with every page's results
    return body


def test_hca_post_search_finds_exactly_the_matching_versions(served: Served, hca_venv: Path,
                                                             tmp_path: Path) -> None:
    query = {"query": {"match": {"files.meta_sample_json.species": "mouse"}}}
    body = _post_search(hca_venv, tmp_path, served.url, query)
    assert body["es_query"] == query
    assert [r["bundle_fqid"] for r in body["results"]] == [served.data.mouse_v1]
    assert body["total_hits"] == 1
    dsid, version = served.data.mouse_v1.split(".", 1)
    assert body["results"][0]["bundle_url"] == f"{served.url}/v1/bundles/{dsid}?version={version}&replica=aws"


def test_hca_post_search_pages_through_every_version(served: Served, hca_venv: Path, tmp_path: Path) -> None:
    body = _post_search(hca_venv, tmp_path, served.url, {}, "--per-page", "10")
    assert [r["bundle_fqid"] for r in body["results"]] == served.everything  # 10, then 4: each once
    assert body["total_hits"] == len(served.everything) == 2 + HUMANS


def test_hca_post_search_raw_pages_the_documents(served: Served, hca_venv: Path, tmp_path: Path) -> None:
    query = {"query": {"term": {"files.meta_sample_json.species": "human"}}}
    body = _post_search(hca_venv, tmp_path, served.url, query, "--output-format", "raw")
    assert [r["bundle_fqid"] for r in body["results"]] == served.humans  # 10, then 2
    assert {r["metadata"]["files"]["meta_sample_json"]["organ"] for r in body["results"]} == {"liver"}
