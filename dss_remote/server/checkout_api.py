"""`POST /v1/bundles/{uuid}/checkout` and `GET /v1/bundles/checkout/{job_id}`."""

from __future__ import annotations

import logging

from fastapi import APIRouter

logger = logging.getLogger(__name__)

router = APIRouter()
