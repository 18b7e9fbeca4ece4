"""The bare git repository inside a dataset directory, through plain `git` plumbing."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

from .errors import DssError, WriteError, one_line

logger = logging.getLogger(__name__)


def _git(*args: str) -> str:
    cmd = ["git", *args]
    logger.debug("run %s", cmd)
    try:
        out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    except FileNotFoundError as e:
        raise DssError("git not found on PATH (install git)") from e
    except subprocess.CalledProcessError as e:
        raise WriteError(f"`{' '.join(cmd)}` failed: {one_line(e.stderr) or e.returncode}") from e
    return out.stdout


def init_bare(path: Path, shared: str | None = None) -> None:
    """`git init --bare` in the dataset directory (idempotent; git re-init keeps what exists)."""
    _git("init", "--bare", "--quiet", *([f"--shared={shared}"] if shared else []), str(path))


def set_config(repo: Path, name: str, value: str) -> None:
    """Set a config value in the bare repo's own `config` file."""
    _git(f"--git-dir={repo}", "config", name, value)
