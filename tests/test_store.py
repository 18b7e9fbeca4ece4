"""ria_store.store: creating and opening stores and datasets, aliases, and staying inside the store."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ria_store.errors import LayoutError, UnavailableError, UnsafePathError
from ria_store.layout import alias_target
from ria_store.store import (
    Store,
    check_inside,
    create_dataset,
    create_store,
    iter_datasets,
    open_dataset,
    open_store,
    resolve_alias,
    set_alias,
)

DSID = "4dc8313d-2567-4475-a4a0-17cdebad9c1d"
DSID2 = "0b1e7f00-1234-4abc-8def-0123456789ab"


def tree(root: Path) -> dict[str, str | bytes]:
    """Everything under `root`: directories, symlink targets and file contents."""
    out: dict[str, str | bytes] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = "-> " + os.readlink(p)
            elif p.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = p.read_bytes()
    return out


@pytest.fixture
def store(tmp_path: Path) -> Store:
    root = tmp_path / "store"
    assert create_store(root) is True
    return open_store(root)


# --- create_store -------------------------------------------------------------------------------

def test_create_store_fresh(tmp_path: Path) -> None:
    root = tmp_path / "a" / "store"
    assert create_store(root) is True
    assert tree(root) == {"ria-layout-version": b"1\n", "error_logs": "dir", "alias": "dir"}
    assert open_store(root) == Store(root, "1", frozenset())


def test_create_store_is_idempotent(store: Store) -> None:
    before = tree(store.path)
    assert create_store(store.path) is False
    assert tree(store.path) == before


def test_create_store_adopts_a_datalad_store(tmp_path: Path) -> None:
    from datalad.customremotes.ria_utils import create_store as datalad_create_store
    from datalad.distributed.ora_remote import LocalIO

    root = tmp_path / "dl-store"
    datalad_create_store(LocalIO(), root, "1")
    assert set(tree(root)) == {"ria-layout-version", "error_logs"}
    assert create_store(root) is False
    assert tree(root)["ria-layout-version"] == b"1\n"
    assert tree(root)["alias"] == "dir"


def test_create_store_adopts_a_directory_with_only_error_logs(tmp_path: Path) -> None:
    root = tmp_path / "store"
    (root / "error_logs").mkdir(parents=True)
    (root / "error_logs" / "x.log").write_text("old\n")
    assert create_store(root) is True
    assert (root / "error_logs" / "x.log").read_text() == "old\n"
    assert open_store(root).version == "1"


def test_create_store_refuses_a_foreign_directory(tmp_path: Path) -> None:
    root = tmp_path / "home-dir"
    (root / "thesis").mkdir(parents=True)
    (root / "notes.txt").write_text("mine\n")
    (root / "error_logs").mkdir()
    before = tree(root)
    with pytest.raises(LayoutError, match=r"holds other things \(notes.txt, thesis\)"):
        create_store(root)
    assert tree(root) == before


def test_create_store_refuses_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x")
    with pytest.raises(LayoutError, match="exists and is not a directory"):
        create_store(tmp_path / "f")
    assert (tmp_path / "f").read_bytes() == b"x"


def test_create_store_refuses_an_unknown_store_version(tmp_path: Path) -> None:
    root = tmp_path / "store"
    root.mkdir()
    (root / "ria-layout-version").write_text("7\n")
    with pytest.raises(LayoutError, match="ria-layout-version '7'"):
        create_store(root)
    assert tree(root) == {"ria-layout-version": b"7\n"}


# --- open_store ---------------------------------------------------------------------------------

def test_store_missing(tmp_path: Path) -> None:
    with pytest.raises(UnavailableError, match=r"store .*/nowhere not found"):
        open_store(tmp_path / "nowhere")


def test_store_missing_layout_version(tmp_path: Path) -> None:
    with pytest.raises(LayoutError, match="has no ria-layout-version file, so it is not a RIA store"):
        open_store(tmp_path)


def test_store_unknown_layout_version(tmp_path: Path) -> None:
    (tmp_path / "ria-layout-version").write_text("2\n")
    with pytest.raises(LayoutError, match=r"ria-layout-version '2'.*known: 1\).*upgrade"):
        open_store(tmp_path)


def test_store_bad_layout_version_file(tmp_path: Path) -> None:
    (tmp_path / "ria-layout-version").write_text("1|l|x\n")
    with pytest.raises(LayoutError, match=r"invalid ria-layout-version content '1\|l\|x'"):
        open_store(tmp_path)


def test_store_layout_version_is_a_directory(tmp_path: Path) -> None:
    (tmp_path / "ria-layout-version").mkdir()
    with pytest.raises(LayoutError, match="is a directory"):
        open_store(tmp_path)


def test_store_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"")
    with pytest.raises(LayoutError, match="is not a directory"):
        open_store(tmp_path / "f")


def test_store_with_logging_flag(tmp_path: Path) -> None:
    (tmp_path / "ria-layout-version").write_text("1|l\n")
    assert open_store(tmp_path) == Store(tmp_path, "1", frozenset("l"))


# --- datasets -----------------------------------------------------------------------------------

def test_create_dataset(store: Store) -> None:
    path = create_dataset(store, DSID)
    assert path == store.path / "4dc" / DSID[3:]
    assert tree(path) == {"ria-layout-version": b"2\n", "annex": "dir", "annex/objects": "dir",
                          "archives": "dir"}
    ds = open_dataset(store, DSID)
    assert (ds.dataset_id, ds.path, ds.version, ds.flags) == (DSID, path, "2", frozenset())


def test_create_dataset_is_idempotent(store: Store) -> None:
    create_dataset(store, DSID, alias="sample")
    (store.dataset_dir(DSID) / "annex" / "objects" / "kept").write_bytes(b"x")
    before = tree(store.path)
    assert create_dataset(store, DSID, alias="sample") == store.dataset_dir(DSID)
    assert tree(store.path) == before


def test_create_dataset_object_tree_v1_and_flags(tmp_path: Path) -> None:
    (tmp_path / "ria-layout-version").write_text("1|l\n")
    store = open_store(tmp_path)
    create_dataset(store, DSID, object_tree_version="1")
    ds = open_dataset(store, DSID)
    assert (ds.version, ds.flags) == ("1", frozenset("l"))


def test_create_dataset_bad_id_creates_nothing(store: Store) -> None:
    before = tree(store.path)
    with pytest.raises(UnsafePathError, match="invalid dataset id"):
        create_dataset(store, "../../x")
    with pytest.raises(UnsafePathError, match="invalid alias"):
        create_dataset(store, DSID, alias="../x")
    assert tree(store.path) == before


def test_dataset_dir_missing(store: Store) -> None:
    with pytest.raises(UnavailableError, match=f"dataset {DSID} not found in store"):
        open_dataset(store, DSID)


def test_dataset_missing_layout_version(store: Store) -> None:
    store.dataset_dir(DSID).mkdir(parents=True)
    with pytest.raises(LayoutError, match="has no ria-layout-version file"):
        open_dataset(store, DSID)


def test_dataset_unknown_layout_version(store: Store) -> None:
    create_dataset(store, DSID)
    (store.dataset_dir(DSID) / "ria-layout-version").write_text("3\n")
    with pytest.raises(LayoutError, match=r"ria-layout-version '3'.*known: 1, 2"):
        open_dataset(store, DSID)
    before = tree(store.path)
    with pytest.raises(LayoutError, match="ria-layout-version '3'"):
        create_dataset(store, DSID)
    assert tree(store.path) == before


def test_datalad_made_dataset_opens(tmp_path: Path) -> None:
    from datalad.customremotes.ria_utils import create_ds_in_store
    from datalad.customremotes.ria_utils import create_store as datalad_create_store
    from datalad.distributed.ora_remote import LocalIO

    datalad_create_store(LocalIO(), tmp_path, "1")
    create_ds_in_store(LocalIO(), tmp_path, DSID, "2", "1", alias="dl")
    store = open_store(tmp_path)
    assert open_dataset(store, DSID).version == "2"
    assert resolve_alias(store, "dl") == DSID
    set_alias(store, DSID, "dl")  # DataLad's link is the one we would write


# --- aliases ------------------------------------------------------------------------------------

def test_set_alias(store: Store) -> None:
    create_dataset(store, DSID)
    set_alias(store, DSID, "sample")
    link = store.path / "alias" / "sample"
    assert os.readlink(link) == alias_target(DSID) == f"../4dc/{DSID[3:]}"
    assert resolve_alias(store, "sample") == DSID
    set_alias(store, DSID, "sample")
    assert os.readlink(link) == alias_target(DSID)


def test_alias_conflict(store: Store) -> None:
    create_dataset(store, DSID, alias="sample")
    create_dataset(store, DSID2)
    before = tree(store.path)
    with pytest.raises(LayoutError, match=f"alias 'sample' .* already names dataset {DSID}"):
        set_alias(store, DSID2, "sample")
    assert tree(store.path) == before


def test_alias_conflict_with_a_plain_file(store: Store) -> None:
    (store.path / "alias" / "sample").write_bytes(b"not a link")
    before = tree(store.path)
    with pytest.raises(LayoutError, match="already names dataset something else"):
        set_alias(store, DSID, "sample")
    assert tree(store.path) == before


def test_resolve_alias_missing(store: Store) -> None:
    with pytest.raises(UnavailableError, match="alias 'nope' not found"):
        resolve_alias(store, "nope")


def test_resolve_alias_to_a_missing_dataset(store: Store) -> None:
    (store.path / "alias" / "gone").symlink_to(alias_target(DSID))
    with pytest.raises(UnavailableError, match=f"points to missing dataset {DSID}"):
        resolve_alias(store, "gone")
    assert resolve_alias(store, "gone", check=False) == DSID


def test_alias_symlink_out_of_store_rejected(store: Store, tmp_path: Path) -> None:
    outside = tmp_path / "outside" / "4dc" / DSID[3:]
    outside.mkdir(parents=True)
    (outside / "ria-layout-version").write_text("2\n")
    (store.path / "alias" / "x").symlink_to(outside)
    with pytest.raises(UnsafePathError, match="points outside the store's dataset directories"):
        resolve_alias(store, "x")


@pytest.mark.parametrize("target", ["../error_logs", "..", f"../4dc/{DSID[3:]}/annex"])
def test_alias_symlink_to_a_non_dataset_dir_rejected(store: Store, target: str) -> None:
    create_dataset(store, DSID)
    (store.path / "alias" / "x").symlink_to(target)
    with pytest.raises(UnsafePathError, match="points outside"):
        resolve_alias(store, "x")


# --- check_inside, iter_datasets ----------------------------------------------------------------

def test_check_inside(tmp_path: Path) -> None:
    base = tmp_path / "base"
    (base / "sub").mkdir(parents=True)
    (tmp_path / "out").mkdir()
    (base / "sub" / "ok").symlink_to("..")
    (base / "sub" / "escape").symlink_to(tmp_path / "out")
    assert check_inside(base, base / "sub" / "file", "object") == base / "sub" / "file"
    assert check_inside(base, base / "sub" / "ok" / "sub", "object") == base / "sub"
    with pytest.raises(UnsafePathError, match=r"object .*/escape/k resolves to .*/out/k, outside"):
        check_inside(base, base / "sub" / "escape" / "k", "object")
    with pytest.raises(UnsafePathError, match="outside"):
        check_inside(base, base / ".." / "out", "object")


def test_check_inside_a_store_reached_through_a_symlink(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "via").symlink_to(tmp_path / "real")
    assert check_inside(tmp_path / "via", tmp_path / "via" / "k", "object") == tmp_path / "real" / "k"


def test_iter_datasets(store: Store) -> None:
    assert list(iter_datasets(store)) == []
    create_dataset(store, DSID, alias="a")
    create_dataset(store, DSID2)
    (store.path / "abc" / "not-an-id").mkdir(parents=True)
    (store.path / "xyz").write_bytes(b"")
    (store.path / "4dc" / "8313d-2567-4475-a4a0-17cdebad9c1e").write_bytes(b"a stray file")
    assert list(iter_datasets(store)) == [DSID2, DSID]
