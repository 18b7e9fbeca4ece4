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


def test_every_package_directory_ships() -> None:
    """A directory of modules without __init__.py works in an editable install and is silently
    missing from `pip install .` (it happened: dss_remote/backends)."""
    from setuptools import find_packages

    shipped = set(find_packages(where=str(ROOT), include=["ria_store", "ria_store.*", "dss_remote",
                                                          "dss_remote.*"]))
    on_disk = {str(p.parent.relative_to(ROOT)).replace("/", ".")
               for top in ("ria_store", "dss_remote") for p in (ROOT / top).rglob("*.py")}
    assert on_disk - shipped == set()
