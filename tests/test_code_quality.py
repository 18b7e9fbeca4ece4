"""STYLE.md's checks as tests: ruff and strict mypy stay clean on the whole project."""

from __future__ import annotations

import sys
from pathlib import Path

from conftest import require_tool, run

ROOT = Path(__file__).resolve().parent.parent


def test_ruff_is_clean() -> None:
    res = run(require_tool("ruff"), "check", ROOT, cwd=ROOT, check=False)
    assert res.returncode == 0, res.stdout[-3000:]


def test_mypy_strict_is_clean() -> None:
    res = run(sys.executable, "-m", "mypy", cwd=ROOT, check=False)
    assert res.returncode == 0, res.stdout[-3000:]
    assert "Success: no issues found" in res.stdout
