#!/usr/bin/env python3
"""Push benchmark: what the dss post-update hook adds to a `git push` of a 10,000-file dataset.

Issue 5's target: the hook's synchronous part (manifest + event + outbox entries) adds < 0.5 s.

One run, same data, same store:

* A dataset of `--files` files (default 10,000): 90 % annexed (locked symlinks to SHA256E keys,
  as `git annex add` makes them; the content is not needed for a push) and 10 % small git files,
  in 100 directories, committed with git plumbing (fast and deterministic). It is published to a
  store made by `dss init` + `dss create-sibling` (which installs the hook), and the store has one
  webhook subscription (to a closed loopback port) so every push also enqueues a delivery.
* Each round commits a change to one file and times the whole `git push` (wall time around
  `subprocess.run`): once with the hook in place and once with the hook file moved away, in
  alternating order. The difference of the medians is what the hook adds; the ratio is reported too.
* Each round also pushes the commit to a new branch: its first version has no parent, so the hook
  diffs against the dataset's newest version (of another branch).
* The worst case, a dataset's very first version, lists the whole tree: timed as the hook program
  alone (`python -m dss_remote.hook` in the bare repo, start-up included) with the
  dataset's bundle directory moved aside each time.
* The hook also starts `dss deliver` detached; that runs after the push returns and is not timed.

Prints medians (min/max) and writes raw numbers to bench/results/hook-<timestamp>.json.
Run in the project's venv: `python bench/hook.py [--files N] [--runs R] [--keep DIR]`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 0.5


def sh(*cmd: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None,
       stdin: bytes | None = None) -> str:
    res = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, input=stdin, capture_output=True,
                         check=False)
    if res.returncode != 0:
        sys.exit(f"`{' '.join(map(str, cmd))}` failed: {res.stderr.decode(errors='replace')[-2000:]}")
    return res.stdout.decode()


def build_dataset(ds: Path, n: int, env: dict[str, str]) -> None:
    """`datalad create`, then n files committed through one `git update-index --index-info`."""
    sh("datalad", "-l", "error", "create", ds, env=env)
    lines = []
    for i in range(n):
        path = f"d{i % 100:02d}/f{i:05d}.dat"
        if i % 10 == 0:
            blob = f"small git file {i}\n".encode()
            mode = "100644"
        else:
            digest = hashlib.sha256(str(i).encode()).hexdigest()
            key = f"SHA256E-s{1000 + i}--{digest}.dat"
            blob = f"../.git/annex/objects/Xx/Yy/{key}/{key}".encode()
            mode = "120000"
        sha = sh("git", "hash-object", "-w", "--stdin", cwd=ds, env=env, stdin=blob).strip()
        lines.append(f"{mode} {sha}\t{path}\n")
    sh("git", "update-index", "--index-info", cwd=ds, env=env, stdin="".join(lines).encode())
    sh("git", "commit", "-q", "-m", f"{n} files", cwd=ds, env=env)
    sh("git", "reset", "-q", "--hard", cwd=ds, env=env)  # the work tree, from the commit


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--keep", type=Path)
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="dss-bench-hook-"))
    work.mkdir(parents=True, exist_ok=True)
    home = work / "home"
    home.mkdir(exist_ok=True)
    (home / ".gitconfig").write_text("[user]\n\tname = bench\n\temail = bench@example.invalid\n"
                                     "[init]\n\tdefaultBranch = main\n")
    env = dict(os.environ, HOME=str(home), GIT_CONFIG_NOSYSTEM="1")
    store, ds = work / "store", work / "ds"
    t0 = time.perf_counter()
    sh("dss", "init", store, env=env)
    build_dataset(ds, args.files, env)
    sh("dss", "create-sibling", "-d", ds, "--name", "store", f"ria+file://{store}", env=env)
    secret = work / "secret"
    secret.write_text("bench-secret\n")
    sh("dss", "subscribe", store, "--url", "http://127.0.0.1:9/hook", "--secret-file", secret, env=env)
    sh("git", "push", "-q", "store", "main", cwd=ds, env=env)
    print(f"setup: {args.files} files in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    dsid = sh("git", "config", "-f", ds / ".datalad" / "config", "datalad.dataset.id").strip()
    hook = store / dsid[:3] / dsid[3:] / "hooks" / "post-update"
    parked = hook.with_name("post-update.parked")
    times: dict[str, list[float]] = {"with_hook": [], "without_hook": [], "new_branch_with_hook": []}
    for run in range(args.runs):
        for mode in (("with_hook", "without_hook") if run % 2 == 0 else ("without_hook", "with_hook")):
            if mode == "without_hook":
                os.rename(hook, parked)
            (ds / "d00" / "f00000.dat").write_text(f"change {run} {mode}\n")
            sh("git", "commit", "-q", "-a", "-m", f"{run} {mode}", cwd=ds, env=env)
            t = time.perf_counter()
            sh("git", "push", "-q", "store", "main", cwd=ds, env=env)
            times[mode].append(time.perf_counter() - t)
            if mode == "without_hook":
                os.rename(parked, hook)
        # A new branch's first version has no parent; it is diffed against another branch's newest.
        t = time.perf_counter()
        sh("git", "push", "-q", "store", f"HEAD:refs/heads/first-{run}", cwd=ds, env=env)
        times["new_branch_with_hook"].append(time.perf_counter() - t)
    repo = hook.parent.parent
    bdir = store / "dss" / "bundles" / dsid
    times["first_version_hook_alone"] = []
    for run in range(args.runs):
        os.rename(bdir, bdir.with_name(f"aside-{run}"))
        t = time.perf_counter()
        sh(sys.executable, "-m", "dss_remote.hook", "refs/heads/main", cwd=repo,
           env=dict(env, GIT_DIR=str(repo)))
        times["first_version_hook_alone"].append(time.perf_counter() - t)
        shutil.rmtree(bdir)
        os.rename(bdir.with_name(f"aside-{run}"), bdir)
    versions = json.loads(sh("dss", "bundles", "list", store, "--json", env=env))
    med = {k: statistics.median(v) for k, v in times.items()}
    added = med["with_hook"] - med["without_hook"]
    print(f"{'':26}{'median s':>10}{'min':>8}{'max':>8}")
    for k, v in times.items():
        print(f"{k:26}{med[k]:10.3f}{min(v):8.3f}{max(v):8.3f}")
    verdict = "met" if added < TARGET_S else "MISSED"
    print(f"hook adds {added:.3f} s per push (target < {TARGET_S} s: {verdict}); "
          f"push with hook / without = {med['with_hook'] / med['without_hook']:.2f}")
    print(f"a new branch's first version adds {med['new_branch_with_hook'] - med['without_hook']:.3f} s;"
          f" a dataset's first version (whole tree listed): the hook alone takes "
          f"{med['first_version_hook_alone']:.3f} s")
    print(f"bundle versions recorded: {len(versions)}; files in the last manifest: "
          f"{versions[-1]['file_count']}")
    out = Path(__file__).parent / "results" / f"hook-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"files": args.files, "runs": args.runs, "times": times, "median": med,
                               "added_s": added, "target_s": TARGET_S}, indent=1))
    print(f"raw numbers: {out}", file=sys.stderr)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
