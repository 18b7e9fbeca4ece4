"""A store for the search tests: real DataLad datasets with JSON metadata, pushed through the dss
remote so the hook records real manifests and events. Built once per module (`search_store`)."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from api_data import Pushed, isolated_home, push_more, push_new

from dss_remote.admin.store import init_store
from dss_remote.config.search_settings import SearchSettings
from dss_remote.config.store_config import read_config, write_config
from ria_store import store as ria

#: small, so "too large" needs no megabyte of test data
MAX_BYTES = 4096


def _json(obj: object) -> bytes:
    return json.dumps(obj).encode() + b"\n"


MOUSE_V1 = {
    "dataset_description.json": _json({"Name": "Mouse cortex T1 scans", "License": "CC0"}),
    "meta/sample.json": _json({"species": "mouse", "organ": "cortex", "weight_g": 21.5,
                               "scan": {"modality": "T1w", "field_t": 7}}),
    "raw/sub-01.nii.gz": os.urandom(3000),
    "notes.txt": b"not indexed\n",
}
MOUSE_V2 = {"meta/sample.json": _json({"species": "rat", "organ": "cortex", "weight_g": 300,
                                       "scan": {"modality": "T2w", "field_t": 3}}),
            "raw/sub-02.nii.gz": os.urandom(2000)}
HUMAN = {
    "meta/sample.json": _json({"species": "human", "organ": "liver", "donors": [{"age": 34}, {"age": 61}]}),
    "broken.json": b'{"species": "mouse",\n',  # not valid JSON: indexed without content
    "huge.json": _json({"species": "mouse", "pad": "x" * (MAX_BYTES + 10)}),  # over the limit
    "tables/counts.tsv": b"a\tb\n",
}


@dataclass
class SearchStore:
    store: Path
    mouse: Pushed
    human: Pushed

    @property
    def mouse_v1(self) -> str:
        return f"{self.mouse.dataset_id}.{self.mouse.versions[0]}"

    @property
    def mouse_v2(self) -> str:
        return f"{self.mouse.dataset_id}.{self.mouse.versions[1]}"

    @property
    def human_v1(self) -> str:
        return f"{self.human.dataset_id}.{self.human.versions[0]}"


def search_store(base: Path, tools_path: str) -> SearchStore:
    """Two datasets: `mouse` (alias mouse-study, two versions) and `human` (alias human-liver,
    with a broken and a too large JSON file)."""
    store = base / "store"
    init_store(store)
    cfg = read_config(store)
    write_config(store, replace(cfg, search=SearchSettings(max_bytes=MAX_BYTES)))
    with isolated_home(base, tools_path):
        mouse = push_new(store, base / "mouse", MOUSE_V1)
        push_more(mouse, MOUSE_V2)
        human = push_new(store, base / "human", HUMAN)
        st = ria.open_store(store)
        ria.set_alias(st, mouse.dataset_id, "mouse-study")
        ria.set_alias(st, human.dataset_id, "human-liver")
    return SearchStore(store, mouse, human)


def shared_store(tmp_path_factory: pytest.TempPathFactory, tools_path: str) -> SearchStore:
    """`search_store`, built once per run and shared by the xdist workers (a lock in the run's
    temp root, as hca_venv does). Tests only search it (the index in it is caught up under its own
    lock); a test that changes the store works on a copy."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the run's root, above each worker's own
    base = root / "search-cli-store"
    built = base / "built.json"
    with open(root / "search-cli-store.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not built.exists():
            shutil.rmtree(base, ignore_errors=True)  # what a failed attempt left
            data = search_store(base, tools_path)
            built.write_text(json.dumps({n: {"dataset": str(p.dataset), "dataset_id": p.dataset_id,
                                             "versions": p.versions}
                                         for n, p in (("mouse", data.mouse), ("human", data.human))}))
    saved = json.loads(built.read_text())
    store = base / "store"
    return SearchStore(store, *(Pushed(store, Path(saved[n]["dataset"]), saved[n]["dataset_id"],
                                       saved[n]["versions"]) for n in ("mouse", "human")))
