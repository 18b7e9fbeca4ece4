"""Direct uploads (the tus protocol) under `/v1/uploads`."""

from __future__ import annotations

import logging

from fastapi import APIRouter

logger = logging.getLogger(__name__)

router = APIRouter()
