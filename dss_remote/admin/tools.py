"""Run the programs dss drives (git, git-annex, datalad), this environment's own first on PATH."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from ria_store.errors import DssError, one_line

logger = logging.getLogger(__name__)


def tool_env() -> dict[str, str]:
    """The environment with this interpreter's bin dir first on PATH: git-annex, datalad and our
    remote are installed there, also when `dss` is run by its full path from an inactive venv."""
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


def require(*tools: str, env: Mapping[str, str]) -> None:
    """DssError naming the first of `tools` that is not on env's PATH, and how to get it."""
    for tool in tools:
        if shutil.which(tool, path=env["PATH"]) is None:
            raise DssError(f"{tool} not found on PATH; install dss-remote into this environment "
                           "(`pip install dss-remote`, which brings git-annex and datalad) and run "
                           "dss from it")


def run_tool(*cmd: str, cwd: Path | None = None, env: Mapping[str, str] | None = None,
             check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `cmd` with stdin closed (nothing may wait for an answer); DssError quoting its last
    words when it fails and `check` is set."""
    logger.debug("running %s in %s", cmd, cwd)
    res = subprocess.run(cmd, cwd=cwd, env=dict(env) if env is not None else tool_env(),
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False)
    if check and res.returncode != 0:
        raise DssError(f"`{' '.join(cmd)}` failed: "
                       f"{one_line(res.stderr or res.stdout) or f'exit {res.returncode}'}")
    return res
