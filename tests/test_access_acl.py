"""ACLs: public, authenticated, groups and users; the store default, admins, who may create;
datasets by id or ~alias; each bad entry its own case, with nothing written."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from conftest import PLAIN_DSID

from dss_remote.access import acl
from dss_remote.access.acl import Acl, Rule, parse_acl
from dss_remote.access.gate import Identity
from ria_store import store as ria
from ria_store.errors import ConfigError, UnavailableError, UnsafePathError

OTHER = "1b2c3d4e-5f60-4b7c-8d9e-0f1a2b3c4d5e"
ALICE = Identity("alice", frozenset({"lab"}))
BOB = Identity("bob", frozenset({"other"}))
ROOT = Identity("root", frozenset({"admins"}))


@pytest.fixture
def two(store: Path) -> Path:
    """A store with PLAIN_DSID (alias `sample`) and OTHER."""
    ria.create_dataset(ria.open_store(store), PLAIN_DSID, alias="sample")
    ria.create_dataset(ria.open_store(store), OTHER)
    return store


def test_without_a_file_nobody_may_do_anything(two: Path) -> None:
    rules = acl.load(two)
    for who in (None, ALICE, ROOT):
        assert not rules.may_read(who, PLAIN_DSID) and not rules.may_write(who, PLAIN_DSID)
        assert not rules.is_admin(who) and not rules.may_create(who)


def test_admins_may_do_everything_once_named(two: Path) -> None:
    acl.set_default(two, admin=["admins"])
    rules = acl.load(two)
    assert rules.is_admin(ROOT) and rules.may_read(ROOT, OTHER) and rules.may_write(ROOT, OTHER)
    assert rules.may_create(ROOT)
    assert not rules.is_admin(ALICE) and not rules.may_read(None, OTHER)


def test_public_admits_anonymous_readers_only(two: Path) -> None:
    acl.set_dataset(two, PLAIN_DSID, read=["public"])
    rules = acl.load(two)
    assert rules.may_read(None, PLAIN_DSID) and rules.may_read(BOB, PLAIN_DSID)
    assert not rules.may_write(None, PLAIN_DSID) and not rules.may_write(BOB, PLAIN_DSID)
    assert not rules.may_read(None, OTHER), "one dataset's rule is its own"


def test_authenticated_admits_anyone_signed_in(two: Path) -> None:
    acl.set_dataset(two, PLAIN_DSID, read=["authenticated"], write=["authenticated"])
    rules = acl.load(two)
    assert rules.may_read(BOB, PLAIN_DSID) and rules.may_write(BOB, PLAIN_DSID)
    assert not rules.may_read(None, PLAIN_DSID) and not rules.may_write(None, PLAIN_DSID)


def test_a_group_admits_its_members(two: Path) -> None:
    acl.set_dataset(two, PLAIN_DSID, read=["lab"])
    rules = acl.load(two)
    assert rules.may_read(ALICE, PLAIN_DSID) and not rules.may_read(BOB, PLAIN_DSID)
    assert not rules.may_write(ALICE, PLAIN_DSID)


def test_a_user_entry_admits_that_user_whatever_the_groups(two: Path) -> None:
    acl.set_dataset(two, PLAIN_DSID, write=["user:bob"])
    rules = acl.load(two)
    assert rules.may_write(BOB, PLAIN_DSID) and rules.may_read(BOB, PLAIN_DSID), "writers may read"
    assert not rules.may_write(ALICE, PLAIN_DSID)
    assert not rules.may_read(Identity("lab", frozenset({"bob"})), PLAIN_DSID), "user:bob is not group bob"


def test_the_default_applies_to_datasets_without_their_own_rule(two: Path) -> None:
    acl.set_default(two, read=["authenticated"], write=["lab"])
    acl.set_dataset(two, PLAIN_DSID, read=["user:alice"])
    rules = acl.load(two)
    assert rules.may_read(BOB, OTHER) and rules.may_write(ALICE, OTHER)
    assert not rules.may_read(BOB, PLAIN_DSID), "a dataset's read replaces the default's"
    assert rules.may_write(ALICE, PLAIN_DSID), "its write is still the default's"
    assert rules.rule(PLAIN_DSID) == Rule(("user:alice",), ("lab",))


def test_set_changes_only_what_it_is_given(two: Path) -> None:
    acl.set_dataset(two, PLAIN_DSID, read=["lab"], write=["lab"])
    acl.set_dataset(two, PLAIN_DSID, write=["user:bob"])
    assert acl.load(two).datasets[PLAIN_DSID] == Rule(("lab",), ("user:bob",))
    acl.set_dataset(two, PLAIN_DSID, read=[])
    assert acl.load(two).datasets[PLAIN_DSID] == Rule((), ("user:bob",))


def test_create_names_the_groups_that_may_create_datasets(two: Path) -> None:
    acl.set_default(two, create=["lab"])
    rules = acl.load(two)
    assert rules.may_create(ALICE) and not rules.may_create(BOB) and not rules.may_create(None)


def test_a_dataset_by_alias_is_kept_by_id(two: Path) -> None:
    dsid, rule = acl.set_dataset(two, "~sample", read=["public"])
    assert dsid == PLAIN_DSID and rule.read == ("public",)
    doc = json.loads((two / "dss/access/acl.json").read_text())
    assert list(doc["datasets"]) == [PLAIN_DSID]


def test_the_acl_file_is_0600_in_a_0700_dir(two: Path) -> None:
    acl.set_default(two, admin=["admins"])
    assert stat.S_IMODE((two / "dss/access/acl.json").stat().st_mode) == 0o600
    assert stat.S_IMODE((two / "dss/access").stat().st_mode) == 0o700


def test_round_trip_through_json(two: Path) -> None:
    acl.set_default(two, read=["public"], write=["lab"], admin=["admins"], create=["lab"])
    acl.set_dataset(two, OTHER, read=["user:alice", "lab", "lab"])
    loaded = acl.load(two)
    assert parse_acl(loaded.to_json()) == loaded
    assert loaded.datasets[OTHER].read == ("user:alice", "lab")


def _nothing_written(store: Path) -> None:
    assert not (store / "dss/access").exists()


def test_an_unknown_dataset_id_is_named_and_nothing_written(two: Path) -> None:
    ghost = "9e8d7c6b-5a49-4838-a726-150f4e3d2c1b"
    with pytest.raises(UnavailableError) as e:
        acl.set_dataset(two, ghost, read=["lab"])
    assert str(e.value) == (f"dataset {ghost} not found in store {two} (create it with `dss "
                            "create-sibling` or check archive-id)")
    _nothing_written(two)


def test_an_unknown_alias_is_named_and_nothing_written(two: Path) -> None:
    with pytest.raises(UnavailableError) as e:
        acl.set_dataset(two, "~nope", read=["lab"])
    assert str(e.value) == f"alias 'nope' not found in store {two} (list aliases with `ls <store>/alias`)"
    _nothing_written(two)


def test_a_dataset_that_is_not_an_id_is_named_and_nothing_written(two: Path) -> None:
    with pytest.raises(UnsafePathError) as e:
        acl.set_dataset(two, "../etc", read=["lab"])
    assert str(e.value).startswith("invalid dataset id '../etc': expected a DataLad dataset id")
    _nothing_written(two)


def test_public_write_is_refused_and_nothing_written(two: Path) -> None:
    with pytest.raises(ConfigError) as e:
        acl.set_dataset(two, PLAIN_DSID, write=["public"])
    assert str(e.value) == ("write access cannot be `public` (anonymous callers may only read); use "
                            "`authenticated` or a group")
    _nothing_written(two)


@pytest.mark.parametrize(("entry", "message"), [
    ("user:", "read entry's user '' is not a valid name"),
    ("la b", "read group 'la b' is not a valid name"),
    ("user:a/b", "read entry's user 'a/b' is not a valid name"),
])
def test_a_bad_read_entry_is_named_and_nothing_written(two: Path, entry: str, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        acl.set_dataset(two, PLAIN_DSID, read=[entry])
    assert str(e.value).startswith(message)
    _nothing_written(two)


@pytest.mark.parametrize("group", ["public", "authenticated", "user:root"])
def test_an_admin_that_is_not_a_group_is_refused_and_nothing_written(two: Path, group: str) -> None:
    with pytest.raises(ConfigError) as e:
        acl.set_default(two, admin=[group])
    assert str(e.value) == f"admin takes group names, not {group!r}"
    _nothing_written(two)


@pytest.mark.parametrize(("doc", "message"), [
    ([], "it must be an object with default, admin, create and datasets"),
    ({"default": {"read": "public"}}, "default.read must be a list of entries"),
    ({"default": {"reed": []}}, "default must be"),
    ({"admin": "admins"}, "admin must be a list of group names"),
    ({"datasets": {"x": {"read": []}}}, "invalid dataset id 'x'"),
    ({"datasets": {PLAIN_DSID: {"write": ["public"]}}}, "write access cannot be `public`"),
])
def test_a_damaged_acl_file_is_named(doc: object, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_acl(doc, "acl.json")
    assert str(e.value).startswith(f"acl.json: {message}")


def test_the_closed_default_is_the_empty_acl() -> None:
    assert parse_acl(None) == Acl() and Acl().to_json() == {"default": {"read": [], "write": []},
                                                             "admin": [], "create": [], "datasets": {}}


def test_concurrent_edits_all_land(store: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor
    ids = [f"{n:x}b2c3d4e-5f60-4b7c-8d9e-0f1a2b3c4d5e" for n in range(10, 16)]
    for dsid in ids:
        ria.create_dataset(ria.open_store(store), dsid)
    with ThreadPoolExecutor(len(ids)) as pool:
        list(pool.map(lambda d: acl.set_dataset(store, d, read=["lab"]), ids))
    assert sorted(acl.load(store).datasets) == sorted(ids)
