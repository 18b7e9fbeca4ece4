"""The Backend contract on fsspec's memory and local file systems; http(s) mirrors are read-only."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from backend_contract import BackendContract

from dss_remote.backends.fsspec_backend import FsspecBackend
from ria_store.errors import WriteError


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


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_http_mirror_is_read_only(scheme: str, tmp_path: Path) -> None:
    """Writes are refused before anything is opened or sent (no network here)."""
    url = f"{scheme}://mirror.example.invalid/store"
    backend = FsspecBackend(url)
    assert (backend.kind, backend.writable) == (scheme, False)
    src = tmp_path / "src"
    src.write_bytes(b"data")
    calls: list[Callable[[], None]] = [lambda: backend.put_file(src, "ab/KEY"),
                                       lambda: backend.write_bytes("cfg", b"x"),
                                       lambda: backend.remove("ab/KEY")]
    for call in calls:
        with pytest.raises(WriteError) as exc:
            call()
        msg = str(exc.value)
        assert "\n" not in msg and url in msg and "read-only" in msg and "s3://" in msg
