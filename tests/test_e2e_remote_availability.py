"""Where the store is, as real `git annex` sees it: unmounted (CHECKPRESENT unknown, drop refused), mounted
elsewhere (the `dss-url` override), reached over HTTP by a DataLad clone whose node mounts it anyway
(the mounted store wins over `ora-url`), and INITREMOTE refusing bad settings without writing anything.

The protocol-level twins of these (tests/test_bad_input_remote.py, tests/test_remote_protocol.py) talk
to the in-memory double; here git-annex itself reads the replies, exit codes and messages.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from conftest import SAMPLE, annex_keys, require_tool, run, write_files
from file_servers import serve_http

from dss_remote.admin.sibling import Sibling
from ria_store.layout import dataset_relpath, object_relpath

FILE = "small.txt"


def tree(root: Path) -> list[str]:
    """Every path under root (files, dirs, links), to show a failed command changed nothing."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def remote_log(repo: Path) -> str:
    return run("git", "show", "git-annex:remote.log", cwd=repo).stdout


def assert_sample(repo: Path) -> None:
    for rel, data in SAMPLE.items():
        assert (repo / rel).read_bytes() == data, rel


# -- (a) the store is not mounted: "can't tell", never "absent" -------------------------------------

def test_checkpresentkey_exits_100_when_the_store_is_missing(published: Sibling, store: Path,
                                                             dataset: Path, tmp_path: Path) -> None:
    key = annex_keys(dataset)[FILE]
    assert run("git", "annex", "checkpresentkey", key, "store-storage", cwd=dataset).returncode == 0
    os.rename(store, tmp_path / "unmounted")
    res = run("git", "annex", "checkpresentkey", key, "store-storage", cwd=dataset, check=False)
    assert res.returncode == 100, res.stderr  # 1 would mean "not present"
    assert (f"store {store} not found (is the file system mounted on this machine? create a store "
            "with `dss init`)") in res.stderr


def test_checkpresentkey_exits_100_when_the_mount_point_is_empty(published: Sibling, store: Path,
                                                                 dataset: Path, tmp_path: Path) -> None:
    key = annex_keys(dataset)[FILE]
    os.rename(store, tmp_path / "unmounted")
    store.mkdir()  # the mount point of a file system that is not mounted
    res = run("git", "annex", "checkpresentkey", key, "store-storage", cwd=dataset, check=False)
    assert res.returncode == 100, res.stderr
    assert (f"store {store} has no ria-layout-version file, so it is not a RIA store (create it with "
            "`dss init` or fix the URL)") in res.stderr
    assert tree(store) == [], "nothing was written into the mount point"


def test_drop_of_the_last_local_copy_is_refused_while_the_store_is_unmounted(
        published: Sibling, store: Path, dataset: Path, tmp_path: Path) -> None:
    os.rename(store, tmp_path / "unmounted")
    res = run("git", "annex", "drop", FILE, cwd=dataset, check=False)
    assert res.returncode == 1
    out = res.stdout + res.stderr
    assert "Could not verify the existence of the 1 necessary copy." in out
    assert "Unable to access these remotes: store-storage" in out
    assert (dataset / FILE).read_bytes() == SAMPLE[FILE]
    assert run("git", "annex", "find", "--in=here", FILE, cwd=dataset).stdout.strip() == FILE


# -- (b) the store is mounted elsewhere on this node: remote.<name>.dss-url -------------------------

def test_dss_url_override_gets_from_a_store_mounted_elsewhere(published: Sibling, store: Path,
                                                              dataset: Path, tmp_path: Path) -> None:
    run("git", "annex", "drop", ".", cwd=dataset)
    log = remote_log(dataset)
    elsewhere = tmp_path / "mnt" / "lab-store"
    elsewhere.parent.mkdir()
    os.rename(store, elsewhere)
    res = run("git", "annex", "get", FILE, cwd=dataset, check=False)
    assert res.returncode == 1 and f"store {store} not found" in res.stderr
    run("git", "config", "remote.store-storage.dss-url", f"ria+file://{elsewhere}", cwd=dataset)
    run("git", "annex", "get", ".", cwd=dataset)
    assert_sample(dataset)
    assert remote_log(dataset) == log, "the override is this clone's; the shared url is unchanged"
    assert f"url=ria+file://{store} " in log


# -- (c) a mounted store wins over ora-url ------------------------------------------------------------

def _verify(clone: Path) -> None:
    """git-annex refuses writes to an autoenabled special remote until someone vouches for it."""
    out = run("git", "annex", "verifyremote", "store-storage", cwd=clone).stdout
    m = re.search(r"verifyremote store-storage --safe (\S+)", out)
    assert m is not None, out
    run("git", "annex", "verifyremote", "store-storage", "--safe", m.group(1), cwd=clone)


def test_a_mounted_store_wins_over_the_ora_url_of_an_http_clone(published: Sibling, store: Path,
                                                                tmp_path: Path) -> None:
    """`datalad clone ria+http://…` points the remote at the web copy (ora-url). Where the store's own
    path is mounted, dss reads and writes it there, never asking the web server."""
    require_tool("datalad")
    clone = tmp_path / "clone"
    with serve_http(store) as web:
        run("datalad", "-l", "error", "clone", f"ria+{web.url}#{published.dataset_id}", clone)
        ora_url = run("git", "config", "remote.store-storage.ora-url", cwd=clone).stdout.strip()
        assert ora_url == f"ria+{web.url}"
        web.force(500)  # from here on, anything read over HTTP fails
        run("git", "annex", "get", ".", cwd=clone)
        assert_sample(clone)
        _verify(clone)
        write_files(clone, {"new.bin": os.urandom(5000)})
        run("git", "annex", "add", "new.bin", cwd=clone)
        run("git", "annex", "copy", "--to", "store-storage", "new.bin", cwd=clone)  # HTTP cannot write
        key = annex_keys(clone)["new.bin"]
        stored = store / dataset_relpath(published.dataset_id) / object_relpath(key, "2")
        assert stored.read_bytes() == (clone / "new.bin").read_bytes()


def test_without_the_mount_an_http_clone_reads_the_web_copy_and_cannot_write(
        published: Sibling, store: Path, tmp_path: Path) -> None:
    """The other side of the rule above: a node without the store's path uses ora-url, read-only."""
    require_tool("datalad")
    clone = tmp_path / "clone"
    served = tmp_path / "served"
    with serve_http(served) as web:
        os.rename(store, served)  # the web copy keeps serving what the store held
        run("datalad", "-l", "error", "clone", f"ria+{web.url}#{published.dataset_id}", clone)
        run("git", "annex", "get", ".", cwd=clone)
        assert_sample(clone)
        _verify(clone)
        write_files(clone, {"new.bin": os.urandom(5000)})
        run("git", "annex", "add", "new.bin", cwd=clone)
        before = tree(served)
        res = run("git", "annex", "copy", "--to", "store-storage", "new.bin", cwd=clone, check=False)
        assert res.returncode == 1
        assert "reaches the store read-only" in res.stderr
        assert tree(served) == before


# -- (d) INITREMOTE refuses bad settings and writes nothing -----------------------------------------

@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A fresh git-annex repository with no special remote yet."""
    require_tool("git-annex")
    require_tool("git-annex-remote-dss")
    path = tmp_path / "repo"
    run("git", "init", "-q", path)
    run("git", "annex", "init", "-q", "repo", cwd=path)
    return path


def assert_initremote_fails(repo: Path, params: list[str], message: str) -> None:
    """`git annex initremote` exits 1 printing `git-annex: <message>` as one line; the repo's config
    and git-annex branch are as before (no remote recorded, nothing to enable later)."""
    config = run("git", "config", "--local", "-l", cwd=repo).stdout
    branch = run("git", "rev-parse", "git-annex", cwd=repo).stdout
    res = run("git", "annex", "initremote", "dss", "type=external", "externaltype=dss",
              "encryption=none", *params, cwd=repo, check=False)
    assert res.returncode == 1, res.stdout + res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("git-annex: ")]
    assert errors == [f"git-annex: {message}"], res.stderr
    assert run("git", "config", "--local", "-l", cwd=repo).stdout == config
    assert run("git", "rev-parse", "git-annex", cwd=repo).stdout == branch
    assert run("git", "ls-tree", "--name-only", "git-annex", "remote.log", cwd=repo).stdout == ""
    assert not (repo / ".git" / "annex" / "journal" / "remote.log").exists(), "nor waiting to be committed"


def test_initremote_without_url_fails(repo: Path) -> None:
    assert_initremote_fails(repo, [], "url= is required, e.g. `git annex initremote NAME type=external "
                            "externaltype=dss encryption=none url=ria+file:///data/store`")


def test_initremote_with_an_unsupported_scheme_fails(repo: Path) -> None:
    assert_initremote_fails(repo, ["url=ria+ftp://host/store"],
                            "unsupported scheme 'ria+ftp' in 'ria+ftp://host/store' (use "
                            "ria+file:///abs/path, ria+ssh://[user@]host[:port]/abs/path or "
                            "ria+http(s)://host/path)")


def test_initremote_with_a_dataset_url_fails(repo: Path, store: Path) -> None:
    before = tree(store)
    assert_initremote_fails(repo, [f"url=ria+file://{store}#~sample"],
                            f"store URL 'ria+file://{store}#~sample' has a fragment ('#~sample'): a "
                            "store URL names the store only; drop '#...' (dataset URLs are for "
                            "`datalad clone`)")
    assert tree(store) == before


def test_initremote_with_a_plain_file_url_fails(repo: Path, store: Path) -> None:
    before = tree(store)
    assert_initremote_fails(repo, [f"url=file://{store}"],
                            f"not a RIA store URL: 'file://{store}' (use ria+file:///abs/path, "
                            "ria+ssh://[user@]host[:port]/abs/path or ria+http(s)://host/path)")
    assert tree(store) == before


@pytest.mark.parametrize("url", ["ria+ssh://host/store", "ria+http://127.0.0.1:9/store"])
def test_initremote_over_ssh_or_http_fails(repo: Path, url: str) -> None:
    assert_initremote_fails(repo, [f"url={url}"],
                            f"url {url}: the dss remote reaches stores through a mounted path, and the "
                            "store's mirrors; mount the store and set url=ria+file:///path (or per "
                            "clone: git config remote.NAME.dss-url ria+file:///path), or use DataLad's "
                            "ora remote for ria+ssh")


def test_initremote_with_an_archive_id_that_climbs_fails(repo: Path, store: Path) -> None:
    before = tree(store)
    assert_initremote_fails(repo, [f"url=ria+file://{store}", "archive-id=../../x"],
                            "invalid dataset id '../../x': expected a DataLad dataset id like "
                            "'4dc8313d-2567-4475-a4a0-17cdebad9c1d' (see `datalad.dataset.id` in "
                            ".datalad/config)")
    assert tree(store) == before
