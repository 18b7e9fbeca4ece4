"""`dss token`, `dss auth issuer` and `dss acl` end to end, with `dss` as a subprocess."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import PLAIN_DSID, require_tool
from jwt_issuer import AUD, ISS, jwks, rsa_key, sign

from dss_remote.access.gate import Identity
from dss_remote.access.store_gate import StoreGate
from ria_store import store as ria


def dss(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require_tool("dss"), *map(str, args)], capture_output=True, text=True,
                          timeout=120, check=False)


@pytest.fixture
def ds(store: Path) -> Path:
    ria.create_dataset(ria.open_store(store), PLAIN_DSID, alias="sample")
    return store


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_token_create_prints_the_token_alone_on_stdout(ds: Path) -> None:
    res = dss("token", "create", ds, "--user", "alice", "--group", "lab", "--group", "admins")
    assert res.returncode == 0, res.stderr
    token = res.stdout.removesuffix("\n")
    assert "\n" not in token and token.startswith("dss_")
    token_id = token[4:20]
    assert res.stderr == (f"created token {token_id} for alice (expires in 90d); it is shown only now\n")
    assert StoreGate(ds).identify(f"Bearer {token}") == Identity("alice", frozenset({"lab", "admins"}))
    secret = token.split("_", 2)[2].encode()
    assert all(secret not in data for data in _tree(ds).values())


def test_token_list_and_revoke(ds: Path) -> None:
    token = dss("token", "create", ds, "--user", "alice", "--expires", "never").stdout.strip()
    token_id = token[4:20]
    listed = dss("token", "list", ds)
    assert listed.returncode == 0
    assert listed.stdout == (f"{token_id}\talice\tgroups=-\tcreated="
                             f"{json.loads(dss('token', 'list', ds, '--json').stdout)[0]['created']}"
                             "\texpires=never\tactive\n")
    rows = json.loads(dss("token", "list", ds, "--json").stdout)
    assert [(r["id"], r["user"], r["status"], r["expires"]) for r in rows] == [
        (token_id, "alice", "active", None)]
    for out in (listed.stdout, json.dumps(rows)):
        assert token.split("_", 2)[2] not in out and "sha256" not in out
    res = dss("token", "revoke", ds, token_id)
    assert res.returncode == 0 and res.stdout.startswith(f"revoked token {token_id} of alice (on ")
    assert json.loads(dss("token", "list", ds, "--json").stdout)[0]["status"] == "revoked"


def test_token_revoke_of_an_unknown_id_fails_naming_it(ds: Path) -> None:
    res = dss("token", "revoke", ds, "0123456789abcdef")
    assert res.returncode == 1 and res.stdout == ""
    assert res.stderr == (f"dss: error: token '0123456789abcdef' not found in store {ds}; list the ids "
                          "with `dss token list`\n")


def test_token_create_with_a_bad_lifetime_fails_and_writes_nothing(ds: Path) -> None:
    before = _tree(ds)
    res = dss("token", "create", ds, "--user", "alice", "--expires", "soon")
    assert res.returncode == 1 and res.stdout == ""
    assert res.stderr == ("dss: error: lifetime 'soon' is not a number with a unit s, m, h, d or w (e.g. "
                          "90d, 12h) or `never`\n")
    assert _tree(ds) == before


def test_token_create_without_a_user_is_a_usage_error(ds: Path) -> None:
    res = dss("token", "create", ds)
    assert res.returncode == 2 and "the following arguments are required: --user" in res.stderr


def test_token_create_in_a_directory_that_is_no_store_fails(tmp_path: Path) -> None:
    res = dss("token", "create", tmp_path / "nothing", "--user", "alice")
    assert res.returncode == 1 and res.stdout == ""
    assert res.stderr.startswith(f"dss: error: store {tmp_path / 'nothing'} not found")


def test_auth_issuer_add_list_remove_with_a_jwks_file(ds: Path, tmp_path: Path) -> None:
    key = rsa_key()
    f = tmp_path / "jwks.json"
    f.write_text(json.dumps(jwks(key)))
    hca = "https://auth.data.humancellatlas.org/group"
    res = dss("auth", "issuer", "add", ds, "--issuer", ISS, "--audience", AUD, "--jwks-file", f,
              "--groups-claim", hca)
    assert res.returncode == 0 and res.stdout == f"trusted issuer {ISS} (audience {AUD})\n"
    f.unlink()
    assert StoreGate(ds).identify(f"Bearer {sign(key, **{hca: 'hca'})}") == Identity(
        "ada@example.org", frozenset({"hca"}), "jwt")
    assert dss("auth", "issuer", "list", ds).stdout == (
        f"{ISS}\taudience={AUD}\tjwks in store (1 keys)\tgroups_claim={hca}\temail_claim=email\n")
    listed = json.loads(dss("auth", "issuer", "list", ds, "--json").stdout)
    assert listed == [{"issuer": ISS, "audience": AUD, "jwks": {"kids": [key.kid]}, "groups_claim": hca,
                       "email_claim": "email"}]
    assert dss("auth", "issuer", "remove", ds, ISS).stdout == f"removed issuer {ISS}\n"
    assert dss("auth", "issuer", "list", ds).stdout == ""


def test_auth_issuer_add_with_a_jwks_uri(ds: Path) -> None:
    res = dss("auth", "issuer", "add", ds, "--issuer", ISS, "--audience", AUD, "--jwks-uri",
              "https://login.example.org/.well-known/jwks.json")
    assert res.returncode == 0
    assert json.loads(dss("auth", "issuer", "list", ds, "--json").stdout)[0]["jwks_uri"] == (
        "https://login.example.org/.well-known/jwks.json")


def test_auth_issuer_add_needs_exactly_one_source_of_keys(ds: Path) -> None:
    res = dss("auth", "issuer", "add", ds, "--issuer", ISS, "--audience", AUD)
    assert res.returncode == 2 and "one of the arguments --jwks-uri --jwks-file is required" in res.stderr


def test_auth_issuer_add_with_a_missing_jwks_file_fails_and_writes_nothing(ds: Path, tmp_path: Path) -> None:
    before = _tree(ds)
    res = dss("auth", "issuer", "add", ds, "--issuer", ISS, "--audience", AUD, "--jwks-file", tmp_path / "no")
    assert res.returncode == 1 and res.stderr == f"dss: error: JWKS file {tmp_path / 'no'}: not found\n"
    assert _tree(ds) == before


def test_auth_issuer_remove_of_an_unknown_issuer_fails(ds: Path) -> None:
    res = dss("auth", "issuer", "remove", ds, "https://nobody/")
    assert res.returncode == 1 and res.stderr == (
        f"dss: error: issuer 'https://nobody/' is not trusted by store {ds}; list them with "
        "`dss auth issuer list`\n")


def test_acl_default_set_and_show(ds: Path) -> None:
    assert dss("acl", "default", ds).stdout == "default\tread=-\twrite=-\nadmin\t-\ncreate\t-\n"
    res = dss("acl", "default", ds, "--admin", "admins", "--read", "authenticated", "--create", "lab,core")
    assert res.returncode == 0
    assert res.stdout == "default\tread=authenticated\twrite=-\nadmin\tadmins\ncreate\tlab,core\n"
    res = dss("acl", "set", ds, "~sample", "--read", "public,lab", "--write", "user:alice")
    assert res.returncode == 0 and res.stdout == f"{PLAIN_DSID}\tread=public,lab\twrite=user:alice\n"
    assert dss("acl", "show", ds, "~sample").stdout == f"{PLAIN_DSID}\tread=public,lab\twrite=user:alice\n"
    assert json.loads(dss("acl", "show", ds, "--json").stdout) == {
        "default": {"read": ["authenticated"], "write": []}, "admin": ["admins"], "create": ["lab", "core"],
        "datasets": {PLAIN_DSID: {"read": ["public", "lab"], "write": ["user:alice"]}}}
    assert StoreGate(ds).may_read(None, PLAIN_DSID)


def test_acl_set_of_an_unknown_dataset_fails_and_writes_nothing(ds: Path) -> None:
    before = _tree(ds)
    res = dss("acl", "set", ds, "~nope", "--read", "public")
    assert res.returncode == 1
    assert res.stderr == (f"dss: error: alias 'nope' not found in store {ds} (list aliases with "
                          "`ls <store>/alias`)\n")
    assert _tree(ds) == before


def test_acl_set_with_public_write_fails_and_writes_nothing(ds: Path) -> None:
    before = _tree(ds)
    res = dss("acl", "set", ds, PLAIN_DSID, "--write", "public")
    assert res.returncode == 1 and res.stderr == (
        "dss: error: write access cannot be `public` (anonymous callers may only read); use "
        "`authenticated` or a group\n")
    assert _tree(ds) == before


def test_acl_set_without_read_or_write_is_a_usage_error(ds: Path) -> None:
    res = dss("acl", "set", ds, PLAIN_DSID)
    assert res.returncode == 2 and res.stderr.endswith("error: give --read and/or --write\n")
