#!/usr/bin/env python3
"""Write API benchmark (issue 19): a 1 GiB direct upload, a PUT of a 10,000-file bundle, and a
checkout of 1,000 small files to a moto bucket, each against a baseline measured in the same run.

Issue 19's targets:

* upload: PUT of a 1 GiB file through the direct upload takes at most 1/0.8 the time of `git annex
  copy --to` of the same file to the same store (ratio = baseline / ours >= 0.8);
* bundle: PUT /v1/bundles of 10,000 deposited files answers (a version `datalad clone` can clone)
  in < 30 s;
* checkout: a bundle of 1,000 small files checked out to a bucket goes at >= 0.8x the throughput of
  a plain boto3 copy of the same files (what `aws s3 cp --recursive` does).

Setup (every part): a store made by `dss init`, `dss acl default STORE --admin admins --create
producers`, a token from `dss token create STORE --user bench --group producers --group admins`,
and the real `dss serve STORE` (uvicorn, one worker) on a free 127.0.0.1 port, all in a temp
directory with a throwaway HOME and git identity.

`--part upload`: `--mib` (1024) MiB of random bytes; per run the last byte changes (a new key each
run), then, in an order alternating from run to run:
  * `api`: tus `POST /v1/uploads` + one `PATCH` streaming the file object (http.client, 1 MiB
    blocks; never read whole) + `PUT /v1/files/{uuid}?version=` naming the upload's URL (the server
    hashes the bytes for the four DSS checksums, fsyncs and renames them into the file pool); the
    three requests are timed together and apart;
  * `git annex copy`: in a DataLad dataset (SHA256E) with `dss create-sibling` to the same store,
    the same bytes `git annex add`ed (untimed), then the timed `git annex copy --to store-storage`.
  `sync` (untimed) before each timed step; the key is dropped from the store and the pool object
  removed after each run (untimed). Also timed once: the hash pass alone (`file_pool.digest_file`
  of the same file in this process), the part of the PUT that the `git annex copy` path overlaps
  with its copy on a second thread.
`--part bundle`: `--files` (10,000) files of 1-4 KiB deposited in the file pool: the first
  `--http-deposits` (200) through the HTTP route (tus POST + PATCH + PUT /v1/files, 8 client
  threads; their rate is recorded), the rest through `service.file_pool.deposit` in this process
  (4 threads; the HTTP route at the measured rate would take minutes). Per run a new bundle uuid:
  the timed `PUT /v1/bundles/{uuid}` of all the files (request to response), then the timed
  `datalad clone ria+file://STORE#UUID`, and (untimed checks) `git annex whereis` and `datalad get`
  of 3 files compared with their bytes. Then one more write of the same files under cProfile in
  this process (the route's per-file `file_pool.lookup` + `bundle_commit.write_version`): the top
  entries go to the results.
`--part checkout`: moto_server on a free 127.0.0.1 port; `--checkout-files` (1,000) files of 1-4
  KiB deposited and PUT as a bundle (untimed). Per run, alternating: `service.checkout.checkout` of
  the version to `s3://BUCKET/co-N` (a fresh prefix: every file is copied), and `boto3`
  `upload_file` of the same files (the store's loose objects; the 3 git files of the dataset
  extracted beforehand) to `s3://BUCKET/base-N/...` from a thread pool as wide as the checkout's,
  with a client as the checkout's (path style, 64 connections); and, as a third variant, the
  checkout as it was before it listed the destination (a HEAD per object: `HeadPerFile`). The
  order rotates from run to run; CPU seconds of this process and of moto_server are recorded for
  each. Then one untimed checkout to an existing prefix (what a
  repeated checkout costs: the listing and a HEAD per object).

Raw numbers to bench/results/write-api-<UTC time>.json; medians and ratios are computed from them.
Run in the project's venv: `python bench/write_api.py [--part upload|bundle|checkout|all] [--runs R]
[--quick] [--keep DIR]`. Every process it starts (dss serve, moto_server, git, datalad) has ended
when it returns, also on failure.
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import http.client
import io
import json
import os
import platform
import pstats
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid as uuidlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
TARGETS = {"upload_ratio": 0.8, "bundle_put_seconds": 30.0, "checkout_ratio": 0.8}
USER, GROUPS = "bench", ("producers", "admins")
TUS = {"Tus-Resumable": "1.0.0"}
WRITE_CHUNK = 8 << 20


class BenchError(Exception):
    pass


def progress(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run(cmd: Sequence[str | Path], cwd: Path | None, env: dict[str, str]) -> str:
    res = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                         capture_output=True, check=False)
    if res.returncode != 0:
        raise BenchError(f"`{' '.join(map(str, cmd))}` exited {res.returncode}: "
                         f"{res.stderr.decode(errors='replace')[-2000:]}")
    return res.stdout.decode()


def timed(cmd: Sequence[str | Path], cwd: Path | None, env: dict[str, str]) -> float:
    t = time.perf_counter()
    run(cmd, cwd, env)
    return time.perf_counter() - t


def med(xs: Sequence[float]) -> float:
    return statistics.median(xs)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time process `pid` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def make_env(work: Path) -> dict[str, str]:
    """Throwaway HOME with a git identity, this venv first on PATH; also this process's own
    environment from now on (the library calls below run git too)."""
    home = work / "home"
    home.mkdir()
    (home / ".gitconfig").write_text("[user]\n\tname = dss bench\n\temail = dss-bench@example.invalid\n"
                                     "[init]\n\tdefaultBranch = main\n[advice]\n\tdetachedHead = false\n")
    env = {k: v for k, v in os.environ.items()
           if k not in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE") and not k.startswith("DATALAD_")}
    env.update(HOME=str(home), GIT_CONFIG_NOSYSTEM="1",
               PATH=os.pathsep.join([str(BIN), env.get("PATH", "")]))
    for prog in ("git", "git-annex", "datalad", "dss", "git-annex-remote-dss", "moto_server"):
        if shutil.which(prog, path=env["PATH"]) is None:
            raise BenchError(f"{prog} is not on PATH: run this with the project's venv python "
                             "(pip install -e '.[test]')")
    os.environ.clear()
    os.environ.update(env)
    return env


# -- the server ---------------------------------------------------------------------------------
class Served:
    """`dss serve STORE` in its own process group on a free 127.0.0.1 port, until stop()."""

    def __init__(self, store: Path, work: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.log = work / "serve.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(["dss", "serve", str(store), "--host", HOST,
                                          "--port", str(self.port), "--cache-dir", str(work / "serve-cache")],
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                         env=env, start_new_session=True)
        try:
            deadline = time.monotonic() + 30
            while True:
                if self.proc.poll() is not None:
                    raise BenchError(f"dss serve exited {self.proc.returncode}: {self.output()}")
                try:
                    requests.get(f"{self.url}/internal/health", timeout=2)
                    return
                except requests.ConnectionError:
                    if time.monotonic() > deadline:
                        raise BenchError(f"dss serve did not answer in 30 s: {self.output()}") from None
                    time.sleep(0.1)
        except BaseException:
            self.stop()
            raise

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-2000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def make_store(work: Path, env: dict[str, str]) -> tuple[Path, str]:
    """A `dss init` store whose ACL lets the bench token create datasets; (store, token)."""
    store = work / "store"
    run(["dss", "init", store], None, env)
    run(["dss", "acl", "default", store, "--admin", "admins", "--create", "producers"], None, env)
    groups = [a for g in GROUPS for a in ("--group", g)]
    token = run(["dss", "token", "create", store, "--user", USER, *groups, "--expires", "1d"], None,
                env).strip()
    return store, token


def new_version() -> str:
    from dss_remote.history import bundles, times

    return bundles.format_version(times.now())


# -- the write API as a client uses it -------------------------------------------------------------
class Client:
    def __init__(self, url: str, token: str) -> None:
        self.url, self.auth = url, {"Authorization": f"Bearer {token}"}
        self.local = threading.local()

    def session(self) -> requests.Session:
        s: requests.Session | None = getattr(self.local, "s", None)
        if s is None:
            s = self.local.s = requests.Session()
        return s

    def create_upload(self, length: int, filename: str) -> str:
        meta = f"filename {base64.b64encode(filename.encode()).decode()}"
        res = self.session().post(f"{self.url}/v1/uploads", timeout=60, headers=self.auth | TUS | {
            "Upload-Length": str(length), "Upload-Metadata": meta})
        if res.status_code != 201:
            raise BenchError(f"POST /v1/uploads: {res.status_code} {res.text[:500]}")
        return str(res.headers["Location"])

    def patch_file(self, location: str, path: Path) -> None:
        """One PATCH streaming the file object (1 MiB blocks), never read whole into memory."""
        parts = urlsplit(location)
        size = path.stat().st_size
        conn = http.client.HTTPConnection(parts.hostname or HOST, parts.port, timeout=600,
                                          blocksize=1 << 20)
        try:
            with open(path, "rb") as f:
                conn.request("PATCH", parts.path, body=f, headers=self.auth | TUS | {
                    "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0",
                    "Content-Length": str(size)})
                res = conn.getresponse()
                body = res.read()
        finally:
            conn.close()
        if res.status != 204 or res.getheader("Upload-Offset") != str(size):
            raise BenchError(f"PATCH {location}: {res.status} {body[:500]!r}")

    def patch_bytes(self, location: str, data: bytes) -> None:
        res = self.session().patch(location, data=data, timeout=60, headers=self.auth | TUS | {
            "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"})
        if res.status_code != 204:
            raise BenchError(f"PATCH {location}: {res.status_code} {res.text[:500]}")

    def put_file(self, fuuid: str, fversion: str, source: str) -> None:
        res = self.session().put(f"{self.url}/v1/files/{fuuid}?version={fversion}", headers=self.auth,
                                 json={"creator_uid": 0, "source_url": source}, timeout=600)
        if res.status_code != 201:
            raise BenchError(f"PUT /v1/files/{fuuid}: {res.status_code} {res.text[:500]}")

    def put_bundle(self, buuid: str, bversion: str, body: bytes) -> None:
        res = self.session().put(f"{self.url}/v1/bundles/{buuid}?version={bversion}&replica=aws",
                                 data=body, timeout=1800,
                                 headers=self.auth | {"Content-Type": "application/json"})
        if res.status_code != 201:
            raise BenchError(f"PUT /v1/bundles/{buuid}: {res.status_code} {res.text[:500]}")


# -- upload -------------------------------------------------------------------------------------
def random_file(path: Path, mib: int) -> None:
    with open(path, "wb") as f:
        for _ in range(max(1, mib * (1 << 20) // WRITE_CHUNK)):
            f.write(os.urandom(min(WRITE_CHUNK, mib << 20)))


def upload_part(work: Path, env: dict[str, str], store: Path, client: Client, server: Served, *,
                mib: int, runs: int) -> dict[str, Any]:
    from dss_remote.service import file_pool

    src = work / "big.bin"
    progress(f"upload: {mib} MiB of random bytes")
    random_file(src, mib)
    size = src.stat().st_size
    ds = work / "ds-upload"
    run(["datalad", "-l", "error", "create", ds], None, env)
    attrs = ds / ".gitattributes"
    attrs.write_text(attrs.read_text().replace("annex.backend=MD5E", "annex.backend=SHA256E"))
    run(["datalad", "-l", "error", "save", "-m", "sha256 keys"], ds, env)
    run(["dss", "create-sibling", "-d", ds, "--name", "store", f"ria+file://{store}"], None, env)
    run(["datalad", "-l", "error", "push", "--to", "store"], ds, env)

    t0 = time.perf_counter()
    file_pool.digest_file(src)
    hash_pass = time.perf_counter() - t0
    progress(f"upload: the hash pass alone (four DSS checksums, in this process): {hash_pass:.2f} s")

    times: dict[str, list[float]] = {"api": [], "git annex copy": []}
    phases: dict[str, list[float]] = {"post": [], "patch": [], "put": []}
    server_cpu: dict[str, list[float]] = {"patch": [], "put": []}
    for i in range(runs):
        with open(src, "r+b") as f:  # a new key each run: the last byte is the run's number
            f.seek(size - 1)
            f.write(bytes([i % 256]))
        order = ["api", "git annex copy"] if i % 2 == 0 else ["git annex copy", "api"]
        for what in order:
            if what == "api":
                subprocess.run(["sync"], check=True)
                fuuid, fversion = str(uuidlib.uuid4()), new_version()
                t = time.perf_counter()
                location = client.create_upload(size, "big.bin")
                t_post = time.perf_counter()
                c0 = cpu_seconds(server.proc.pid)
                client.patch_file(location, src)
                t_patch = time.perf_counter()
                c1 = cpu_seconds(server.proc.pid)
                client.put_file(fuuid, fversion, location)
                t_put = time.perf_counter()
                c2 = cpu_seconds(server.proc.pid)
                times["api"].append(t_put - t)
                phases["post"].append(t_post - t)
                phases["patch"].append(t_patch - t_post)
                phases["put"].append(t_put - t_patch)
                server_cpu["patch"].append(c1 - c0)
                server_cpu["put"].append(c2 - c1)
                record = file_pool.lookup(store, fuuid, fversion)
                if record is None or record.size != size:
                    raise BenchError(f"upload: no pool record of {fuuid} after the PUT")
                file_pool.object_path(store, record.key).unlink()  # untimed: disk space
                progress(f"upload: run {i + 1}/{runs} api {times['api'][-1]:.2f} s (POST "
                         f"{phases['post'][-1]:.2f}, PATCH {phases['patch'][-1]:.2f}, PUT "
                         f"{phases['put'][-1]:.2f})")
            else:
                target = ds / "big.bin"
                if target.is_symlink() or target.exists():
                    target.unlink()
                shutil.copyfile(src, target)
                run(["git", "annex", "add", "--quiet", "big.bin"], ds, env)
                subprocess.run(["sync"], check=True)
                t = timed(["git", "annex", "copy", "--quiet", "--to", "store-storage", "big.bin"], ds, env)
                times["git annex copy"].append(t)
                where = run(["git", "annex", "whereis", "big.bin"], ds, env)
                if "store-storage" not in where:
                    raise BenchError(f"upload: git annex copy left big.bin off the store: {where}")
                run(["git", "annex", "drop", "--quiet", "--force", "--from", "store-storage", "big.bin"],
                    ds, env)
                run(["git", "annex", "drop", "--quiet", "--force", "big.bin"], ds, env)
                progress(f"upload: run {i + 1}/{runs} git annex copy {t:.2f} s")
    src.unlink()
    ratio = med(times["git annex copy"]) / med(times["api"])
    return {"bytes": size, "runs": runs, "seconds": times, "api_phase_seconds": phases,
            "server_cpu_seconds": server_cpu, "hash_pass_seconds": hash_pass,
            "median_seconds": {k: med(v) for k, v in times.items()},
            "median_api_phase_seconds": {k: med(v) for k, v in phases.items()},
            "ratio_baseline_over_api": ratio}


# -- depositing many small files ----------------------------------------------------------------
def small_bytes(i: int, salt: bytes) -> bytes:
    size = 1024 + (i * 37) % 3072
    return (f"{i:08d}".encode() + salt + os.urandom(size))[:size]


def deposit_many(store: Path, client: Client, n: int, *, http_first: int, salt: bytes,
                 prefix: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """`n` small files in the pool; their bundle entries, and how fast each route went."""
    from dss_remote.service import file_pool

    names = [f"{prefix}{i % 100:02d}/f{i:05d}.dat" for i in range(n)]
    entries: list[dict[str, Any]] = [{"name": name, "uuid": str(uuidlib.uuid4()), "version": new_version(),
                                      "indexed": False} for name in names]
    n_http = min(http_first, n)

    def over_http(i: int) -> None:
        e = entries[i]
        data = small_bytes(i, salt)
        location = client.create_upload(len(data), e["name"].rsplit("/", 1)[-1])
        client.patch_bytes(location, data)
        client.put_file(e["uuid"], e["version"], location)

    t = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(over_http, range(n_http)))
    http_seconds = time.perf_counter() - t
    owner = None
    if n_http:
        first = file_pool.lookup(store, entries[0]["uuid"], entries[0]["version"])
        owner = first.owner if first is not None else None
    owner = owner or USER

    def library(i: int) -> None:
        e = entries[i]
        fd, staged = file_pool.staging_file(store, "bench")
        with os.fdopen(fd, "wb") as f:
            f.write(small_bytes(i, salt))
        file_pool.deposit(store, staged, uuid=e["uuid"], version=e["version"], name=e["name"], declared={},
                          content_type="application/octet-stream", creator_uid=0, owner=owner,
                          source="bench/write_api.py", need_sha256=False)

    t = time.perf_counter()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(library, range(n_http, n)))
    lib_seconds = time.perf_counter() - t
    stats = {"http_files": n_http, "http_seconds": http_seconds,
             "http_files_per_s": n_http / http_seconds if n_http else None,
             "library_files": n - n_http, "library_seconds": lib_seconds,
             "library_files_per_s": (n - n_http) / lib_seconds if n > n_http else None}
    return entries, stats


# -- bundle -------------------------------------------------------------------------------------
def profile_write(store: Path, entries: list[dict[str, Any]], owner: str) -> dict[str, Any]:
    """What PUT /v1/bundles does past the request's parsing (each file's pool record looked up,
    then `write_version` with the route's `source`), under cProfile; its top entries."""
    from dss_remote.service import bundle_commit, file_pool
    from dss_remote.service.bundle_commit import BundleFile

    def source(f: BundleFile) -> Path:
        record = file_pool.lookup(store, f.file_uuid, f.file_version)
        assert record is not None and record.key == f.key
        return file_pool.verified_object(store, record)

    def write() -> None:
        files = []
        for e in entries:
            rec = file_pool.lookup(store, e["uuid"], e["version"])
            assert rec is not None and rec.owner == owner
            files.append(BundleFile(e["name"], rec.key, rec.size, e["uuid"], e["version"], rec.content_type))
        bundle_commit.write_version(store, str(uuidlib.uuid4()), files, new_version(), source=source,
                                    creator_uid=0, writer=owner)

    prof = cProfile.Profile()
    t = time.perf_counter()
    prof.runcall(write)
    seconds = time.perf_counter() - t
    stats = pstats.Stats(prof)
    rows = []
    for func, (cc, nc, tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        file, line, name = func
        rows.append({"function": f"{Path(file).name}:{line}({name})" if line else name, "calls": nc,
                     "primitive_calls": cc, "tottime": tt, "cumtime": ct})
    by_cum = sorted(rows, key=lambda r: r["cumtime"], reverse=True)[:30]
    by_tot = sorted(rows, key=lambda r: r["tottime"], reverse=True)[:20]
    text = io.StringIO()
    pstats.Stats(prof, stream=text).sort_stats("cumulative").print_stats(25)
    progress("bundle: profile, top by cumulative time:\n" + "\n".join(text.getvalue().splitlines()[:45]))
    return {"seconds_under_cprofile": seconds, "top_cumulative": by_cum, "top_tottime": by_tot}


def bundle_part(work: Path, env: dict[str, str], store: Path, client: Client, *, n_files: int,
                http_deposits: int, runs: int) -> dict[str, Any]:
    from dss_remote.service import file_pool

    progress(f"bundle: depositing {n_files} files ({http_deposits} over HTTP, the rest by the library)")
    entries, deposit_stats = deposit_many(store, client, n_files, http_first=http_deposits,
                                          salt=os.urandom(8), prefix="d")
    progress(f"bundle: deposits: HTTP {deposit_stats['http_files_per_s'] or 0:.0f} files/s, library "
             f"{deposit_stats['library_files_per_s'] or 0:.0f} files/s")
    body = json.dumps({"creator_uid": 0, "files": entries}).encode()
    put_s: list[float] = []
    clone_s: list[float] = []
    checks: list[dict[str, Any]] = []
    for i in range(runs):
        buuid, bversion = str(uuidlib.uuid4()), new_version()
        subprocess.run(["sync"], check=True)
        t = time.perf_counter()
        client.put_bundle(buuid, bversion, body)
        put_s.append(time.perf_counter() - t)
        clone = work / f"clone-{i}"
        t = time.perf_counter()
        run(["datalad", "-l", "error", "clone", f"ria+file://{store}#{buuid}", clone], None, env)
        clone_s.append(time.perf_counter() - t)
        picks = [entries[0], entries[len(entries) // 2], entries[-1]]
        where = run(["git", "annex", "whereis", *[e["name"] for e in picks]], clone, env)
        if where.count("dss-storage") < len(picks):
            raise BenchError(f"bundle: whereis does not name the store for every file: {where[-1000:]}")
        run(["datalad", "-l", "error", "get", *[e["name"] for e in picks]], clone, env)
        for e in picks:
            rec = file_pool.lookup(store, e["uuid"], e["version"])
            assert rec is not None
            if (clone / e["name"]).read_bytes() != file_pool.object_path(store, rec.key).read_bytes():
                raise BenchError(f"bundle: {e['name']} in the clone is not the deposited bytes")
        tracked = len(run(["git", "ls-files"], clone, env).splitlines())
        checks.append({"tracked_files": tracked, "got": len(picks)})
        shutil.rmtree(clone, ignore_errors=True)
        progress(f"bundle: run {i + 1}/{runs} PUT {put_s[-1]:.2f} s, clone {clone_s[-1]:.2f} s "
                 f"({tracked} files tracked)")
    first = file_pool.lookup(store, entries[0]["uuid"], entries[0]["version"])
    owner = (first.owner if first is not None else None) or USER
    progress("bundle: one more write of the same files under cProfile, in this process")
    profile = profile_write(store, entries, owner)
    return {"files": n_files, "runs": runs, "deposits": deposit_stats, "request_bytes": len(body),
            "put_seconds": put_s, "clone_seconds": clone_s, "checks": checks,
            "median_put_seconds": med(put_s), "median_clone_seconds": med(clone_s), "profile": profile}


# -- checkout -----------------------------------------------------------------------------------
def checkout_part(work: Path, env: dict[str, str], store: Path, client: Client, *, n_files: int,
                  runs: int) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "tests"))
    from cloud_servers import LoopbackServer

    from dss_remote.history import bundle_store
    from dss_remote.service import checkout as co
    from dss_remote.service.checkout_dest import S3Destination
    from ria_store.layout import dataset_relpath, object_relpath

    progress(f"checkout: a bundle of {n_files} files")
    entries, _stats = deposit_many(store, client, n_files, http_first=0, salt=os.urandom(8), prefix="c")
    buuid, bversion = str(uuidlib.uuid4()), new_version()
    client.put_bundle(buuid, bversion, json.dumps({"creator_uid": 0, "files": entries}).encode())
    rows = co.bundle_rows(store, buuid, bversion)
    base = store / dataset_relpath(buuid)
    tree_version = (base / "ria-layout-version").read_text().split("|")[0].strip()
    git_files = work / "git-files"
    sources: list[tuple[Path, str]] = []
    for row in rows:  # what `aws s3 cp --recursive` of the bundle's files would read
        if row["type"] == "annex":
            sources.append((base / object_relpath(row["key"], tree_version), str(row["path"])))
        else:
            out = git_files / str(row["path"])
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(subprocess.run(["git", "--git-dir", str(base), "cat-file", "blob",
                                            str(row["git_blob"])], check=True, capture_output=True).stdout)
            sources.append((out, str(row["path"])))
    bundle_store.versions(store, buuid)  # the version is recorded
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                      AWS_DEFAULT_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true",
                      NO_PROXY=f"{HOST},localhost", no_proxy=f"{HOST},localhost")
    (work / "moto").mkdir()
    s3srv = LoopbackServer("moto_server", lambda port: ["-H", HOST, "-p", str(port)], work / "moto",
                           probe="/moto-api/")
    try:
        s3srv.start()
        os.environ["AWS_ENDPOINT_URL_S3"] = s3srv.endpoint
        import boto3
        from botocore.config import Config

        s3 = boto3.session.Session().client("s3", config=Config(
            s3={"addressing_style": "path"}, max_pool_connections=64,
            retries={"max_attempts": 5, "mode": "standard"}))
        bucket = "dss-bench-checkout"
        s3.create_bucket(Bucket=bucket)

        def plain(prefix: str) -> None:
            with ThreadPoolExecutor(co.THREADS) as pool:
                list(pool.map(lambda sp: s3.upload_file(str(sp[0]), bucket, f"{prefix}/{sp[1]}"), sources))

        class HeadPerFile(S3Destination):
            """The checkout as it was before the listing: a HEAD per destination object."""

            def sizes_below(self, prefix: str) -> dict[str, int] | None:
                return None

        variants = ["checkout", "boto3", "checkout, HEAD per file"]
        times: dict[str, list[float]] = {v: [] for v in variants}
        cpu: dict[str, list[float]] = {v: [] for v in variants}
        moto_cpu: dict[str, list[float]] = {v: [] for v in variants}
        for i in range(runs):
            for what in variants[i % 3:] + variants[:i % 3]:
                c0, m0 = own_cpu(), cpu_seconds(s3srv.pid)
                t = time.perf_counter()
                if what != "boto3":
                    kind = S3Destination if what == "checkout" else HeadPerFile
                    prefix = "co" if what == "checkout" else "head"
                    counts = co.checkout(store, buuid, bversion,
                                         kind(f"s3://{bucket}/{prefix}-{i}", bucket, f"{prefix}-{i}"))
                    if counts.copied != len(rows):
                        raise BenchError(f"checkout copied {counts.copied} of {len(rows)} files")
                else:
                    plain(f"base-{i}")
                times[what].append(time.perf_counter() - t)
                cpu[what].append(own_cpu() - c0)
                moto_cpu[what].append(cpu_seconds(s3srv.pid) - m0)
                progress(f"checkout: run {i + 1}/{runs} {what} {times[what][-1]:.2f} s")
        listed = sum(page.get("KeyCount", 0) for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=f"co-0/bundles/{buuid}.{bversion}/"))
        if listed != len(rows):
            raise BenchError(f"checkout: {listed} objects in the bucket, not {len(rows)}")
        t = time.perf_counter()
        again = co.checkout(store, buuid, bversion, S3Destination(f"s3://{bucket}/co-0", bucket, "co-0"))
        again_s = time.perf_counter() - t
        if (again.copied, again.present) != (0, len(rows)):
            raise BenchError(f"checkout again: {again}")
        progress(f"checkout: again to the same prefix: {again_s:.2f} s, {again.present} already there")
    finally:
        s3srv.stop()
    ratio = med(times["boto3"]) / med(times["checkout"])
    ratio_head = med(times["boto3"]) / med(times["checkout, HEAD per file"])
    return {"files": len(rows), "annexed": n_files, "bytes": sum(int(r.get("size") or 0) for r in rows),
            "runs": runs, "threads": co.THREADS, "seconds": times, "client_cpu_seconds": cpu,
            "moto_cpu_seconds": moto_cpu, "median_seconds": {k: med(v) for k, v in times.items()},
            "ratio_boto3_over_checkout": ratio, "ratio_boto3_over_checkout_head_per_file": ratio_head,
            "again_seconds": again_s}


# -- main ---------------------------------------------------------------------------------------
def versions() -> dict[str, str]:
    def out(cmd: list[str]) -> str:
        res = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=ROOT)
        return res.stdout

    dirty = out(["git", "status", "--porcelain"]).split("\n")  # `XY path`: X may be a space
    return {"python": platform.python_version(),
            "git-annex": out(["git", "annex", "version", "--raw"]).strip(),
            "datalad": out(["datalad", "--version"]).strip(),
            "commit": out(["git", "rev-parse", "HEAD"]).strip(),
            "uncommitted": ", ".join(line[3:] for line in dirty if line), "cpus": str(os.cpu_count()),
            "machine": platform.machine()}


def verdicts(results: dict[str, Any]) -> list[str]:
    lines = []
    if "upload" in results:
        r = results["upload"]
        ok = r["ratio_baseline_over_api"] >= TARGETS["upload_ratio"]
        lines.append(f"upload: git annex copy {r['median_seconds']['git annex copy']:.2f} s / api "
                     f"{r['median_seconds']['api']:.2f} s = {r['ratio_baseline_over_api']:.2f} (target >= "
                     f"{TARGETS['upload_ratio']}: {'met' if ok else 'MISSED'})")
    if "bundle" in results:
        r = results["bundle"]
        ok = r["median_put_seconds"] < TARGETS["bundle_put_seconds"]
        lines.append(f"bundle: PUT of {r['files']} files {r['median_put_seconds']:.2f} s (target < "
                     f"{TARGETS['bundle_put_seconds']:.0f} s: {'met' if ok else 'MISSED'}); clone "
                     f"{r['median_clone_seconds']:.2f} s")
    if "checkout" in results:
        r = results["checkout"]
        ok = r["ratio_boto3_over_checkout"] >= TARGETS["checkout_ratio"]
        lines.append(f"checkout: boto3 {r['median_seconds']['boto3']:.2f} s / checkout "
                     f"{r['median_seconds']['checkout']:.2f} s = {r['ratio_boto3_over_checkout']:.2f} "
                     f"(target >= {TARGETS['checkout_ratio']}: {'met' if ok else 'MISSED'}); with a HEAD per "
                     f"file, as before: {r['ratio_boto3_over_checkout_head_per_file']:.2f}")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--part", choices=("upload", "bundle", "checkout", "all"), default="all")
    ap.add_argument("--runs", type=int, help="timed runs of each measurement (default 3; 1 with --quick)")
    ap.add_argument("--quick", action="store_true",
                    help="a smoke run: 64 MiB, 500-file bundle, 100-file checkout, 1 run")
    ap.add_argument("--mib", type=int, help="upload size, MiB (default 1024)")
    ap.add_argument("--files", type=int, help="files of the bundle (default 10000)")
    ap.add_argument("--http-deposits", type=int, default=200, help="of those, deposited over HTTP (200)")
    ap.add_argument("--checkout-files", type=int, help="files of the checkout's bundle (default 1000)")
    ap.add_argument("--keep", type=Path, help="work in this directory (new or empty) and keep it")
    args = ap.parse_args()
    runs = args.runs or (1 if args.quick else 3)
    mib = args.mib or (64 if args.quick else 1024)
    n_files = args.files or (500 if args.quick else 10_000)
    n_checkout = args.checkout_files or (100 if args.quick else 1000)
    parts = ["upload", "bundle", "checkout"] if args.part == "all" else [args.part]
    if args.keep is not None and args.keep.exists() and any(args.keep.iterdir()):
        print(f"--keep {args.keep}: not empty", file=sys.stderr)
        return 2
    work = (args.keep or Path(tempfile.mkdtemp(prefix="dss-bench-write-"))).absolute()
    work.mkdir(parents=True, exist_ok=True)
    if "upload" in parts and shutil.disk_usage(work).free < 4 * (mib << 20) + (1 << 30):
        print(f"{work}: less than {4 * mib + 1024} MiB free", file=sys.stderr)
        return 1
    results: dict[str, Any] = {"targets": TARGETS, "load_average_1min_start": os.getloadavg()[0]}
    started = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    code = 0
    server: Served | None = None
    try:
        env = make_env(work)
        store, token = make_store(work, env)
        server = Served(store, work, env)
        client = Client(server.url, token)
        steps: dict[str, Callable[[], dict[str, Any]]] = {
            "upload": lambda: upload_part(work, env, store, client, server, mib=mib, runs=runs),
            "bundle": lambda: bundle_part(work, env, store, client, n_files=n_files,
                                          http_deposits=args.http_deposits, runs=runs),
            "checkout": lambda: checkout_part(work, env, store, client, n_files=n_checkout, runs=runs),
        }
        for part in parts:
            t = time.perf_counter()
            results[part] = steps[part]()
            results[part]["part_wall_seconds"] = time.perf_counter() - t
            results[part]["load_average_1min_end"] = os.getloadavg()[0]
    except BenchError as e:
        print(f"write_api: {e}", file=sys.stderr)
        results["error"] = str(e)
        code = 1
    finally:
        if server is not None:
            server.stop()
    results["versions"] = versions()
    for line in verdicts(results):
        print(line)
    out = ROOT / "bench" / "results" / f"write-api-{started}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"benchmark": "write_api", "parts": parts, "runs": runs, "quick": args.quick,
                               **results}, indent=1) + "\n")
    print(f"raw numbers: {out.relative_to(ROOT)}", file=sys.stderr)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
