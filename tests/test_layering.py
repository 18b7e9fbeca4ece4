"""The import rules of docs/architecture.md, enforced: each package imports only the layers below it.

Every `import`/`from ... import` of every module of ria_store/ and dss_remote/ is resolved (relative
ones too, and those inside functions) and checked against ALLOWED; a failure names the module, the
line and the import that breaks a rule.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: package -> the packages of ours it may import (itself always). "dss_remote" is the package's own
#: __init__ (its __version__).
ALLOWED: dict[str, set[str]] = {
    "ria_store": set(),
    "dss_remote": set(),
    "config": {"ria_store"},
    "backends": {"ria_store"},
    "replication": {"ria_store", "config", "backends"},
    "remote": {"ria_store", "config", "backends", "replication"},
    "history": {"ria_store", "config"},
    "search": {"ria_store", "config", "history", "replication"},
    "webhooks": {"ria_store", "dss_remote", "config", "history", "search"},
    "hook": {"ria_store", "config", "history", "webhooks", "search"},
    "admin": {"ria_store", "config", "backends", "replication", "hook"},
    "access": {"ria_store", "config", "history"},
    "service": {"ria_store", "dss_remote", "config", "backends", "replication", "history", "webhooks",
                "hook", "search"},
    "server": {"ria_store", "config", "backends", "replication", "history", "webhooks", "access",
               "service", "search"},
    "cli": {"ria_store", "dss_remote", "config", "backends", "replication", "history", "webhooks",
            "hook", "admin", "access", "server", "service", "search"},
    # compatibility: hooks installed by 0.1 run `python -m dss_remote.post_update`
    "post_update": {"hook"},
}


def layer_of(module: str) -> str:
    """`dss_remote.replication.fsck` -> "replication"; `ria_store.keys` -> "ria_store"."""
    parts = module.split(".")
    if parts[0] == "ria_store":
        return "ria_store"
    if parts[0] != "dss_remote":
        raise ValueError(module)
    return parts[1] if len(parts) > 1 and not parts[1].startswith("__") else "dss_remote"


def module_name(path: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    is_pkg = parts[-1] == "__init__"
    return ".".join(parts[:-1] if is_pkg else parts), is_pkg


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every import of ours in the file."""
    name, is_pkg = module_name(path)
    here = name.split(".") if is_pkg else name.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[:len(here) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # `from pkg import module` imports pkg.module: check the module, not only the package
            found += [(node.lineno, f"{target}.{a.name}") for a in node.names]
    return [(line, mod) for line, mod in found if mod.split(".")[0] in ("dss_remote", "ria_store")]


def violations() -> list[str]:
    out = []
    for top in ("ria_store", "dss_remote"):
        for path in sorted((ROOT / top).rglob("*.py")):
            own = layer_of(module_name(path)[0])
            for line, target in imports_of(path):
                other = layer_of(target)
                if other != own and other not in ALLOWED[own]:
                    out.append(f"{path.relative_to(ROOT)}:{line}: {own} imports {target} "
                               f"({own} may import only {sorted(ALLOWED[own]) or 'nothing of ours'})")
    return out


def test_every_package_keeps_to_its_layer() -> None:
    assert violations() == []


def test_every_package_has_a_rule() -> None:
    """A new package must get its line in ALLOWED (and in docs/architecture.md)."""
    packages = {p.parent.name for p in (ROOT / "dss_remote").glob("*/__init__.py")}
    assert packages - set(ALLOWED) == set()


def test_top_level_holds_only_remote_and_packages() -> None:
    modules = sorted(p.name for p in (ROOT / "dss_remote").glob("*.py"))
    assert modules == ["__init__.py", "remote.py"]


@pytest.mark.parametrize(("source", "message"), [
    ("from ..history import bundles\n", "replication imports dss_remote.history.bundles"),
    ("from dss_remote.hook.install import has_hook\n", "replication imports dss_remote.hook.install"),
])
def test_the_rule_check_catches_an_upward_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 source: str, message: str) -> None:
    """The checker itself: an upward import planted in replication/ is reported by name and line."""
    fake_root = tmp_path / "repo"
    pkg = fake_root / "dss_remote" / "replication"
    pkg.mkdir(parents=True)
    (fake_root / "dss_remote" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "planted.py").write_text('"""planted"""\n' + source)
    (fake_root / "ria_store").mkdir()
    monkeypatch.setattr(f"{__name__}.ROOT", fake_root)
    found = violations()
    assert len(found) == 1
    assert found[0].startswith("dss_remote/replication/planted.py:2: ") and message in found[0]


def test_cli_holds_no_storage_logic() -> None:
    """The CLI parses, calls the packages and prints: it never lists or names the store's `dss/`
    files itself (it did: `dss subscriptions list` counted dss/outbox/<id>/ with os.listdir)."""
    bad = []
    for path in sorted((ROOT / "dss_remote" / "cli").glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            # the demo works in a directory of its own (checks it is empty, cleans it up)
            if (isinstance(node, ast.Attribute) and node.attr in ("listdir", "scandir", "iterdir", "walk")
                    and path.name != "demo.py"):
                bad.append(f"{path.name}:{node.lineno}: .{node.attr}")
            if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                    and node.value.startswith("dss/")):
                bad.append(f"{path.name}:{node.lineno}: {node.value!r}")
    assert bad == []
