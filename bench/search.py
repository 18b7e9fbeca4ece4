#!/usr/bin/env python3
"""Search benchmark: the embedded SQLite/FTS5 index (dss_remote/search/sqlite_index.py) over a store
of 10,000 bundle versions with 10 JSON documents each.

The issue's targets: catch-up of one new bundle version < 50 ms; p95 latency of representative
queries < 100 ms; and say where the embedded engine stops meeting that (documents, queries/s).

The store is made synthetically (a DataLad push of 10,000 versions would take hours) but in the
layout the hook leaves, so the index reads it as it reads a real one:

* `init_store`, then `--versions / 100` datasets (`ria_store.store.create_dataset`, object tree
  version 2, a `git init --bare` repo), half of them with an alias;
* 100 versions per dataset, spread over 2026-01-05..2026-11-28 (so `created` ranges select);
  each version's manifest is `bundles.build_manifest` + `dumps_manifest` of rows made by
  `bundles.file_record` (what the hook writes), written to `dss/bundles/<id>/<version>.json`,
  its line appended to `log.jsonl`, and its `bundle.created` event (`events.bundle_created`) written
  to the journal with the bytes `events.append` writes (the bulk writes skip the fsyncs; the
  versions added for the catch-up measurement go through `events.append` itself);
* rows per version (14-17): 10 annexed JSON files (`dataset_description.json`, `participants.json`,
  `meta/{sample,subject,scan,protocol,instrument,qc,provenance}.json`,
  `derivatives/summary.json`), whose SHA256E keys' bytes are loose objects in the store's
  `annex/objects` tree (where `documents.ContentReader` reads them), two git files
  (`.datalad/config`, indexed by default and read with `git cat-file` from the bare repo, and
  `.gitattributes`), an annexed `README.md` and 1-4 annexed raw files (`raw/sub-NN_T1w.nii.gz` in
  every third dataset, `raw/sub-NN.tif` elsewhere), whose content is not indexed;
* contents vary (species, organ, ages, dates, free-text descriptions, numbers, arrays); a
  version changes 1-2 JSON files of its parent (and sometimes adds a raw file), so consecutive
  versions share most keys, as pushes do.

Measured (medians and p95 over the raw per-run numbers, all kept):

1. `rebuild()` of the index from the manifests (`--rebuild-runs`, default 3): seconds, the
   index file's size and `stats()`;
2. catch-up per new version: `--catchups` (30) times one version added to a random dataset (objects,
   manifest, log line, `events.append`), then the timed `catch_up()`; then 10 more under cProfile
   (top entries in the results);
3. five queries through `query_language.parse` + `search(limit=100)`: after 3 warm-up rounds,
   `--query-runs` (50) rounds, the five queries interleaved; ms per query (parse included), total
   hits; and the SQL each ran with its EXPLAIN QUERY PLAN;
4. queries/s with 1, 2 and 4 threads, each thread its own `SqliteIndex` (its own connection),
   running the five queries in turn for `--qps-seconds` (10);
5. growth: more datasets, 100 versions each, until the index holds 2x, 4x and 8x `--versions`
   documents, and the queries measured again at each size. Their documents are made by
   `documents.document` (the pure half of `documents.build`) from the same generator's bytes
   and put in with `SqliteIndex.put_documents`, 500 per transaction: `catch_up` of the same
   versions written to the store runs at ~55 docs/s (a transaction per journal day, a `git
   cat-file` per version), which would take ~20 minutes for 70,000. Before that, the documents of
   10 datasets' newest versions are checked to be what the rebuild from the store made. Without
   `put_documents` the versions go through the store and `catch_up`. A step that would not
   end within `--budget-minutes` (20) of the start is skipped.

Raw numbers go to bench/results/search-<UTC time>.json with the machine (cores, Python, SQLite)
and each target's verdict. Run in the project's venv:
`python bench/search.py [--versions 10000] [--quick] [--keep DIR]`; `--quick` is 1,000 versions,
one rebuild, 10 catch-ups, 15 query rounds, growth to 2x only. It starts no process that outlives
it (only `git init` and the index's own `git cat-file`, each waited for).
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import io
import json
import os
import platform
import pstats
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid as uuidlib
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from dss_remote.admin.store import init_store
from dss_remote.config.search_settings import SearchSettings
from dss_remote.history import bundle_store, bundles, events
from dss_remote.search import documents, query_language
from dss_remote.search.sqlite_index import SqliteIndex
from ria_store import store as ria
from ria_store.bare_repo import TreeEntry
from ria_store.layout import object_relpath

ROOT = Path(__file__).resolve().parent.parent

TARGETS = {"catch_up_ms": 50.0, "query_p95_ms": 100.0}
VERSIONS_PER_DATASET = 100
QUERIES = [
    ("term", "meta.species:mouse"),
    ("term AND range", "meta.species:mouse AND meta.age>=30"),
    ("full text", "cortex"),
    ("path wildcard", "path:raw/*.nii.gz"),
    ("date range NOT term", "created>=2026-06-01 NOT meta.organ:liver"),
]
REF = "refs/heads/main"
SPAN_START = datetime(2026, 1, 5, tzinfo=timezone.utc)
SPAN = timedelta(days=327)

SPECIES = ["mouse"] * 8 + ["rat"] * 3 + ["human"] * 4 + ["macaque", "zebrafish", "zebrafish",
                                                          "drosophila"]
ORGANS = ["cortex", "liver", "hippocampus", "heart", "kidney", "retina", "cerebellum", "lung"]
MODALITIES = ["T1w", "T2w", "bold", "dwi", "confocal", "two-photon", "histology"]
LABS = ["Ahmadi lab", "Baxter lab", "Chen lab", "Dubois lab", "Eze lab", "Fischer lab"]
WORDS = ("acquired imaged sectioned stained fixed perfused anaesthetised awake resting task "
         "longitudinal baseline follow-up cohort control treated knockout wildtype littermates "
         "signal noise artefact motion corrected registered template atlas segmentation volume "
         "thickness density cells neurons glia vessels tissue slices layers region boundary "
         "protocol session scanner coil sequence contrast resolution isotropic anisotropic "
         "analysis pipeline quality reviewed approved flagged repeated excluded").split()
JSON_PATHS = ["dataset_description.json", "derivatives/summary.json", "meta/instrument.json",
              "meta/protocol.json", "meta/provenance.json", "meta/qc.json", "meta/sample.json",
              "meta/scan.json", "meta/subject.json", "participants.json"]


class BenchError(Exception):
    pass


def progress(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def med(xs: Sequence[float]) -> float:
    return statistics.median(xs)


def p95(xs: Sequence[float]) -> float:
    return statistics.quantiles(xs, n=20, method="inclusive")[18] if len(xs) > 1 else xs[0]


# -- the synthetic store ------------------------------------------------------------------------
def sentence(rng: random.Random, *extra: str, n: int = 12) -> str:
    words = rng.choices(WORDS, k=n) + list(extra)
    rng.shuffle(words)
    return " ".join(words).capitalize() + "."


def day(rng: random.Random) -> str:
    return (SPAN_START + timedelta(days=rng.randrange(327))).strftime("%Y-%m-%d")


@dataclass
class Profile:
    """What a dataset is about; a version changes a file's content, now and then its organ."""

    n: int
    species: str
    organ: str
    modality: str
    lab: str
    raw: str  # "nii" | "tif"


def content(path: str, p: Profile, rng: random.Random) -> dict[str, Any]:  # noqa: PLR0911  (a file each)
    """The JSON document at `path` of a dataset, one draw of it."""
    age = rng.randrange(2, 60) if p.species in ("mouse", "rat", "zebrafish", "drosophila") else \
        rng.randrange(1, 90)
    if path == "dataset_description.json":
        return {"Name": f"{p.species} {p.organ} {p.modality} study {p.n}", "BIDSVersion": "1.8.0",
                "License": rng.choice(["CC0", "CC-BY-4.0", "PDDL"]),
                "Authors": [f"{rng.choice('ABCDEFGHJK')}. {rng.choice(LABS).split()[0]}"
                            for _ in range(rng.randrange(1, 5))],
                "Description": sentence(rng, p.species, p.organ, n=20),
                "Funding": [f"grant {rng.randrange(10_000, 99_999)}"]}
    if path == "participants.json":
        return {"age": {"Description": "age at acquisition", "Units": "days" if age < 60 else "years"},
                "sex": {"Description": "sex", "Levels": {"F": "female", "M": "male"}},
                "group": {"Description": sentence(rng, n=5)}}
    if path == "meta/sample.json":
        return {"species": p.species, "organ": p.organ, "age": age, "sex": rng.choice("FM"),
                "weight_g": round(rng.uniform(0.001, 80_000), 3), "strain": rng.choice(
                    ["C57BL/6J", "Wistar", "n/a", "AB", "Canton-S", "BALB/c"]),
                "collected": day(rng), "tags": rng.sample(["pilot", "batch2", "rescan", "blind",
                                                           "public", "embargoed"], 2)}
    if path == "meta/subject.json":
        return {"subject_id": f"sub-{rng.randrange(1, 40):02d}", "age": age,
                "genotype": rng.choice(["wildtype", "knockout", "heterozygous", "n/a"]),
                "cohort": rng.randrange(1, 6), "handedness": rng.choice(["left", "right", None])}
    if path == "meta/scan.json":
        return {"modality": p.modality, "field_t": rng.choice([1.5, 3, 7, 9.4, 11.7]),
                "tr_ms": rng.randrange(500, 3000), "te_ms": round(rng.uniform(2, 90), 2),
                "n_slices": rng.randrange(20, 400), "voxel_mm": [round(rng.uniform(0.05, 2), 2)] * 3,
                "acquired": day(rng), "operator": rng.choice(LABS)}
    if path == "meta/protocol.json":
        return {"name": f"{p.modality} protocol v{rng.randrange(1, 9)}",
                "steps": [sentence(rng, n=6) for _ in range(rng.randrange(2, 6))],
                "temperature_c": round(rng.uniform(18, 38), 1), "notes": sentence(rng, p.organ, n=25)}
    if path == "meta/instrument.json":
        return {"manufacturer": rng.choice(["Bruker", "Siemens", "GE", "Zeiss", "Leica", "Nikon"]),
                "model": f"M{rng.randrange(100, 999)}", "serial": f"{rng.getrandbits(40):010x}",
                "software": {"name": "acq", "version": f"{rng.randrange(1, 6)}.{rng.randrange(20)}"}}
    if path == "meta/qc.json":
        return {"snr": round(rng.uniform(3, 80), 2), "motion_mm": round(rng.uniform(0, 3), 3),
                "passed": rng.random() > 0.15, "reviewer": rng.choice(LABS),
                "comment": sentence(rng, n=10)}
    if path == "meta/provenance.json":
        return {"pipeline": rng.choice(["fmriprep", "ants", "suite2p", "cellpose", "custom"]),
                "pipeline_version": f"{rng.randrange(1, 25)}.{rng.randrange(10)}.{rng.randrange(10)}",
                "created_by": rng.choice(LABS), "inputs": [f"raw/sub-{i:02d}" for i in range(1, 4)],
                "parameters": {"smoothing_mm": rng.choice([0, 2, 4, 6]), "seed": rng.randrange(1000)}}
    if path == "derivatives/summary.json":
        return {"volume_mm3": round(rng.uniform(10, 2_000_000), 1),
                "mean_thickness_mm": round(rng.uniform(0.5, 4.5), 3),
                "regions": [{"name": rng.choice(WORDS), "value": round(rng.uniform(0, 100), 2)}
                            for _ in range(rng.randrange(2, 6))]}
    raise AssertionError(path)


def git_blob(repo: Path | None, data: bytes) -> str:
    """The sha of `data` as a git blob, written loose into the bare repo `repo` (git's format)."""
    raw = b"blob %d\0" % len(data) + data
    sha = hashlib.sha1(raw).hexdigest()
    if repo is not None:
        obj = repo / "objects" / sha[:2] / sha[2:]
        obj.parent.mkdir(exist_ok=True)
        obj.write_bytes(zlib.compress(raw))
    return sha


@dataclass
class DatasetState:
    dsid: str
    repo: Path | None  # None: a dataset only for documents (`SyntheticStore.grow_documents`)
    alias: str | None
    profile: Profile
    rng: random.Random
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: the bytes of the indexed files, by path
    data: dict[str, bytes] = field(default_factory=dict)
    versions: list[str] = field(default_factory=list)


class SyntheticStore:
    """Writes datasets and their versions into a real store, as the hook would leave them."""

    def __init__(self, root: Path, env: dict[str, str], seed: int = 1) -> None:
        self.root, self.env, self.seed = root, env, seed
        init_store(root)
        self.store = ria.open_store(root)
        self.datasets: list[DatasetState] = []
        self.objects = 0

    def add_dataset(self, *, in_store: bool = True) -> DatasetState:
        n = len(self.datasets)
        rng = random.Random(self.seed * 1_000_003 + n)
        dsid = str(uuidlib.UUID(int=(0x5ea6 << 112) + n + 1, version=4))
        alias = f"study-{n:04d}" if n % 2 == 0 else None
        repo = None
        if in_store:
            repo = ria.create_dataset(self.store, dsid, alias=alias)
            res = subprocess.run(["git", "init", "-q", "--bare", str(repo)], env=self.env,
                                 capture_output=True, check=False)
            if res.returncode != 0:
                raise BenchError(f"git init --bare {repo}: {res.stderr.decode(errors='replace')}")
        prof = Profile(n, rng.choice(SPECIES), rng.choice(ORGANS), rng.choice(MODALITIES),
                       rng.choice(LABS), "nii" if n % 3 == 0 else "tif")
        ds = DatasetState(dsid, repo, alias, prof, rng)
        config = f'[datalad "dataset"]\n\tid = {dsid}\n'.encode()
        ds.data[".datalad/config"] = config
        gitattributes = b"* annex.backend=SHA256E\n**/.git* annex.largefiles=nothing\n"
        for path, data in ((".datalad/config", config), (".gitattributes", gitattributes)):
            sha = git_blob(repo, data)
            ds.rows[path] = bundles.file_record(TreeEntry("100644", "blob", sha, len(data), path), data)
        self._annexed(ds, "README.md", f"# {prof.species} {prof.organ}\n\n{sentence(rng)}\n".encode(),
                      write=False)
        for path in JSON_PATHS:
            self._json(ds, path)
        self._raw(ds)
        self.datasets.append(ds)
        return ds

    def _annexed(self, ds: DatasetState, path: str, data: bytes, *, write: bool = True) -> None:
        ext = "".join(Path(path).suffixes)
        key = f"SHA256E-s{len(data)}--{hashlib.sha256(data).hexdigest()}{ext}"
        if write and ds.repo is not None:  # loose in the store, as the dss remote lays keys out
            obj = ds.repo / object_relpath(key, "2")
            obj.parent.mkdir(parents=True, exist_ok=True)
            obj.write_bytes(data)
            self.objects += 1
        target = f"{'../' * path.count('/')}.git/annex/objects/Xx/Yy/{key}/{key}".encode()
        sha = hashlib.sha1(b"blob %d\0" % len(target) + target).hexdigest()
        ds.rows[path] = bundles.file_record(TreeEntry("120000", "blob", sha, len(target), path), target)

    def _json(self, ds: DatasetState, path: str) -> None:
        data = (json.dumps(content(path, ds.profile, ds.rng), indent=2) + "\n").encode()
        ds.data[path] = data
        self._annexed(ds, path, data)

    def _raw(self, ds: DatasetState) -> None:
        i = 1 + sum(p.startswith("raw/") for p in ds.rows)
        name = f"raw/sub-{i:02d}_T1w.nii.gz" if ds.profile.raw == "nii" else f"raw/sub-{i:02d}.tif"
        self._annexed(ds, name, ds.rng.randbytes(32), write=False)  # not indexed: no bytes needed

    def version_time(self, ds: DatasetState, j: int) -> datetime:
        frac = (ds.profile.n * 0.6180339887) % 1
        return SPAN_START + SPAN * ((j + frac) / VERSIONS_PER_DATASET) + timedelta(
            seconds=ds.rng.randrange(3600), microseconds=ds.rng.randrange(1_000_000))

    def add_version(self, ds: DatasetState, when: datetime, *, durable_event: bool = False
                    ) -> bundles.Manifest:
        """A new version of `ds` at `when` (after its last): 1-2 JSON files changed (the first
        version as made), and, for a dataset in the store, its manifest, log line and event."""
        if ds.versions:
            for path in ds.rng.sample(JSON_PATHS, ds.rng.choice([1, 1, 2])):
                if path == "meta/sample.json" and ds.rng.random() < 0.2:
                    ds.profile.organ = ds.rng.choice(ORGANS)
                self._json(ds, path)
            if ds.rng.random() < 0.1 and sum(p.startswith("raw/") for p in ds.rows) < 4:
                self._raw(ds)
        parent = ds.versions[-1] if ds.versions else None
        version = bundles.next_version(when, parent)
        ds.versions.append(version)
        commit = hashlib.sha1(f"{ds.dsid} {version}".encode()).hexdigest()
        rows = sorted((dict(r) for r in ds.rows.values()), key=lambda r: str(r["path"]).encode())
        manifest = bundles.build_manifest(
            bundles.BundleRef(ds.dsid, version, REF, commit, parent, bundles.parse_version(version)), rows)
        if ds.repo is None:
            return manifest
        directory = bundle_store.bundles_dir(self.root, ds.dsid)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"{version}.json").write_bytes(bundles.dumps_manifest(manifest))
        entry = bundle_store.LogEntry(version, REF, commit, len(rows))
        with open(directory / "log.jsonl", "ab") as f:
            f.write(json.dumps(asdict(entry), sort_keys=True).encode() + b"\n")
        event = events.bundle_created(ds.dsid, version, commit, REF)
        if durable_event:
            events.append(self.root, event)
        else:  # the bytes events.append writes, without its two fsyncs per event
            epath = events.event_path(self.root, event.event_id)
            epath.parent.mkdir(parents=True, exist_ok=True)
            epath.write_bytes(json.dumps(event.to_json(), sort_keys=True).encode() + b"\n")
        return manifest

    def grow(self, n_datasets: int) -> int:
        """`n_datasets` new datasets of VERSIONS_PER_DATASET versions each, in the store."""
        for _ in range(n_datasets):
            ds = self.add_dataset()
            for j in range(VERSIONS_PER_DATASET):
                self.add_version(ds, self.version_time(ds, j))
        return n_datasets * VERSIONS_PER_DATASET

    def document(self, ds: DatasetState, manifest: bundles.Manifest) -> dict[str, Any]:
        """The document `documents.build` makes of `manifest`, from the bytes in memory."""
        contents = {p: documents.parse_content(p, d) for p, d in ds.data.items()}
        return documents.document(manifest.head, manifest.files, contents=contents,
                                  aliases=[ds.alias] if ds.alias else [], meta={},
                                  settings=SearchSettings())

    def grow_documents(self, n_datasets: int, idx: SqliteIndex, batch: int = 500
                       ) -> tuple[int, float, float]:
        """`n_datasets` more datasets' versions, their documents put in the index directly
        (`put_documents`, `batch` per transaction): (documents, seconds making them, seconds
        indexing them)."""
        made_s = index_s = 0.0
        n = 0
        pending: list[dict[str, Any]] = []

        def flush() -> float:
            t = time.perf_counter()
            idx.put_documents(pending)
            pending.clear()
            return time.perf_counter() - t

        for _ in range(n_datasets):
            t = time.perf_counter()
            ds = self.add_dataset(in_store=False)
            for j in range(VERSIONS_PER_DATASET):
                pending.append(self.document(ds, self.add_version(ds, self.version_time(ds, j))))
            made_s += time.perf_counter() - t
            n += VERSIONS_PER_DATASET
            if len(pending) >= batch:
                index_s += flush()
        if pending:
            index_s += flush()
        return n, made_s, index_s


# -- measurements -------------------------------------------------------------------------------
def rebuild_part(idx: SqliteIndex, runs: int, versions: int) -> dict[str, Any]:
    secs = []
    for i in range(runs):
        t = time.perf_counter()
        report = idx.rebuild()
        secs.append(time.perf_counter() - t)
        if report.documents != versions or report.problems:
            raise BenchError(f"rebuild indexed {report.documents} of {versions} versions, "
                             f"{len(report.problems)} problems: {report.problems[:3]}")
        progress(f"rebuild {i + 1}/{runs}: {secs[-1]:.1f} s, {report.documents} documents")
    stats = idx.stats()
    progress(f"index: {stats}")
    return {"seconds": secs, "median_seconds": med(secs), "stats": stats,
            "docs_per_second": versions / med(secs), "load_average_1min": os.getloadavg()[0]}


def check_documents(idx: SqliteIndex, synth: SyntheticStore) -> None:
    """The index's document of each dataset's newest version is the one `synth.document` makes
    (so documents put in directly while growing are what the store would give)."""
    for ds in synth.datasets[:10]:
        manifest = bundle_store.load(synth.root, ds.dsid)
        fqid = manifest.head.bundle_fqid
        hits = idx.search(query_language.parse(f'bundle_fqid:"{fqid}"'), with_docs=True).hits
        if len(hits) != 1 or hits[0].doc != synth.document(ds, manifest):
            raise BenchError(f"the index's document of {fqid} is not the one the benchmark makes")


def catch_up_part(idx: SqliteIndex, synth: SyntheticStore, n: int, n_base: int) -> dict[str, Any]:
    t = time.perf_counter()
    first = idx.catch_up()
    first_s = time.perf_counter() - t
    progress(f"catch-up after the rebuild (every day re-listed once): {first_s * 1000:.0f} ms, "
             f"{first.events} events")
    rng = random.Random(7)
    ms: list[float] = []
    add_ms: list[float] = []

    def one() -> float:
        ds = synth.datasets[rng.randrange(n_base)]
        t0 = time.perf_counter()
        synth.add_version(ds, datetime.now(timezone.utc), durable_event=True)
        add_ms.append((time.perf_counter() - t0) * 1000)
        t1 = time.perf_counter()
        report = idx.catch_up()
        took = (time.perf_counter() - t1) * 1000
        if report.documents != 1 or report.problems:
            raise BenchError(f"catch-up of one version indexed {report.documents} documents, "
                             f"problems {report.problems[:3]}")
        return took

    for _ in range(n):
        ms.append(one())
    progress(f"catch-up per version: p50 {med(ms):.1f} ms, p95 {p95(ms):.1f} ms (n={n})")
    prof = cProfile.Profile()
    for _ in range(10):
        prof.runcall(one)
    return {"first_after_rebuild_ms": first_s * 1000, "ms": ms, "p50_ms": med(ms), "p95_ms": p95(ms),
            "adding_a_version_ms": add_ms[:n], "profile_10_catchups": profile_rows(prof),
            "load_average_1min": os.getloadavg()[0]}


def profile_rows(prof: cProfile.Profile) -> dict[str, Any]:
    stats = pstats.Stats(prof)
    rows = []
    for func, (cc, nc, tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        file, line, name = func
        rows.append({"function": f"{Path(file).name}:{line}({name})" if line else name, "calls": nc,
                     "primitive_calls": cc, "tottime": tt, "cumtime": ct})
    text = io.StringIO()
    pstats.Stats(prof, stream=text).sort_stats("cumulative").print_stats(18)
    progress("profile, top by cumulative time:\n" + "\n".join(text.getvalue().splitlines()[:34]))
    return {"top_cumulative": sorted(rows, key=lambda r: r["cumtime"], reverse=True)[:30],
            "top_tottime": sorted(rows, key=lambda r: r["tottime"], reverse=True)[:20]}


def run_query(idx: SqliteIndex, text: str) -> tuple[float, int, int]:
    t = time.perf_counter()
    res = idx.search(query_language.parse(text), limit=100)
    return (time.perf_counter() - t) * 1000, res.total, len(res.hits)


def queries_part(idx: SqliteIndex, runs: int, warmup: int = 3) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for _ in range(warmup):
        for _name, text in QUERIES:
            run_query(idx, text)
    ms: dict[str, list[float]] = {name: [] for name, _ in QUERIES}
    totals: dict[str, int] = {}
    t_all = time.perf_counter()
    for _ in range(runs):
        for name, text in QUERIES:
            took, total, hits = run_query(idx, text)
            ms[name].append(took)
            totals[name] = total
            if hits != min(total, 100):
                raise BenchError(f"{text!r}: {hits} hits of {total}")
    wall = time.perf_counter() - t_all
    for name, text in QUERIES:
        out[name] = {"query": text, "ms": ms[name], "p50_ms": med(ms[name]), "p95_ms": p95(ms[name]),
                     "total_hits": totals[name]}
        progress(f"  {name:20s} {text!r:45s} p50 {med(ms[name]):7.1f} ms  p95 {p95(ms[name]):7.1f} ms  "
                 f"{totals[name]} hits")
    out["_one_thread_queries_per_second"] = runs * len(QUERIES) / wall
    out["_load_average_1min"] = os.getloadavg()[0]
    return out


def query_plans(idx: SqliteIndex) -> dict[str, Any]:
    """The SQL `search` runs for each query (traced on its connection) and its query plan."""
    con = idx._connection()  # the index's own connection: what it executes is what we explain
    plans: dict[str, Any] = {}
    for name, text in QUERIES:
        seen: list[str] = []
        con.set_trace_callback(seen.append)
        try:
            idx.search(query_language.parse(text), limit=100)
        finally:
            con.set_trace_callback(None)
        plans[name] = [{"sql": sql, "plan": [f"{r[0]} {r[1]} {r[3]}" for r in
                                             con.execute(f"EXPLAIN QUERY PLAN {sql}").fetchall()]}
                       for sql in seen if "FROM docs d" in sql]
    return plans


def qps_round(store: Path, n: int, seconds: float) -> dict[str, Any]:
    """`n` threads, each with its own SqliteIndex, running the queries in turn for `seconds`."""
    indexes = [SqliteIndex(store) for _ in range(n)]
    lat: list[list[float]] = [[] for _ in range(n)]
    barrier = threading.Barrier(n + 1)
    stop = threading.Event()
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for _, text in QUERIES:  # warm this connection's page cache
                run_query(indexes[i], text)
            barrier.wait()
            k = i
            while not stop.is_set():
                lat[i].append(run_query(indexes[i], QUERIES[k % len(QUERIES)][1])[0])
                k += 1
        except BaseException as e:  # reported after the join
            errors.append(e)
            barrier.abort()

    pool = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for th in pool:
        th.start()
    t = time.perf_counter()
    try:
        barrier.wait()
        t = time.perf_counter()
        time.sleep(seconds)
    except threading.BrokenBarrierError:
        pass
    stop.set()
    for th in pool:
        th.join()
    wall = time.perf_counter() - t
    for ix in indexes:
        ix.close()
    if errors:
        raise BenchError(f"query thread failed: {errors[0]!r}")
    all_ms = [x for xs in lat for x in xs]
    progress(f"  {n} thread(s): {len(all_ms) / wall:.1f} queries/s (p95 {p95(all_ms):.1f} ms)")
    return {"threads": n, "queries": len(all_ms), "seconds": wall,
            "queries_per_thread": [len(x) for x in lat],
            "queries_per_second": len(all_ms) / wall, "p50_ms": med(all_ms), "p95_ms": p95(all_ms),
            "load_average_1min": os.getloadavg()[0]}


def qps_part(store: Path, threads: Sequence[int], seconds: float) -> dict[str, Any]:
    return {str(n): qps_round(store, n, seconds) for n in threads}


# -- main ---------------------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    def out(cmd: list[str]) -> str:
        return subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=ROOT).stdout

    dirty = out(["git", "status", "--porcelain"]).split("\n")
    return {"cpus": os.cpu_count(), "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version, "platform": platform.platform(),
            "machine": platform.machine(), "commit": out(["git", "rev-parse", "HEAD"]).strip(),
            "uncommitted": ", ".join(line[3:] for line in dirty if line)}


def make_env(work: Path) -> dict[str, str]:
    home = work / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(HOME=str(home), GIT_CONFIG_NOSYSTEM="1")
    return env


def verdicts(r: dict[str, Any]) -> dict[str, Any]:
    c = r["catch_up"]
    q = r["queries"]
    worst = max(v["p95_ms"] for k, v in q.items() if not k.startswith("_"))
    out: dict[str, Any] = {"catch_up_p50_ms": {"value": c["p50_ms"], "target_below": TARGETS["catch_up_ms"],
                               "met": c["p50_ms"] < TARGETS["catch_up_ms"]},
           "catch_up_p95_ms": {"value": c["p95_ms"], "target_below": TARGETS["catch_up_ms"],
                               "met": c["p95_ms"] < TARGETS["catch_up_ms"]},
           "query_p95_ms_worst": {"value": worst, "target_below": TARGETS["query_p95_ms"],
                                  "met": worst < TARGETS["query_p95_ms"]}}
    for k, v in q.items():
        if not k.startswith("_"):
            out[f"query_p95_ms {k}"] = {"value": v["p95_ms"], "target_below": TARGETS["query_p95_ms"],
                                        "met": v["p95_ms"] < TARGETS["query_p95_ms"]}
    below = [g for g in r.get("growth", []) if g.get("worst_p95_ms", 0) >= TARGETS["query_p95_ms"]]
    out["first_size_missing_query_p95"] = (
        {"documents": below[0]["documents"], "worst_p95_ms": below[0]["worst_p95_ms"]} if below else None)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--versions", type=int, help="bundle versions of the base store (default 10000)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 1000 versions, fewer runs, growth to 2x")
    ap.add_argument("--rebuild-runs", type=int)
    ap.add_argument("--catchups", type=int)
    ap.add_argument("--query-runs", type=int)
    ap.add_argument("--qps-seconds", type=float)
    ap.add_argument("--budget-minutes", type=float, default=20.0,
                    help="skip growth steps that would not end within this many minutes of the start")
    ap.add_argument("--keep", type=Path, help="work in this directory (new or empty) and keep it")
    args = ap.parse_args()
    q = args.quick
    n_versions = args.versions or (1000 if q else 10_000)
    rebuild_runs = args.rebuild_runs or (1 if q else 3)
    catchups = args.catchups or (10 if q else 30)
    query_runs = args.query_runs or (15 if q else 50)
    qps_seconds = args.qps_seconds or (3.0 if q else 10.0)
    factors = (2,) if q else (2, 4, 8)
    n_base = max(1, n_versions // VERSIONS_PER_DATASET)
    if args.keep is not None and args.keep.exists() and any(args.keep.iterdir()):
        print(f"--keep {args.keep}: not empty", file=sys.stderr)
        return 2
    work = (args.keep or Path(tempfile.mkdtemp(prefix="dss-bench-search-"))).absolute()
    work.mkdir(parents=True, exist_ok=True)
    started = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    t_start = time.perf_counter()
    budget = args.budget_minutes * 60
    results: dict[str, Any] = {"benchmark": "search", "quick": q, "targets": TARGETS,
                               "queries_run": dict(QUERIES), "machine": machine(),
                               "load_average_1min_start": os.getloadavg()[0]}
    code = 0
    idx: SqliteIndex | None = None
    try:
        env = make_env(work)
        store = work / "store"
        synth = SyntheticStore(store, env)
        t = time.perf_counter()
        written = synth.grow(n_base)
        gen_s = time.perf_counter() - t
        progress(f"store: {written} versions of {n_base} datasets, {synth.objects} loose JSON objects, "
                 f"written in {gen_s:.1f} s")
        results["store"] = {"datasets": n_base, "versions": written, "json_objects": synth.objects,
                            "rows_per_manifest": [len(bundle_store.load(store, d.dsid).files)
                                                  for d in synth.datasets[:5]],
                            "write_seconds": gen_s}
        idx = SqliteIndex(store)
        results["rebuild"] = rebuild_part(idx, rebuild_runs, written)
        check_documents(idx, synth)
        results["catch_up"] = catch_up_part(idx, synth, catchups, n_base)
        docs = idx.stats()["documents"]
        progress(f"queries at {docs} documents, {query_runs} rounds")
        results["queries"] = queries_part(idx, query_runs)
        results["query_plans"] = query_plans(idx)
        progress(f"queries/s at {docs} documents")
        results["queries_per_second"] = qps_part(store, (1, 2, 4), qps_seconds)
        growth = [{"documents": docs, "stats": idx.stats(), "worst_p95_ms": max(
            v["p95_ms"] for k, v in results["queries"].items() if not k.startswith("_")),
            "queries": results["queries"]}]
        results["growth"] = growth
        rate = results["rebuild"]["docs_per_second"]
        direct = hasattr(idx, "put_documents")
        for f in factors:
            add_ds = max(1, (n_versions * f - docs) // VERSIONS_PER_DATASET)
            left = budget - (time.perf_counter() - t_start)
            estimate = add_ds * VERSIONS_PER_DATASET / rate + 60
            if estimate > left:
                progress(f"growth to {n_versions * f}: skipped (about {estimate:.0f} s, {left:.0f} s left)")
                growth.append({"target_documents": n_versions * f, "skipped": True,
                               "estimated_seconds": estimate, "seconds_left": left})
                break
            step: dict[str, Any] = {"feeder": "put_documents" if direct else "store + catch_up"}
            if direct:
                added, step["make_seconds"], step["index_seconds"] = synth.grow_documents(add_ds, idx)
            else:
                t = time.perf_counter()
                synth.grow(add_ds)
                step["make_seconds"] = time.perf_counter() - t
                t = time.perf_counter()
                added = idx.catch_up().documents
                step["index_seconds"] = time.perf_counter() - t
            rate = added / step["index_seconds"]
            docs = idx.stats()["documents"]
            progress(f"growth ({step['feeder']}): {added} documents made in {step['make_seconds']:.1f} s, "
                     f"indexed in {step['index_seconds']:.1f} s ({rate:.0f} docs/s); now {docs} documents, "
                     f"{idx.stats()['bytes'] / 2**20:.0f} MiB")
            probe = run_query(idx, QUERIES[0][1])[0] + run_query(idx, QUERIES[2][1])[0]
            qres = queries_part(idx, query_runs if probe < 400 else max(10, query_runs // 3))
            growth.append(step | {
                "documents": docs, "stats": idx.stats(), "index_docs_per_second": rate, "queries": qres,
                "worst_p95_ms": max(v["p95_ms"] for k, v in qres.items() if not k.startswith("_"))})
    except BenchError as e:
        print(f"search bench: {e}", file=sys.stderr)
        results["error"] = str(e)
        code = 1
    finally:
        if idx is not None:
            idx.close()
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    results["load_average_1min_end"] = os.getloadavg()[0]
    results["wall_seconds"] = time.perf_counter() - t_start
    if code == 0:
        results["verdicts"] = verdicts(results)
        print_summary(results)
    out = ROOT / "bench" / "results" / f"search-{started}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"raw: {out}")
    return code


def print_summary(r: dict[str, Any]) -> None:
    def ok(v: dict[str, Any]) -> str:
        return "met" if v["met"] else "MISSED"

    rb, c, v = r["rebuild"], r["catch_up"], r["verdicts"]
    print(f"rebuild, {r['store']['versions']} versions: {rb['median_seconds']:.1f} s (median of "
          f"{len(rb['seconds'])}), {rb['docs_per_second']:.0f} docs/s; index "
          f"{rb['stats']['bytes'] / 2**20:.0f} MiB, {rb['stats']['leaves']} leaves")
    print(f"first catch-up after the rebuild (no new event): {c['first_after_rebuild_ms']:.0f} ms")
    print(f"catch-up per version: p50 {c['p50_ms']:.1f} ms ({ok(v['catch_up_p50_ms'])}), p95 "
          f"{c['p95_ms']:.1f} ms ({ok(v['catch_up_p95_ms'])}) (target < {TARGETS['catch_up_ms']:.0f} ms)")
    for g in r["growth"]:
        if g.get("skipped"):
            print(f"{g['target_documents']} documents: skipped (time budget)")
            continue
        print(f"queries at {g['documents']} documents (p50 / p95 ms, hits; target p95 < "
              f"{TARGETS['query_p95_ms']:.0f} ms):")
        for name, text in QUERIES:
            x = g["queries"][name]
            flag = "met" if x["p95_ms"] < TARGETS["query_p95_ms"] else "MISSED"
            print(f"  {name:20s} {text:42s} {x['p50_ms']:7.1f} / {x['p95_ms']:7.1f}  "
                  f"{x['total_hits']:6d}  {flag}")
    qps = r["queries_per_second"]
    print("queries/s at the base size: " + ", ".join(
        f"{k} thread(s) {x['queries_per_second']:.0f}" for k, x in qps.items()))
    first = v["first_size_missing_query_p95"]
    print("p95 < 100 ms for every query at every size measured" if first is None else
          f"first size missing p95 < 100 ms: {first['documents']} documents (worst p95 "
          f"{first['worst_p95_ms']:.0f} ms)")


if __name__ == "__main__":
    sys.exit(main())
