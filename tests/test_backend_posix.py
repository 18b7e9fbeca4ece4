"""The Backend contract on a POSIX directory."""

from __future__ import annotations

from pathlib import Path

import pytest
from backend_contract import BackendContract

from dss_remote.backends.posix import PosixBackend


class TestPosixBackend(BackendContract):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> PosixBackend:
        root = tmp_path / "root"
        root.mkdir()
        return PosixBackend(root)
