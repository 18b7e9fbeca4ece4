#!/usr/bin/env python3
"""Serve benchmark: a 1 GiB file over loopback through the API vs `curl file://` and `http.server`.

Issue 17's targets: the API's throughput is >= 0.7x `curl file://` of the same file and >= 1.0x
`python -m http.server` serving it.

One run, same file, same client:

* A store made by `dss init`'s library call holds one dataset with one loose object of `--mib`
  MiB (default 1024) of random bytes, under its MD5E key.
* `api`: uvicorn (one worker, its default HTTP implementation) serving `create_app` with an
  allow-all gate and one route that hands the object's manifest row to `server.content.respond`
  (what `GET /v1/files/{uuid}` does once access is checked). `http.server`: `python -m
  http.server` serving the object's directory. `file`: `curl file://` of the object itself.
* The client is the same `curl` for all three, writing to /dev/null; each timed GET is curl's
  `time_total`, and the byte count curl reports must equal the file's size. One untimed GET of
  each first (the file is then in the page cache for all three: this measures the servers, not
  the disk), then `--runs` rounds (default 5), the order rotating from round to round.

Prints medians (min/max) in MB/s and the two ratios; writes raw numbers to
bench/results/serve-<timestamp>.json. Run in the project's venv:
`python bench/serve.py [--mib M] [--runs R] [--keep DIR]`. Both servers bind 127.0.0.1 and are
stopped (by pid) before the script ends.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# module level: FastAPI resolves the route's annotations (strings here) in this module's globals
from fastapi import Request
from fastapi.responses import Response

HOST = "127.0.0.1"
TARGET_VS_CURL = 0.7
TARGET_VS_HTTP_SERVER = 1.0
DSID = "5e7a0b1c-2d3e-4f50-8a6b-7c8d9e0f1a2b"
WRITE_CHUNK = 8 << 20


# -- the app uvicorn runs (`--factory serve:app`, this file's directory as --app-dir) ----------------
class AllowAll:
    """A Gate that lets everyone read everything: the benchmark measures bytes, not access."""

    def identify(self, authorization: str | None) -> None:
        return None

    def may_read(self, who: object, dataset_id: str) -> bool:
        return True

    def may_write(self, who: object, dataset_id: str) -> bool:
        return True

    def is_admin(self, who: object) -> bool:
        return True

    def audit(self, record: Mapping[str, Any]) -> None:
        pass


def app() -> Any:
    from dss_remote.server.app import create_app
    from dss_remote.server.content import respond

    store = Path(os.environ["DSS_BENCH_STORE"])
    row = json.loads(os.environ["DSS_BENCH_ROW"])
    api = create_app(store, AllowAll())

    @api.api_route("/v1/files/{uuid}", methods=["GET", "HEAD"])
    def file(uuid: str, request: Request, replica: str | None = None) -> Response:
        return respond(request, store, DSID, row, replica, {"X-DSS-SIZE": str(row["size"])})

    # ahead of the app's own /v1/files route, which would look the uuid up in the index
    api.router.routes.insert(0, api.router.routes.pop())
    return api


# -- the benchmark --------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def wait_for(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"server exited {proc.returncode}: {log.read_text(errors='replace')[-2000:]}")
        res = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", url],
                             capture_output=True, text=True, check=False)
        if res.stdout not in ("", "000"):
            return
        time.sleep(0.1)
    sys.exit(f"server did not answer {url} in 30 s: {log.read_text(errors='replace')[-2000:]}")


def start(cmd: list[str], env: dict[str, str], log: Path, probe: str) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                env=env, start_new_session=True)
    try:
        wait_for(probe, proc, log)
    except BaseException:  # not yet the caller's to stop: a server that never answered is ended here
        stop(proc)
        raise
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fetch(url: str, size: int) -> float:
    """Seconds curl took to GET `url` into /dev/null; exits if it got anything but `size` bytes.
    Its CPU time is what RUSAGE_CHILDREN grows by (communicate() reaps it)."""
    proc = subprocess.Popen(["curl", "-s", "-f", "-o", "/dev/null", "-w", "%{size_download} %{time_total}",
                             url], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate()
    got, _, seconds = out.decode().partition(" ")
    if proc.returncode != 0 or int(got or 0) != size:
        sys.exit(f"curl {url}: exit {proc.returncode}, {got} of {size} bytes: {err.decode()[-500:]}")
    return float(seconds)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def make_object(store: Path, mib: int) -> tuple[Path, dict[str, Any]]:
    """A loose object of `mib` MiB of random bytes under its MD5E key; its manifest row."""
    from dss_remote.admin.store import init_store
    from ria_store import store as ria
    from ria_store.keys import parse_key
    from ria_store.layout import object_relpath

    init_store(store)
    dsdir = ria.create_dataset(ria.open_store(store), DSID)
    staging = store.parent / "staging.bin"
    md5 = hashlib.md5()
    with open(staging, "wb") as f:
        for _ in range(mib * (1 << 20) // WRITE_CHUNK):
            chunk = os.urandom(WRITE_CHUNK)
            md5.update(chunk)
            f.write(chunk)
    size = staging.stat().st_size
    key = parse_key(f"MD5E-s{size}--{md5.hexdigest()}.bin")
    target = dsdir / object_relpath(key, ria.open_dataset(ria.open_store(store), DSID).version)
    target.parent.mkdir(parents=True)
    staging.rename(target)
    return target, {"path": "big.bin", "type": "annex", "key": key.text, "size": size,
                    "checksums": {"md5": md5.hexdigest()}, "content_type": "application/octet-stream"}


def versions() -> dict[str, str]:
    import fastapi
    import starlette
    import uvicorn

    curl = subprocess.run(["curl", "--version"], capture_output=True, text=True, check=False).stdout
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False,
                            cwd=Path(__file__).parent).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True, check=False,
                           cwd=Path(__file__).parent).stdout.split("\n")
    return {"python": platform.python_version(), "uvicorn": uvicorn.__version__,
            "fastapi": fastapi.__version__, "starlette": starlette.__version__,
            "curl": curl.split("\n")[0], "commit": commit,
            "uncommitted": ", ".join(line[3:] for line in dirty if line), "cpus": str(os.cpu_count())}


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--mib", type=int, default=1024, help="size of the file, MiB (default 1024)")
    ap.add_argument("--runs", type=int, default=5, help="timed rounds (default 5)")
    ap.add_argument("--keep", type=Path, help="work in this directory and keep it")
    args = ap.parse_args()
    if shutil.which("curl") is None:
        sys.exit("curl is not on PATH; install it (apt-get install curl)")
    work = args.keep or Path(tempfile.mkdtemp(prefix="dss-bench-serve-"))
    work.mkdir(parents=True, exist_ok=True)
    if shutil.disk_usage(work).free < (args.mib + 256) << 20:
        sys.exit(f"{work}: less than {args.mib + 256} MiB free")
    t0 = time.perf_counter()
    path, row = make_object(work / "store", args.mib)
    size = row["size"]
    print(f"setup: {size} bytes in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    env = dict(os.environ, DSS_BENCH_STORE=str(work / "store"), DSS_BENCH_ROW=json.dumps(row))
    api_port, http_port = free_port(), free_port()
    urls = {"api": f"http://{HOST}:{api_port}/v1/files/{DSID}",
            "http.server": f"http://{HOST}:{http_port}/{path.name}", "file": f"file://{path}"}
    procs = []
    try:
        procs.append(start([sys.executable, "-m", "uvicorn", "--factory", "serve:app", "--app-dir",
                            str(Path(__file__).parent), "--host", HOST, "--port", str(api_port),
                            "--no-access-log", "--log-level", "warning"],
                           env, work / "uvicorn.log", f"http://{HOST}:{api_port}/internal/health"))
        procs.append(start([sys.executable, "-m", "http.server", str(http_port), "--bind", HOST,
                            "--directory", str(path.parent)],
                           env, work / "http-server.log", f"http://{HOST}:{http_port}/"))
        servers = {"api": procs[0].pid, "http.server": procs[1].pid}
        for url in urls.values():  # warm-up: page cache, imports, first-request paths
            fetch(url, size)
        times: dict[str, list[float]] = {name: [] for name in urls}
        server_cpu: dict[str, list[float]] = {name: [] for name in servers}
        client_cpu: dict[str, list[float]] = {name: [] for name in urls}
        names = list(urls)
        for run in range(args.runs):
            for name in names[run % 3:] + names[:run % 3]:
                before = cpu_seconds(servers[name]) if name in servers else 0.0
                before_client = children_cpu()
                times[name].append(fetch(urls[name], size))
                client_cpu[name].append(children_cpu() - before_client)
                if name in servers:
                    server_cpu[name].append(cpu_seconds(servers[name]) - before)
    finally:
        for proc in procs:
            stop(proc)
    mbps = {name: [size / t / 1e6 for t in ts] for name, ts in times.items()}
    med = {name: statistics.median(v) for name, v in mbps.items()}
    gib = size / (1 << 30)
    cpu_per_gib = {name: statistics.median(v) / gib for name, v in server_cpu.items()}
    client_per_gib = {name: statistics.median(v) / gib for name, v in client_cpu.items()}
    print(f"{'':14}{'median MB/s':>12}{'min':>9}{'max':>9}{'server CPU s/GiB':>18}{'curl CPU s/GiB':>16}")
    for name, v in mbps.items():
        server = f"{cpu_per_gib[name]:18.2f}" if name in cpu_per_gib else f"{'-':>18}"
        print(f"{name:14}{med[name]:12.0f}{min(v):9.0f}{max(v):9.0f}{server}{client_per_gib[name]:16.2f}")
    load = os.getloadavg()[0]
    print(f"load average (1 min) at the end: {load:.1f} on {os.cpu_count()} CPUs")
    vs_curl, vs_http = med["api"] / med["file"], med["api"] / med["http.server"]
    print(f"api / curl file:// = {vs_curl:.2f} (target >= {TARGET_VS_CURL}: "
          f"{'met' if vs_curl >= TARGET_VS_CURL else 'MISSED'}); api / http.server = {vs_http:.2f} "
          f"(target >= {TARGET_VS_HTTP_SERVER}: {'met' if vs_http >= TARGET_VS_HTTP_SERVER else 'MISSED'})")
    out = Path(__file__).parent / "results" / f"serve-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"bytes": size, "runs": args.runs, "seconds": times, "mb_per_s": mbps,
                               "median_mb_per_s": med, "api_vs_curl_file": vs_curl,
                               "api_vs_http_server": vs_http, "server_cpu_s": server_cpu,
                               "curl_cpu_s": client_cpu, "server_cpu_s_per_gib": cpu_per_gib,
                               "curl_cpu_s_per_gib": client_per_gib, "load_average_1min": load,
                               "targets": {
                                   "api_vs_curl_file": TARGET_VS_CURL,
                                   "api_vs_http_server": TARGET_VS_HTTP_SERVER},
                               "versions": versions()}, indent=1))
    print(f"raw numbers: {out}", file=sys.stderr)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
