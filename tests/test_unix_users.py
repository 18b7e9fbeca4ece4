"""tests/unix_users.py's own helpers: what it changes on the machine, it puts back."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from unix_users import searchable_by_others


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_private_directories_on_the_way_are_opened_for_search_and_restored(tmp_path: Path) -> None:
    private = tmp_path / "private"
    code = private / "checkout" / "venv"
    code.mkdir(parents=True)
    private.chmod(0o700)
    (private / "checkout").chmod(0o750)
    with searchable_by_others([code]) as opened:
        assert private in opened and private / "checkout" in opened
        assert _mode(private) == 0o701  # search only: others still cannot list it
        assert _mode(private / "checkout") == 0o751
    assert _mode(private) == 0o700
    assert _mode(private / "checkout") == 0o750


def test_modes_are_restored_when_the_block_fails(tmp_path: Path) -> None:
    private = tmp_path / "private"
    (private / "code").mkdir(parents=True)
    private.chmod(0o700)
    with pytest.raises(RuntimeError, match="boom"), searchable_by_others([private / "code"]):
        raise RuntimeError("boom")
    assert _mode(private) == 0o700
