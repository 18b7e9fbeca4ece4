"""The Backend contract on a POSIX directory, and a write that runs out of space."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from backend_contract import BackendContract, killed_temp_file, leftovers, write_source

from dss_remote.backends.base import Backend
from dss_remote.backends.posix import PosixBackend
from ria_store import atomic
from ria_store.errors import WriteError


class TestPosixBackend(BackendContract):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> PosixBackend:
        root = tmp_path / "root"
        root.mkdir()
        return PosixBackend(root)

    def interrupt_write(self, backend: Backend, relpath: str, data: bytes) -> str | None:
        assert isinstance(backend, PosixBackend)
        return killed_temp_file((backend.root / relpath).parent, data)

    def make_empty_dir(self, backend: Backend, relpath: str) -> bool:
        assert isinstance(backend, PosixBackend)
        (backend.root / relpath).mkdir(parents=True)
        return True


class _PatchedOs:
    """The `os` module as ria_store.atomic sees it, with `write` replaced."""

    def __init__(self, write: Callable[..., int]) -> None:
        self.write = write

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)


def _disk_full(*args: Any) -> int:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_write_that_runs_out_of_space_leaves_no_empty_key_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "root"
    backend = PosixBackend(root)
    root.joinpath("ds", "annex", "objects").mkdir(parents=True)
    backend.put_file(write_source(tmp_path, b"kept", "kept"), "ds/annex/objects/Ab/Cd/OLD/OLD")
    monkeypatch.setattr(atomic, "os", _PatchedOs(write=_disk_full))
    with pytest.raises(WriteError) as e:
        backend.put_file(write_source(tmp_path, b"new content"), "ds/annex/objects/Xy/Zw/KEY/KEY")
    assert str(e.value) == (f"file://{root}: no space left (No space left on device); free space or "
                            "raise the quota, then retry")
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*")) == [
        "ds", "ds/annex", "ds/annex/objects", "ds/annex/objects/Ab", "ds/annex/objects/Ab/Cd",
        "ds/annex/objects/Ab/Cd/OLD", "ds/annex/objects/Ab/Cd/OLD/OLD"], "no key or hash dir left"
    assert leftovers(backend, "ds") == []
