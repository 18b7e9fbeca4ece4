"""The Backend contract on fsspec's memory and local file systems."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from backend_contract import BackendContract

from dss_remote.backends.fsspec_backend import FsspecBackend


class TestMemoryBackend(BackendContract):
    @pytest.fixture
    def backend(self) -> FsspecBackend:
        return FsspecBackend(f"memory://dss-test-{uuid.uuid4().hex}/store")


class TestFsspecLocalBackend(BackendContract):
    """file:// through fsspec: the temp-name-then-mv path other writable file systems take."""

    @pytest.fixture
    def backend(self, tmp_path: Path) -> FsspecBackend:
        root = tmp_path / "root"
        root.mkdir()
        return FsspecBackend(f"file://{root}")


def test_memory_backend_kind_and_capabilities() -> None:
    backend = FsspecBackend(f"memory://dss-test-{uuid.uuid4().hex}")
    assert (backend.kind, backend.writable, backend.local_root) == ("memory", True, None)
