"""`/v1/collections`: owner-private, versioned collections of files, bundles and collections."""

from __future__ import annotations

import logging

from fastapi import APIRouter

logger = logging.getLogger(__name__)

router = APIRouter()
