#!/usr/bin/env python3
"""Checkout benchmark: a bundle of `--files` small files (default 1,000) checked out to a moto bucket,
vs a plain boto3 copy of the same files (what `aws s3 cp --recursive` does: `upload_file` per file
from a thread pool of the same width as the checkout's, `service.checkout.THREADS`).

Issue 19's target: the checkout's throughput is >= 0.8x the plain copy's.

* A store (`dss init`) gets one DataLad dataset of `--files` random files (1-4 KiB, SHA256E keys),
  pushed with `datalad push`, so the hook records the bundle's manifest.
* `checkout`: `service.checkout.checkout` of that version to `s3://BUCKET/run-N` (a fresh prefix each
  time, so every file is copied: a HEAD to find it is not there yet, then the upload with its
  metadata). `boto3`: `upload_file` of each of the store's loose objects to `s3://BUCKET/base-N/<path>`.
  Both in this process against the same moto_server, `--runs` rounds (default 3), the order
  alternating from round to round; medians (min/max) are printed with the ratio.

Raw numbers go to bench/results/write-api-checkout-<timestamp>.json. Run in the project's venv:
`python bench/write_api_checkout.py [--files N] [--runs R]`. moto_server binds 127.0.0.1 and is
stopped (by pid) before the script ends; the work directory is removed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT / "tests"))

from cloud_servers import LoopbackServer, s3_admin_client  # noqa: E402

from dss_remote.admin.sibling import create_sibling  # noqa: E402
from dss_remote.admin.store import init_store  # noqa: E402
from dss_remote.history import bundle_store  # noqa: E402
from dss_remote.service import checkout as co  # noqa: E402
from dss_remote.service.checkout_dest import S3Destination  # noqa: E402
from ria_store.layout import dataset_relpath, object_relpath  # noqa: E402


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run(cmd: list[str | Path], cwd: Path | None = None) -> None:
    subprocess.run([str(c) for c in cmd], cwd=cwd, check=True, stdout=subprocess.DEVNULL)


def make_store(work: Path, n: int) -> tuple[Path, str, str]:
    home = work / "home"
    home.mkdir()
    (home / ".gitconfig").write_text("[user]\n\tname = bench\n\temail = bench@example.invalid\n"
                                     "[init]\n\tdefaultBranch = main\n")
    os.environ.update(HOME=str(home), GIT_CONFIG_NOSYSTEM="1",
                      PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    store, ds = work / "store", work / "ds"
    init_store(store)
    run(["datalad", "-l", "error", "create", ds])
    attrs = ds / ".gitattributes"
    attrs.write_text(attrs.read_text().replace("annex.backend=MD5E", "annex.backend=SHA256E"))
    for i in range(n):
        d = ds / f"d{i % 20:02d}"
        d.mkdir(exist_ok=True)
        (d / f"f{i:05d}.bin").write_bytes(os.urandom(1024 + (i * 37) % 3072))
    run(["datalad", "-l", "error", "save", "-m", "files"], ds)
    sib = create_sibling(ds, "store", f"ria+file://{store}")
    run(["datalad", "-l", "error", "push", "--to", "store"], ds)
    return store, sib.dataset_id, bundle_store.versions(store, sib.dataset_id)[-1]


def plain_copy(store: Path, dsid: str, version: str, s3: Any, *, bucket: str, prefix: str) -> int:
    rows = [r for r in bundle_store.load(store, dsid, version).files if r["type"] == "annex"]
    base = store / dataset_relpath(dsid)
    version_tree = (base / "ria-layout-version").read_text().split("|")[0].strip()

    def one(row: dict[str, Any]) -> None:
        src = base / object_relpath(row["key"], version_tree)
        s3.upload_file(str(src), bucket, f"{prefix}/{row['path']}")

    with ThreadPoolExecutor(co.THREADS) as pool:
        list(pool.map(one, rows))
    return len(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dss-bench-checkout-"))
    s3srv = LoopbackServer("moto_server", lambda port: ["-H", "127.0.0.1", "-p", str(port)], work,
                           probe="/moto-api/")
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                      AWS_DEFAULT_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true")
    try:
        s3srv.start()
        os.environ["AWS_ENDPOINT_URL_S3"] = s3srv.endpoint
        log(f"making a store of {args.files} files ...")
        store, dsid, version = make_store(work, args.files)
        s3 = s3_admin_client(s3srv.endpoint)
        bucket = "dss-bench-checkout"
        s3.create_bucket(Bucket=bucket)
        n_files = len(co.bundle_rows(store, dsid, version))
        times: dict[str, list[float]] = {"checkout": [], "boto3": []}
        for i in range(args.runs):
            order = ["checkout", "boto3"] if i % 2 == 0 else ["boto3", "checkout"]
            for what in order:
                t0 = time.perf_counter()
                if what == "checkout":
                    counts = co.checkout(store, dsid, version, S3Destination(f"s3://{bucket}/run-{i}", bucket,
                                                                             f"run-{i}"))
                    assert counts.copied == n_files, counts
                else:
                    plain_copy(store, dsid, version, s3, bucket=bucket, prefix=f"base-{i}")
                times[what].append(time.perf_counter() - t0)
                log(f"round {i}: {what} {times[what][-1]:.2f} s")
        med = {k: statistics.median(v) for k, v in times.items()}
        ratio = med["boto3"] / med["checkout"]
        for k, v in times.items():
            print(f"{k:9s} median {med[k]:.2f} s ({min(v):.2f}-{max(v):.2f}), {n_files / med[k]:.0f} files/s")
        print(f"checkout throughput = {ratio:.2f}x the plain boto3 copy (target >= 0.8x)")
        out = ROOT / "bench" / "results" / f"write-api-checkout-{time.strftime('%Y%m%d-%H%M%S')}.json"
        out.write_text(json.dumps({
            "benchmark": "write_api_checkout", "files": n_files, "annexed": args.files, "runs": args.runs,
            "threads": co.THREADS, "seconds": times, "median_seconds": med, "ratio": ratio,
            "python": platform.python_version(), "machine": platform.machine(),
            "cpus": os.cpu_count()}, indent=1) + "\n")
        print(f"raw results: {out.relative_to(ROOT)}")
    finally:
        s3srv.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
