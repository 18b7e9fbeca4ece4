"""What the routes read from the app: the store root and its file index."""

from __future__ import annotations

from pathlib import Path

from fastapi import Request

from .file_index import FileIndex


def store_root(request: Request) -> Path:
    root: Path = request.app.state.store_root
    return root


def file_index(request: Request) -> FileIndex:
    index: FileIndex = request.app.state.file_index
    return index
