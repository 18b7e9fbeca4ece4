"""The Backend contract on fsspec's memory and local file systems."""

from __future__ import annotations

import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from backend_contract import BackendContract, killed_temp_file

from dss_remote.backends.base import Backend
from dss_remote.backends.fsspec_backend import FsspecBackend


class TestMemoryBackend(BackendContract):
    @pytest.fixture
    def backend(self) -> FsspecBackend:
        return FsspecBackend(f"memory://dss-test-{uuid.uuid4().hex}/store")

    def interrupt_write(self, backend: Backend, relpath: str, data: bytes) -> str | None:
        return None  # the whole content goes in one call (pipe_file): a killed writer leaves nothing

    def make_empty_dir(self, backend: Backend, relpath: str) -> bool:
        return False  # writes make no directories here


class TestFsspecLocalBackend(BackendContract):
    """file:// through fsspec: the temp-name-then-mv path other writable file systems take."""

    @pytest.fixture
    def backend(self, tmp_path: Path) -> FsspecBackend:
        root = tmp_path / "root"
        root.mkdir()
        return FsspecBackend(f"file://{root}")

    def interrupt_write(self, backend: Backend, relpath: str, data: bytes) -> str | None:
        return killed_temp_file((Path(urlsplit(backend.url).path) / relpath).parent, data)

    def make_empty_dir(self, backend: Backend, relpath: str) -> bool:
        (Path(urlsplit(backend.url).path) / relpath).mkdir(parents=True)
        return True


def test_memory_backend_kind_and_capabilities() -> None:
    backend = FsspecBackend(f"memory://dss-test-{uuid.uuid4().hex}")
    assert (backend.kind, backend.writable, backend.local_root) == ("memory", True, None)
