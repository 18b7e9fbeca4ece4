"""The real HCA DSS client (`hca` 7.0.1) in its own venv, and a way to run it against a server.

Installed once per test session (`hca_venv`); 7.0.1 pins a tenacity that breaks on Python 3.11, so
tenacity is upgraded after it (docs: ../shared/reference/hca_client.md). A failed install fails
the test naming what is missing; it never skips.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

HCA_VERSION = "7.0.1"


@pytest.fixture(scope="session")
def hca_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with `hca==7.0.1` (then tenacity upgraded); its `bin/hca`. One per run: xdist
    workers share the run's temp root, and the first one to get the lock installs it."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the run's root, above each worker's own
    venv = root / "hca-venv"
    with open(root / "hca-venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (venv / ".installed").exists():
            _install(venv)
    return venv / "bin" / "hca"


def _install(venv: Path) -> None:
    started = time.monotonic()
    shutil.rmtree(venv, ignore_errors=True)  # what a failed attempt left
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    for args in ([f"hca=={HCA_VERSION}"], ["-U", "tenacity"]):
        res = subprocess.run(pip + args, capture_output=True, text=True, check=False, timeout=1200)
        if res.returncode != 0:
            pytest.fail(f"`pip install {' '.join(args)}` failed in {venv} (the hca client end-to-end "
                        f"tests need hca=={HCA_VERSION} from a package index this machine can reach):\n"
                        f"{res.stderr[-3000:]}")
    (venv / ".installed").touch()
    print(f"hca {HCA_VERSION} installed in {time.monotonic() - started:.0f} s")


def hca_env(work: Path, server_url: str) -> dict[str, str]:
    """Environment for `hca` against `server_url`: a fresh config dir, both swagger URLs ours."""
    config_home = work / "xdg-config"
    config_home.mkdir(parents=True, exist_ok=True)
    config = work / "hca-config.json"
    spec = f"{server_url}/v1/swagger.json"
    config.write_text(json.dumps({"DSSClient": {"swagger_url": spec}, "AuthClient": {"swagger_url": spec}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HCA_", "XDG_CONFIG"))}
    return env | {"XDG_CONFIG_HOME": str(config_home), "HCA_CONFIG_FILE": str(config)}


def run_hca(hca: Path, work: Path, server_url: str, *args: str, cwd: Path | None = None
            ) -> subprocess.CompletedProcess[str]:
    """`hca ARGS`; fails the test with its output unless it exits 0."""
    res = subprocess.run([str(hca), *args], cwd=cwd or work, env=hca_env(work, server_url),
                         capture_output=True, text=True, timeout=600, check=False)
    if res.returncode != 0:
        pytest.fail(f"`hca {' '.join(args)}` exited {res.returncode}\n--- stdout\n{res.stdout[-3000:]}\n"
                    f"--- stderr\n{res.stderr[-3000:]}")
    return res
