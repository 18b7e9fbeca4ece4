"""dss tokens: the text, the file (0600 in a 0700 dir, only a hash of the secret), list, revoke,
expiry; each bad token its own case with its exact error."""

from __future__ import annotations

import json
import os
import stat
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from dss_remote.access import tokens
from dss_remote.access.durations import parse_duration
from dss_remote.access.gate import AuthenticationError, Identity
from ria_store.errors import ConfigError, NotFoundError

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
INVALID = "the dss token is not valid; ask an admin for a new one (`dss token create`)"


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_a_token_is_dss_id_secret_and_verifies_to_its_user_and_groups(store: Path) -> None:
    token_id, text = tokens.create(store, "alice", ["lab", "admins", "lab"], timedelta(days=90))
    prefix, tid, secret = text[:4], text[4:20], text[21:]
    assert prefix == "dss_" and tid == token_id and text[20] == "_"
    assert len(secret) == 43, "32 bytes from secrets, base64url: 256 bits"
    assert tokens.verify(store, text) == Identity("alice", frozenset({"lab", "admins"}), "token")


def test_the_token_file_is_0600_in_0700_dirs_and_holds_only_a_hash(store: Path) -> None:
    token_id, text = tokens.create(store, "alice", ["lab"], timedelta(days=1))
    secret = text.split("_", 2)[2]
    f = store / "dss/access/tokens" / f"{token_id}.json"
    assert stat.S_IMODE(f.stat().st_mode) == 0o600
    assert stat.S_IMODE((store / "dss/access").stat().st_mode) == 0o700
    assert stat.S_IMODE((store / "dss/access/tokens").stat().st_mode) == 0o700
    doc = json.loads(f.read_text())
    assert set(doc) == {"id", "user", "groups", "created", "expires", "sha256"}
    for p in _files(store):
        data = p.read_bytes()
        assert secret.encode() not in data and text.encode() not in data, p


def test_every_token_gets_its_own_id_and_secret(store: Path) -> None:
    made = [tokens.create(store, "alice", [], None) for _ in range(5)]
    assert len({i for i, _ in made}) == 5 and len({t for _, t in made}) == 5


def test_list_shows_users_and_status_but_no_secret_or_hash(store: Path) -> None:
    a_id, a_text = tokens.create(store, "alice", ["lab"], timedelta(days=1), now=NOW)
    b_id, _ = tokens.create(store, "bob", [], None, now=NOW + timedelta(seconds=1))
    listed = [t.public_json(NOW) for t in tokens.list_tokens(store)]
    assert [(t["id"], t["user"], t["expires"], t["status"]) for t in listed] == [
        (a_id, "alice", "2026-12-02T12:00:00.000000Z", "active"), (b_id, "bob", None, "active")]
    dumped = json.dumps(listed)
    assert "sha256" not in dumped and a_text.split("_", 2)[2] not in dumped


def test_revoke_refuses_the_token_from_then_on_and_list_shows_it(store: Path) -> None:
    token_id, text = tokens.create(store, "alice", [], None)
    tokens.verify(store, text)
    info = tokens.revoke(store, token_id, now=NOW)
    assert info.revoked == "2026-12-01T12:00:00.000000Z"
    with pytest.raises(AuthenticationError) as e:
        tokens.verify(store, text)
    assert str(e.value) == (f"the dss token {token_id} was revoked on 2026-12-01T12:00:00.000000Z; "
                            "ask an admin for a new one (`dss token create`)")
    assert [t.status(NOW) for t in tokens.list_tokens(store)] == ["revoked"]


def test_revoke_of_an_unknown_id_is_not_found_and_writes_nothing(store: Path) -> None:
    before = _files(store)
    with pytest.raises(NotFoundError) as e:
        tokens.revoke(store, "0123456789abcdef")
    assert str(e.value) == (f"token '0123456789abcdef' not found in store {store}; list the ids with "
                            "`dss token list`")
    assert _files(store) == before


def test_revoke_of_a_path_like_id_is_not_found(store: Path) -> None:
    with pytest.raises(NotFoundError):
        tokens.revoke(store, "../config")


def test_an_expired_token_is_refused_naming_when(store: Path) -> None:
    token_id, text = tokens.create(store, "alice", [], timedelta(hours=1), now=NOW)
    assert tokens.verify(store, text, now=NOW + timedelta(minutes=59)).user == "alice"
    with pytest.raises(AuthenticationError) as e:
        tokens.verify(store, text, now=NOW + timedelta(hours=1))
    assert str(e.value) == (f"the dss token {token_id} expired on 2026-12-01T13:00:00.000000Z; ask an "
                            "admin for a new one (`dss token create`)")


def test_a_never_expiring_token_verifies_far_ahead(store: Path) -> None:
    _, text = tokens.create(store, "alice", [], None, now=NOW)
    assert tokens.verify(store, text, now=NOW + timedelta(days=36500)).user == "alice"


def test_an_unknown_id_is_refused_like_a_wrong_secret(store: Path) -> None:
    _, text = tokens.create(store, "alice", [], None)
    unknown = "dss_0123456789abcdef_" + text.split("_", 2)[2]
    wrong_secret = text[:-1] + ("A" if text[-1] != "A" else "B")
    messages = set()
    for bad in (unknown, wrong_secret):
        with pytest.raises(AuthenticationError) as e:
            tokens.verify(store, bad)
        messages.add(str(e.value))
    assert messages == {INVALID}, "the caller never learns whether an id exists"


def test_a_revoked_token_with_a_wrong_secret_says_only_invalid(store: Path) -> None:
    token_id, text = tokens.create(store, "alice", [], None)
    tokens.revoke(store, token_id)
    with pytest.raises(AuthenticationError) as e:
        tokens.verify(store, text[:-2] + "xx")
    assert str(e.value) == INVALID


@pytest.mark.parametrize("bad", ["", "dss_", "dss_xyz_abc", "dss_0123456789abcdef",
                                 "dss_0123456789ABCDEF_" + "a" * 43, "dss_0123456789abcdef_" + "a" * 42,
                                 "dss_0123456789abcdef_" + "a" * 42 + "!",
                                 "dss_../../../etc/passwd_" + "a" * 43])
def test_a_malformed_token_is_refused_naming_the_form(store: Path, bad: str) -> None:
    with pytest.raises(AuthenticationError) as e:
        tokens.verify(store, bad)
    assert str(e.value) == f"{INVALID}: it is not of the form dss_<id>_<secret>"


def test_a_damaged_token_file_refuses_the_token_and_keeps_it(store: Path) -> None:
    token_id, text = tokens.create(store, "alice", [], None)
    f = store / "dss/access/tokens" / f"{token_id}.json"
    f.write_text("{not json")
    with pytest.raises(AuthenticationError) as e:
        tokens.verify(store, text)
    assert str(e.value) == INVALID
    assert f.read_text() == "{not json"


@pytest.mark.parametrize(("user", "groups", "message"), [
    ("", [], "user '' is not a valid name"),
    ("al ice", [], "user 'al ice' is not a valid name"),
    ("alice", ["la,b"], "group 'la,b' is not a valid name"),
    ("alice", ["-x"], "group '-x' is not a valid name"),
])
def test_a_bad_user_or_group_name_is_refused_and_nothing_written(store: Path, user: str, groups: list[str],
                                                                 message: str) -> None:
    with pytest.raises(ConfigError) as e:
        tokens.create(store, user, groups, None)
    assert str(e.value).startswith(message)
    assert not (store / "dss/access").exists()


@pytest.mark.parametrize(("text", "want"), [("90d", timedelta(days=90)), ("12h", timedelta(hours=12)),
                                            ("30m", timedelta(minutes=30)), ("45s", timedelta(seconds=45)),
                                            ("2w", timedelta(weeks=2)), ("never", None)])
def test_durations(text: str, want: timedelta | None) -> None:
    assert parse_duration(text) == want


@pytest.mark.parametrize("bad", ["", "90", "d", "0d", "-1d", "1.5d", "1y", "never "])
def test_a_bad_duration_is_named(bad: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_duration(bad)
    assert str(e.value) == (f"lifetime {bad!r} is not a number with a unit s, m, h, d or w (e.g. 90d, "
                            "12h) or `never`")


def test_a_token_file_in_a_group_shared_store_is_the_groups_to_read(store: Path) -> None:
    os.chmod(store, 0o2775)
    os.chmod(store / "dss", 0o2775)
    token_id, _ = tokens.create(store, "alice", [], None)
    assert stat.S_IMODE((store / "dss/access").stat().st_mode) == 0o2770
    f = store / "dss/access/tokens" / f"{token_id}.json"
    assert stat.S_IMODE(f.stat().st_mode) == 0o640


def test_a_duration_over_100_years_is_refused() -> None:
    with pytest.raises(ConfigError) as e:
        parse_duration("9999999d")
    assert str(e.value) == "lifetime '9999999d' is longer than 100 years; use `never` instead"


def test_list_names_a_damaged_token_file(store: Path) -> None:
    token_id, _ = tokens.create(store, "alice", [], None)
    f = store / "dss/access/tokens" / f"{token_id}.json"
    f.write_text('{"id": "x", "groups": "lab"}')
    with pytest.raises(ConfigError) as e:
        tokens.list_tokens(store)
    assert str(e.value) == (f"token file {f} is damaged; remove it (its token no longer works) and create "
                            "a new token")
