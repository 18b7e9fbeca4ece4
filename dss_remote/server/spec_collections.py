"""The hand-written OpenAPI paths of collections (merged by openapi_spec.py; its rules apply)."""

from __future__ import annotations

from typing import Any


def paths() -> dict[str, Any]:
    return {}
