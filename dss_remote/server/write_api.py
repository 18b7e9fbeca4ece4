"""The DSS write API: `PUT /v1/files/{uuid}`, `PUT|PATCH|DELETE /v1/bundles/{uuid}`."""

from __future__ import annotations

import logging

from fastapi import APIRouter

logger = logging.getLogger(__name__)

router = APIRouter()
