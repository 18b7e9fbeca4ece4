#!/usr/bin/env python3
"""Serve load benchmark: the pages of a 10,000-file bundle and 20 clients of small-file GETs, `dss serve`.

Issue 17's targets (part 1, one large file, is bench/serve.py): every 500-file page of a
10,000-file bundle in p95 < 200 ms; 20 concurrent clients x 500 small-file GETs against
`dss serve --workers 2` at >= 0.5x the requests/s of a bare FastAPI route returning the same
bytes, 0 errors, peak RSS per worker < 200 MiB.

* `--part pages`: a `datalad create` dataset of `--files` files (annexed SHA256E symlinks whose
  content need not exist, committed with one `git fast-import`), published with `dss init` +
  `dss create-sibling` + `datalad push --data nothing` (the hook records the manifest), readable
  by anyone (`dss acl default STORE --read public`). Per run: the real `dss serve` is started on a
  fresh `--cache-dir`, then walks `GET /v1/bundles/{uuid}?per_page=500` following `Link` to the
  end: the first walk is `cold` (its first page builds the index), the second `warm`.
* `--part small`: `--small` files of 1-4 KiB random bytes, saved and pushed with their content.
  `dss serve --workers 2` and `bare` (uvicorn --workers 2 running `bare_app` below: one route, the
  same bytes from memory) both serve them; the same client (`--clients` threads, each with its own
  keep-alive `http.client` connection, `--gets` GETs of `/v1/files/{uuid}?replica=aws` each,
  every body compared with the file's bytes) loads each in turn, `--runs` rounds in alternating
  order after one untimed warm-up round. Then each worker's VmHWM (peak RSS) from /proc.

Medians of runs to stdout; raw numbers to bench/results/serve-load-<timestamp>.json. Run in the
project's venv: `python bench/serve_load.py [--part pages|small|all] [--files N] [--small N]
[--clients C] [--gets G] [--runs R] [--keep DIR]`. Servers bind 127.0.0.1 and are stopped (by
process group) before the script ends, also when it fails.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests
from fastapi.responses import Response
from serve import HOST, free_port, start, stop, versions

TARGET_P95_MS = 200.0
TARGET_VS_BARE = 0.5
TARGET_RSS_MIB = 200.0
WORKERS = 2


# -- the bare app (`--factory serve_load:bare_app`): one route, the same bytes, nothing else --------
def bare_app() -> Any:
    from fastapi import FastAPI

    paths = json.loads(Path(os.environ["DSS_BENCH_FILES"]).read_text())
    bodies = {u: Path(p).read_bytes() for u, p in paths.items()}
    api = FastAPI()

    @api.get("/v1/files/{uuid}")
    def file(uuid: str, replica: str | None = None) -> Response:
        return Response(bodies[uuid], media_type="application/octet-stream")

    return api


# -- building the store ---------------------------------------------------------------------------
def sh(*cmd: str | Path, env: dict[str, str], cwd: Path | None = None, stdin: bytes | None = None) -> str:
    res = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, input=stdin, capture_output=True,
                         check=False)
    if res.returncode != 0:
        sys.exit(f"`{' '.join(map(str, cmd))}` failed: {res.stderr.decode(errors='replace')[-2000:]}")
    return res.stdout.decode()


def bench_env(work: Path) -> dict[str, str]:
    """A throwaway HOME with a git identity; the venv's tools first on PATH."""
    home = work / "home"
    home.mkdir(parents=True, exist_ok=True)
    (home / ".gitconfig").write_text("[user]\n\tname = bench\n\temail = bench@example.invalid\n"
                                     "[init]\n\tdefaultBranch = main\n")
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return dict(os.environ, HOME=str(home), GIT_CONFIG_NOSYSTEM="1", PATH=path)


def many_files_dataset(ds: Path, n: int, env: dict[str, str]) -> None:
    """`datalad create`, then n annexed files (symlinks to SHA256E keys) in one `git fast-import`."""
    from ria_store.layout import dirhash_mixed

    sh("datalad", "-l", "error", "create", ds, env=env)
    head = sh("git", "rev-parse", "HEAD", cwd=ds, env=env).strip()
    msg = f"{n} files".encode()
    parts = [b"commit refs/heads/main\ncommitter bench <bench@example.invalid> 0 +0000\n",
             b"data %d\n%s\nfrom %s\n" % (len(msg), msg, head.encode())]
    for i in range(n):
        key = f"SHA256E-s{1000 + i}--{i:064x}.dat"
        target = f"../.git/annex/objects/{dirhash_mixed(key)}{key}/{key}".encode()
        parts.append(b"M 120000 inline d%02d/f%05d.dat\ndata %d\n%s\n" % (i % 100, i, len(target), target))
    sh("git", "fast-import", "--quiet", cwd=ds, env=env, stdin=b"".join(parts))
    sh("git", "reset", "-q", "--hard", cwd=ds, env=env)


def small_files_dataset(ds: Path, n: int, env: dict[str, str]) -> dict[str, bytes]:
    """`datalad create` + n files of 1-4 KiB of random bytes, saved (annexed); path -> bytes."""
    sh("datalad", "-l", "error", "create", ds, env=env)
    rng = random.Random(17)
    files = {f"s{i % 10}/f{i:04d}.bin": os.urandom(rng.randint(1024, 4096)) for i in range(n)}
    for rel, data in files.items():
        (ds / rel).parent.mkdir(exist_ok=True)
        (ds / rel).write_bytes(data)
    sh("datalad", "-l", "error", "save", "-m", f"{n} small files", cwd=ds, env=env)
    return files


def publish(store: Path, ds: Path, env: dict[str, str], data: str) -> str:
    """A new public `dss init` store with `ds` pushed to it; the dataset id."""
    sh("dss", "init", store, env=env)
    sh("dss", "acl", "default", store, "--read", "public", env=env)
    sh("dss", "create-sibling", "-d", ds, "--name", "store", f"ria+file://{store}", env=env)
    sh("datalad", "-l", "error", "push", "--to", "store", "--data", data, cwd=ds, env=env)
    return sh("git", "config", "-f", ds / ".datalad" / "config", "datalad.dataset.id", env=env).strip()


def dss_serve(store: Path, cache: Path, workers: int, env: dict[str, str], *, log: Path,
              procs: list[subprocess.Popen[bytes]], threads: int | None = None
              ) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    base = f"http://{HOST}:{port}"
    procs.append(start(["dss", "serve", str(store), "--host", HOST, "--port", str(port), "--workers",
                        str(workers), "--cache-dir", str(cache),
                        *(["--threads", str(threads)] if threads else [])],
                       env, log, f"{base}/internal/health"))
    return procs[-1], base


# -- part 1: pages ---------------------------------------------------------------------------------
def pct(values: list[float], p: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1] if len(values) > 1 else values[0]


def walk(session: requests.Session, url: str, expected: int) -> list[float]:
    """Seconds per page of one walk through the bundle, following `Link` to the last page."""
    times: list[float] = []
    files = 0
    next_url: str | None = url
    while next_url:
        t = time.perf_counter()
        res = session.get(next_url)
        times.append(time.perf_counter() - t)
        if res.status_code not in (200, 206):
            sys.exit(f"GET {next_url}: {res.status_code} {res.text[:500]}")
        files += len(res.json()["bundle"]["files"])
        next_url = res.links.get("next", {}).get("url") if res.status_code == 206 else None
    if files != expected:
        sys.exit(f"walked {files} files, expected {expected}")
    return times


def part_pages(work: Path, env: dict[str, str], args: argparse.Namespace) -> dict[str, Any]:
    t0 = time.perf_counter()
    ds, store = work / "pages-ds", work / "pages-store"
    many_files_dataset(ds, args.files, env)
    dsid = publish(store, ds, env, "nothing")
    tracked = len(sh("git", "ls-files", "-z", cwd=ds, env=env).split("\0")) - 1  # + datalad's own files
    print(f"pages setup: {args.files} files in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    walks: dict[str, list[list[float]]] = {"cold": [], "warm": []}
    for run in range(args.runs):
        procs: list[subprocess.Popen[bytes]] = []
        try:
            _, base = dss_serve(store, work / f"cache-pages-{run}", 1, env, log=work / "serve-pages.log",
                                procs=procs)
            with requests.Session() as session:
                for kind in ("cold", "warm"):
                    walks[kind].append(walk(session, f"{base}/v1/bundles/{dsid}?replica=aws&per_page=500",
                                            tracked))
        finally:
            for proc in procs:
                stop(proc)
        print(f"pages run {run + 1}/{args.runs}: cold first page {walks['cold'][-1][0] * 1000:.0f} ms",
              file=sys.stderr)
    out: dict[str, Any] = {"files": args.files, "per_page": 500, "runs": args.runs, "walk_seconds": walks}
    print(f"== pages: {args.files} files, 500 a page, {args.runs} runs (median of runs; ms)")
    print(f"{'':6}{'pages':>6}{'first':>9}{'p50':>9}{'p95':>9}{'max':>9}{'walk':>9}")
    for kind, ws in walks.items():
        ms = [[t * 1000 for t in w] for w in ws]
        row = {"pages": len(ms[0]), "first_ms": statistics.median(w[0] for w in ms),
               "p50_ms": statistics.median(pct(w, 50) for w in ms),
               "p95_ms": statistics.median(pct(w, 95) for w in ms),
               "max_ms": statistics.median(max(w) for w in ms),
               "walk_ms": statistics.median(sum(w) for w in ms),
               "pooled_p50_ms": pct([t for w in ms for t in w], 50),
               "pooled_p95_ms": pct([t for w in ms for t in w], 95)}
        out[kind] = row
        print(f"{kind:6}{row['pages']:6d}{row['first_ms']:9.1f}{row['p50_ms']:9.1f}{row['p95_ms']:9.1f}"
              f"{row['max_ms']:9.1f}{row['walk_ms']:9.1f}")
    for kind in walks:
        p95 = out[kind]["p95_ms"]
        print(f"{kind} p95 {p95:.1f} ms (target < {TARGET_P95_MS:.0f} ms: "
              f"{'met' if p95 < TARGET_P95_MS else 'MISSED'})")
    return out


# -- part 2: small files under load ----------------------------------------------------------------
def load(base: str, uuids: list[str], bodies: dict[str, bytes], clients: int, gets: int) -> dict[str, Any]:
    """`clients` threads x `gets` GETs, each thread on its own keep-alive connection."""
    port = int(base.rsplit(":", 1)[1])
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors: list[str] = []
    ready = threading.Barrier(clients + 1)

    def client(n: int) -> None:
        conn = http.client.HTTPConnection(HOST, port, timeout=60)
        ready.wait()
        for i in range(gets):
            uuid = uuids[(n * 37 + i) % len(uuids)]
            t = time.perf_counter()
            try:
                conn.request("GET", f"/v1/files/{uuid}?replica=aws")
                res = conn.getresponse()
                body = res.read()
            except (OSError, http.client.HTTPException) as e:
                errors.append(f"{uuid}: {e!r}")
                conn.close()
                conn = http.client.HTTPConnection(HOST, port, timeout=60)
                continue
            latencies[n].append(time.perf_counter() - t)
            if res.status != 200 or body != bodies[uuid]:
                errors.append(f"{uuid}: {res.status}, {len(body)} bytes")
        conn.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for th in threads:
        th.start()
    cpu0 = time.process_time()
    ready.wait()
    t0 = time.perf_counter()
    for th in threads:
        th.join()
    seconds = time.perf_counter() - t0
    flat = [t for ts in latencies for t in ts]
    return {"requests": clients * gets, "seconds": seconds, "rps": clients * gets / seconds,
            "errors": len(errors), "first_errors": errors[:5], "client_cpu_s": time.process_time() - cpu0,
            "latency_p50_ms": pct(flat, 50) * 1000, "latency_p99_ms": pct(flat, 99) * 1000}


def listed(url: str) -> list[dict[str, Any]]:
    """Every file of a bundle, following `Link` to the last page."""
    found: list[dict[str, Any]] = []
    next_url: str | None = url
    while next_url:
        res = requests.get(next_url, timeout=60)
        if res.status_code not in (200, 206):
            sys.exit(f"GET {next_url}: {res.status_code} {res.text[:500]}")
        found += res.json()["bundle"]["files"]
        next_url = res.links.get("next", {}).get("url") if res.status_code == 206 else None
    return found


def workers_of(pid: int) -> list[int]:
    """uvicorn's worker processes: the children of `pid` that multiprocessing spawned."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                cmd = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if ppid == pid and b"spawn_main" in cmd:
                found.append(int(entry.name))
    return sorted(found)


def vm_hwm_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/{pid}/status has no VmHWM")


def part_small(work: Path, env: dict[str, str], args: argparse.Namespace) -> dict[str, Any]:
    t0 = time.perf_counter()
    ds, store = work / "small-ds", work / "small-store"
    files = small_files_dataset(ds, args.small, env)
    dsid = publish(store, ds, env, "anything")
    print(f"small setup: {args.small} files in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        dss, dss_base = dss_serve(store, work / "cache-small", WORKERS, env, log=work / "serve-small.log",
                                   procs=procs, threads=args.threads)
        # the bundle also lists the files `datalad create` made (.datalad/config, ...): not ours to GET
        listing = listed(f"{dss_base}/v1/bundles/{dsid}?replica=aws&per_page=500")
        paths = {f["uuid"]: f["name"] for f in listing if f["name"] in files}
        if sorted(paths.values()) != sorted(files):
            sys.exit(f"the bundle lists {len(paths)} files, the dataset has {len(files)}")
        uuids = sorted(paths)
        bodies = {u: files[p] for u, p in paths.items()}
        (work / "bare-files.json").write_text(json.dumps({u: str(ds / p) for u, p in paths.items()}))
        bare_port = free_port()
        bare_base = f"http://{HOST}:{bare_port}"
        procs.append(start([sys.executable, "-m", "uvicorn", "--factory", "serve_load:bare_app", "--app-dir",
                            str(Path(__file__).parent), "--host", HOST, "--port", str(bare_port),
                            "--workers", str(WORKERS), "--no-access-log", "--log-level", "warning"],
                           dict(env, DSS_BENCH_FILES=str(work / "bare-files.json")), work / "bare.log",
                           f"{bare_base}/v1/files/{uuids[0]}"))
        bases = {"dss": dss_base, "bare": bare_base}
        for base in bases.values():  # warm-up: every file once per worker's connection, imports, index
            load(base, uuids, bodies, WORKERS * 2, len(uuids))
        rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in bases}
        for run in range(args.runs):
            for name in (("dss", "bare") if run % 2 == 0 else ("bare", "dss")):
                rounds[name].append(load(bases[name], uuids, bodies, args.clients, args.gets))
                r = rounds[name][-1]
                print(f"small run {run + 1}/{args.runs} {name}: {r['rps']:.0f} req/s, {r['errors']} errors",
                      file=sys.stderr)
        rss = {name: {str(w): vm_hwm_mib(w) for w in workers_of(proc.pid)}
               for name, proc in (("dss", dss), ("bare", procs[-1]))}
    finally:
        for proc in procs:
            stop(proc)
    if len(rss["dss"]) != WORKERS:
        sys.exit(f"found {len(rss['dss'])} dss serve workers, expected {WORKERS}")
    med = {name: statistics.median(r["rps"] for r in rs) for name, rs in rounds.items()}
    errors = sum(r["errors"] for rs in rounds.values() for r in rs)
    ratio = med["dss"] / med["bare"]
    peak = max(rss["dss"].values())
    print(f"== small: {args.clients} clients x {args.gets} GETs of {args.small} files, {WORKERS} workers, "
          f"{args.runs} runs")
    print(f"{'':6}{'req/s':>8}{'min':>8}{'max':>8}{'p50 ms':>8}{'p99 ms':>8}{'errors':>8}{'client CPU s':>14}"
          f"  worker VmHWM MiB")
    for name, rs in rounds.items():
        rps = [r["rps"] for r in rs]
        print(f"{name:6}{med[name]:8.0f}{min(rps):8.0f}{max(rps):8.0f}"
              f"{statistics.median(r['latency_p50_ms'] for r in rs):8.1f}"
              f"{statistics.median(r['latency_p99_ms'] for r in rs):8.1f}{sum(r['errors'] for r in rs):8d}"
              f"{statistics.median(r['client_cpu_s'] for r in rs):14.2f}"
              f"  {', '.join(f'{v:.0f}' for v in rss[name].values())}")
    print(f"dss / bare = {ratio:.2f} (target >= {TARGET_VS_BARE}: "
          f"{'met' if ratio >= TARGET_VS_BARE else 'MISSED'});"
          f" errors {errors} (target 0: {'met' if errors == 0 else 'MISSED'}); peak RSS per dss worker "
          f"{peak:.0f} MiB (target < {TARGET_RSS_MIB:.0f}: {'met' if peak < TARGET_RSS_MIB else 'MISSED'})")
    return {"files": args.small, "clients": args.clients, "gets": args.gets, "workers": WORKERS,
            "threads": args.threads, "runs": args.runs, "rounds": rounds, "median_rps": med,
            "dss_vs_bare": ratio, "errors": errors,
            "worker_vm_hwm_mib": rss, "bytes": sum(len(b) for b in files.values())}


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--part", choices=("pages", "small", "all"), default="all")
    ap.add_argument("--files", type=int, default=10_000, help="files in the paged bundle (default 10,000)")
    ap.add_argument("--small", type=int, default=500, help="small files served under load (default 500)")
    ap.add_argument("--clients", type=int, default=20, help="concurrent clients (default 20)")
    ap.add_argument("--gets", type=int, default=500, help="GETs per client per round (default 500)")
    ap.add_argument("--runs", type=int, default=3, help="cold+warm walks / load rounds (default 3)")
    ap.add_argument("--threads", type=int,
                    help="`dss serve --threads` for the small part (default: dss serve's own)")
    ap.add_argument("--keep", type=Path, help="work in this directory (new or empty) and keep it")
    args = ap.parse_args()
    for tool in ("curl", "git", "git-annex", "datalad", "dss"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not on PATH; run in the project's venv (pip install -e '.[test]')")
    work = args.keep or Path(tempfile.mkdtemp(prefix="dss-bench-serve-load-"))
    work.mkdir(parents=True, exist_ok=True)
    if any(work.iterdir()):
        sys.exit(f"{work} is not empty; give a new or empty directory")
    env = bench_env(work)
    result: dict[str, Any] = {}
    if args.part in ("pages", "all"):
        result["pages"] = part_pages(work, env, args)
    if args.part in ("small", "all"):
        result["small"] = part_small(work, env, args)
    load_avg = os.getloadavg()[0]
    print(f"load average (1 min) at the end: {load_avg:.1f} on {os.cpu_count()} CPUs")
    result.update(load_average_1min=load_avg, versions=versions(),
                  targets={"page_p95_ms": TARGET_P95_MS, "dss_vs_bare": TARGET_VS_BARE,
                           "worker_rss_mib": TARGET_RSS_MIB, "errors": 0})
    out = Path(__file__).parent / "results" / f"serve-load-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"raw numbers: {out}", file=sys.stderr)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
