"""`dss` as users run it: exit codes, one-line errors, idempotence, and the README's demo."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pkgutil
from pathlib import Path

from conftest import require_tool, run

from dss_remote import cli
from ria_store.layout import dataset_relpath


def dss(*args: str | Path, cwd: Path | None = None, check: bool = False):  # type: ignore[no-untyped-def]
    return run(require_tool("dss"), *args, cwd=cwd, check=check)


def test_the_command_table_names_the_module_that_registers_each_command() -> None:
    """`dss COMMAND` imports only the module cli.COMMANDS names: it must be the one registering it."""
    registered: dict[str, str] = {}
    for info in pkgutil.iter_modules(cli.__path__):
        if info.name.startswith("_"):  # __main__ runs dss
            continue
        module = importlib.import_module(f"{cli.__name__}.{info.name}")
        if hasattr(module, "register"):
            sub = argparse.ArgumentParser().add_subparsers()
            module.register(sub)
            registered.update(dict.fromkeys(sub.choices, info.name))
    assert registered == cli.COMMANDS
    assert sorted(cli.build_parser(["pack"])._subparsers._group_actions[0].choices) == ["pack"]  # type: ignore[union-attr]
    assert sorted(cli.build_parser()._subparsers._group_actions[0].choices) == sorted(cli.COMMANDS)  # type: ignore[union-attr]


def test_init_creates_then_is_idempotent(tmp_path: Path) -> None:
    root = tmp_path / "store"
    first = dss("init", root)
    assert first.returncode == 0 and "created store" in first.stdout
    assert (root / "ria-layout-version").read_text() == "1\n"
    assert (root / "error_logs").is_dir() and (root / "alias").is_dir()
    assert json.loads((root / "dss" / "config.json").read_text()) == {"mirrors": [], "version": 1}
    listing = sorted(p.name for p in root.iterdir())
    second = dss("init", root)
    assert second.returncode == 0 and "nothing to do" in second.stdout
    assert sorted(p.name for p in root.iterdir()) == listing


def test_init_adopts_a_store_datalad_created(tmp_path: Path) -> None:
    root = tmp_path / "store"
    (root / "error_logs").mkdir(parents=True)
    (root / "ria-layout-version").write_text("1\n")
    res = dss("init", root)
    assert res.returncode == 0 and "adopted" in res.stdout
    assert (root / "dss" / "config.json").is_file()


def test_init_refuses_a_directory_holding_something_else(tmp_path: Path) -> None:
    root = tmp_path / "data"
    root.mkdir()
    (root / "thesis.tex").write_text("precious")
    res = dss("init", root)
    assert res.returncode == 1
    assert res.stderr.strip().splitlines() == [
        f"dss: error: cannot create a store at {root}: the directory holds other things "
        "(thesis.tex); choose an empty or new directory"]
    assert [p.name for p in root.iterdir()] == ["thesis.tex"]


def test_init_refuses_unknown_layout_version(tmp_path: Path) -> None:
    root = tmp_path / "store"
    root.mkdir()
    (root / "ria-layout-version").write_text("9\n")
    res = dss("init", root)
    assert res.returncode == 1 and "ria-layout-version '9'" in res.stderr


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert dss().returncode == 2
    assert dss("no-such-command").returncode == 2
    assert dss("create-sibling", "ria+file:///x").returncode == 2  # --name missing
    assert dss("--help").returncode == 0


def test_create_sibling_refuses_a_plain_git_repo(store: Path, tmp_path: Path) -> None:
    repo = tmp_path / "plain"
    run("git", "init", "-q", repo)
    res = dss("create-sibling", "-d", repo, "--name", "store", f"ria+file://{store}")
    assert res.returncode == 1
    assert "is not a DataLad dataset" in res.stderr and "datalad create" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_create_sibling_store_missing(dataset: Path, tmp_path: Path) -> None:
    res = dss("create-sibling", "-d", dataset, "--name", "store", f"ria+file://{tmp_path}/nostore")
    assert res.returncode == 1 and "not found" in res.stderr and "dss init" in res.stderr
    assert not (tmp_path / "nostore").exists()


def test_create_sibling_bad_urls(dataset: Path, store: Path) -> None:
    for url, expect in ((f"ria+file://{store}#abc", "has a fragment"),
                        ("ria+gopher://host/x", "unsupported scheme 'ria+gopher'"),
                        ("ria+http://host/store", "mounted path")):
        res = dss("create-sibling", "-d", dataset, "--name", "store", url)
        assert res.returncode == 1 and expect in res.stderr, res.stderr


def test_create_sibling_alias_escape_and_conflict(dataset: Path, store: Path, tmp_path: Path) -> None:
    before = sorted(str(p) for p in store.rglob("*"))
    for alias in ("../evil", "/abs", "a/b", ".hidden"):
        res = dss("create-sibling", "-d", dataset, "--name", "store", f"ria+file://{store}", "--alias", alias)
        assert res.returncode == 1 and f"invalid alias {alias!r}" in res.stderr
    (store / "alias" / "taken").symlink_to("../abc/def")
    res = dss("create-sibling", "-d", dataset, "--name", "store", f"ria+file://{store}", "--alias", "taken")
    assert res.returncode == 1 and "already names" in res.stderr
    after = sorted(str(p) for p in store.rglob("*"))
    assert after == sorted([*before, str(store / "alias" / "taken")])
    assert run("git", "remote", cwd=dataset).stdout == ""


def test_create_sibling_is_idempotent(dataset: Path, store: Path) -> None:
    args = ("create-sibling", "-d", dataset, "--name", "store", f"ria+file://{store}", "--alias", "a1")
    first = dss(*args, check=True)
    second = dss(*args, check=True)
    assert first.stdout == second.stdout
    dsid = run("git", "config", "-f", ".datalad/config", "datalad.dataset.id", cwd=dataset).stdout.strip()
    dsdir = store / dataset_relpath(dsid)
    assert (dsdir / "ria-layout-version").read_text() == "2\n"
    assert (dsdir / "annex" / "objects").is_dir() and (dsdir / "HEAD").is_file()
    assert os.readlink(store / "alias" / "a1") == f"../{dataset_relpath(dsid)}"
    cfg = run("git", "config", "-l", cwd=dataset).stdout
    assert "remote.store.annex-ignore=true" in cfg
    assert "remote.store.datalad-publish-depends=store-storage" in cfg
    assert cfg.count("remote.store-storage.annex-uuid=") == 1
    uuid = run("git", "config", "remote.store-storage.annex-uuid", cwd=dataset).stdout.strip()
    assert run("git", f"--git-dir={dsdir}", "config", "datalad.ora-remote.uuid").stdout.strip() == uuid
    remote_log = run("git", "cat-file", "-p", "git-annex:remote.log", cwd=dataset).stdout
    assert "externaltype=dss" in remote_log and "autoenable=true" in remote_log
    assert f"archive-id={dsid}" in remote_log and f"url=ria+file://{store}" in remote_log


def test_demo_runs_the_whole_round_trip(tmp_path: Path) -> None:
    res = dss("demo", "--dir", tmp_path / "demo", check=True)
    assert "clone enabled the dss remote by itself" in res.stdout
    assert "3 keys stored" in res.stdout and "retrieved and verified" in res.stdout
    assert (tmp_path / "demo" / "clone" / "data" / "signal.bin").stat().st_size == 3 << 20
    # the round trip: dss clone verified the store's remote, the clone pushed a file back, and a
    # second clone got it
    assert "verified store-storage: it points at the store cloned from" in res.stdout
    assert "a change pushed back from the clone" in res.stdout and "seen by a second clone" in res.stdout
    pushed = tmp_path / "demo" / "second-clone" / "results" / "summary.csv"
    assert pushed.read_bytes() == (tmp_path / "demo" / "clone" / "results" / "summary.csv").read_bytes()
