"""A throwaway Google service-account key for tests that sign GCS URLs against the emulator."""

from __future__ import annotations

import json
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


def signing_key(tmp_path: Path) -> Path:
    """A throwaway service-account key: GCS signs URLs with it, nothing ever asks Google about it."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    path = tmp_path / "signer.json"
    path.write_text(json.dumps({
        "type": "service_account", "project_id": "dss", "private_key_id": "test-key",
        "private_key": pem, "client_email": "dss-signer@dss.iam.gserviceaccount.com",
        "client_id": "1", "token_uri": "http://127.0.0.1:9/token"}))
    return path
