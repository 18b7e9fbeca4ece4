"""Tokens, issuers, ACLs and audit records never leave the store: `dss sync` (full, and the
hook's `--git-only`) uploads a fixed set of paths, none under dss/access/ or dss/audit/."""

from __future__ import annotations

from pathlib import Path

from conftest import PLAIN_DSID

from dss_remote.access import acl, audit, issuers, tokens
from dss_remote.access.issuers import make_issuer
from dss_remote.admin.store import add_mirror
from dss_remote.cli import main
from dss_remote.config.mirrors import Mirror


def test_sync_to_a_posix_mirror_never_uploads_access_or_audit(store: Path, dsdir: Path,
                                                              tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    add_mirror(store, Mirror(url=f"file://{mirror}", name="backup"))
    token_id, token = tokens.create(store, "alice", ["lab"], None)
    acl.set_dataset(store, PLAIN_DSID, read=["lab"])
    issuers.add(store, make_issuer("https://login.example.org/", "dss", jwks_uri="https://login.example.org/j"))
    audit.append(store, {"identity": "bob", "status": 403, "dataset": PLAIN_DSID})
    (dsdir / "HEAD").write_text("ref: refs/heads/main\n")
    for f in ("access/acl.json", "access/issuers.json", f"access/tokens/{token_id}.json"):
        assert (store / "dss" / f).is_file()
    assert list((store / "dss/audit").glob("*.jsonl"))

    assert main(["sync", str(store), "--dataset", PLAIN_DSID, "--git-only"]) == 0
    assert main(["sync", str(store)]) == 0

    assert (mirror / "dss/config.json").is_file() and (mirror / dsdir.relative_to(store) / "HEAD").is_file()
    assert not (mirror / "dss/access").exists() and not (mirror / "dss/audit").exists()
    secret_hash = (store / f"dss/access/tokens/{token_id}.json").read_text().split('"sha256": "')[1][:64]
    for p in mirror.rglob("*"):
        if p.is_file():
            data = p.read_bytes()
            assert token.encode() not in data and secret_hash.encode() not in data, p
            assert b"login.example.org" not in data and b"bob" not in data, p
