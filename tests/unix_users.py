"""Throwaway Unix users in one group, for tests of a store that two real users share (root only).

`unix_group(base, {"a": 0o022, "b": 0o077})` creates a group and one user per key with
`groupadd`/`useradd` (unique names; each user also gets a primary group of their own, so only the
store's setgid directories can give a file the shared group), each with a HOME under `base` holding
a git identity, and yields them. When the block ends, also on failure, it ends every process the
users still run (the deliverer a push started, say) by pid, then removes the users and the groups.
`User.run` runs a command as the user through `setpriv`, with an environment built from scratch:
HOME, our tools on PATH (`tools_for_others`), the markers leftover_processes.py follows, and the
user's umask.
"""

from __future__ import annotations

import contextlib
import grp
import os
import secrets
import stat
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from conftest import BINDIR, require_tool, run

# passed on from the test's environment: leftover_processes.py finds what the users left running
_PASSED_ON = ("DSS_TEST_ID", "DSS_TEST_RUN", "LANG", "LC_ALL")
_SYSTEM_PATH = ("/usr/local/bin", "/usr/bin", "/bin")
_TOOLS_HINT = "apt-get install passwd util-linux (useradd, groupadd, setpriv)"
_TERM_GRACE = 5.0


@dataclass(frozen=True)
class User:
    """A throwaway user: its own primary group, membership in the shared group, a umask."""

    name: str
    uid: int
    gid: int
    shared_gid: int
    home: Path
    umask: int
    bindir: str

    def env(self) -> dict[str, str]:
        env = {"HOME": str(self.home), "USER": self.name, "LOGNAME": self.name,
               "PATH": os.pathsep.join([self.bindir, *_SYSTEM_PATH]), "GIT_CONFIG_NOSYSTEM": "1"}
        env.update({k: os.environ[k] for k in _PASSED_ON if k in os.environ})
        return env

    def command(self, *cmd: str | Path) -> list[str]:
        """`cmd` as this user: its uid, primary group and groups, its environment and umask."""
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}",
                f"--groups={self.gid},{self.shared_gid}", "--",
                "env", "-i", *(f"{k}={v}" for k, v in self.env().items()),
                "sh", "-c", f'umask {self.umask:03o} && exec "$@"', "sh", *map(str, cmd)]

    def run(self, *cmd: str | Path, cwd: Path | None = None, check: bool = True,
            timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return run(*self.command(*cmd), cwd=cwd or self.home, check=check, timeout=timeout)

    def write(self, path: Path, data: bytes) -> None:
        """Write a file (and missing directories) in a place of the user's, owned by the user."""
        missing = [p for p in [path.parent, *path.parent.parents] if not p.exists()]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        for p in [path, *missing]:
            os.chown(p, self.uid, self.gid)


@dataclass(frozen=True)
class Team:
    """The shared group and its throwaway members, by the keys they were asked for."""

    group: str
    gid: int
    users: dict[str, User]


def _reachable_by_others(path: Path) -> bool:
    """Whether any user may reach `path`: every directory on the way searchable by others."""
    return all(p.stat().st_mode & stat.S_IXOTH for p in [path, *path.parents])


def tools_for_others(base: Path) -> str:
    """A bin directory from which other users can run this venv's programs (dss, datalad, git-annex).

    This venv's own when they can reach its Python. Where that Python lives under a private
    directory (CI's is under /root, 0700), a venv in `base` over the system's Python of the same
    version, which loads this venv's packages (a .pth file), with this venv's scripts copied into
    it under its own interpreter line."""
    if _reachable_by_others(Path(sys.base_prefix).resolve()):
        return BINDIR
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    system = Path(f"/usr/bin/python{version}")
    if not system.is_file():
        pytest.fail(f"other users cannot run {sys.executable} (it lives under a directory only its "
                    f"owner may enter) and there is no {system}: install python{version} "
                    f"(apt-get install python{version}) or make a venv from a Python outside /root")
    venv = base / "tools-venv"
    run(system, "-m", "venv", "--without-pip", venv)
    site_dir = venv / "lib" / f"python{version}" / "site-packages"
    (site_dir / "dss-test-venv.pth").write_text(
        f"import site; site.addsitedir({sysconfig.get_paths()['purelib']!r})\n")
    python = venv / "bin" / "python3"
    for script in sorted(Path(BINDIR).iterdir()):
        target = venv / "bin" / script.name
        if target.exists() or not script.is_file():
            continue
        with script.open("rb") as f:
            first = f.readline()
        if first.startswith(b"#!") and b"python" in first:
            target.write_bytes(b"#!" + str(python).encode() + b"\n" + script.read_bytes()[len(first):])
            target.chmod(0o755)
    return str(venv / "bin")


def _ids(name: str) -> tuple[int, int]:
    out = run("id", "-u", name).stdout.strip(), run("id", "-g", name).stdout.strip()
    return int(out[0]), int(out[1])


def _end_processes(uids: set[int]) -> None:
    """End what the throwaway users still run (by pid): SIGTERM, then SIGKILL after a grace time."""
    procs = []
    for proc in psutil.process_iter(["uids"]):
        uids_of = proc.info.get("uids")
        if uids_of is not None and uids_of.real in uids:
            procs.append(proc)
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.terminate()
    _gone, alive = psutil.wait_procs(procs, timeout=_TERM_GRACE)
    for proc in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(alive, timeout=_TERM_GRACE)


def _group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


@contextlib.contextmanager
def searchable_by_others(paths: list[Path]) -> Iterator[list[Path]]:
    """Give others search permission (o+x, never read) on the directories on the way to `paths`
    that lack it, for the block's duration; restored after, also on failure. The tools the other
    users run import this venv's packages and this checkout's code: a CI checkout or venv below a
    private directory would otherwise be out of their reach. Yields the directories it opened."""
    opened: list[tuple[Path, int]] = []
    try:
        for path in paths:
            for d in reversed([path, *path.parents]):
                mode = d.stat().st_mode
                if stat.S_ISDIR(mode) and not mode & stat.S_IXOTH and d not in [o for o, _ in opened]:
                    os.chmod(d, stat.S_IMODE(mode) | stat.S_IXOTH)
                    opened.append((d, stat.S_IMODE(mode)))
        yield [d for d, _ in opened]
    finally:
        for d, mode in reversed(opened):
            with contextlib.suppress(OSError):
                os.chmod(d, mode)


#: what other users' tools load: this venv's packages and this checkout (dss_remote is installed editable)
_CODE_PATHS = [Path(sysconfig.get_paths()["purelib"]), Path(BINDIR), Path(__file__).resolve().parent.parent]


@contextlib.contextmanager
def unix_group(base: Path, umasks: dict[str, int]) -> Iterator[Team]:
    """A new group with one new member per key of `umasks` (its umask); all removed at the end."""
    if os.geteuid() != 0:
        pytest.fail("this test needs root: it creates throwaway Unix users and a group (useradd, "
                    "groupadd) and runs commands as them (setpriv); run it as root, as CI does")
    for tool in ("groupadd", "groupdel", "useradd", "userdel", "setpriv"):
        require_tool(tool, _TOOLS_HINT)
    tag = secrets.token_hex(3)
    group = f"dss{tag}g"
    made: list[User] = []
    with contextlib.ExitStack() as stack:
        bindir = tools_for_others(base)
        stack.enter_context(searchable_by_others([p for p in _CODE_PATHS if not _reachable_by_others(p)]))
        yield from _members(base, umasks, tag, group, bindir=bindir, made=made)


def _members(base: Path, umasks: dict[str, int], tag: str, group: str, *, bindir: str,
             made: list[User]) -> Iterator[Team]:
    """unix_group's body: the group and its users, removed at the end, also on failure."""
    group_made = False
    try:
        run("groupadd", group)
        group_made = True
        gid = grp.getgrnam(group).gr_gid
        for key, umask in umasks.items():
            name = f"dss{tag}{key}"
            home = base / f"home-{key}"
            run("useradd", "--no-create-home", "--user-group", "--groups", group, "--home-dir", home,
                "--shell", "/bin/sh", name)
            uid, primary = _ids(name)
            user = User(name, uid, primary, gid, home, umask, bindir)
            made.append(user)
            home.mkdir(mode=0o700)
            os.chown(home, uid, primary)
            user.write(home / ".gitconfig", (
                f"[user]\n\tname = {name}\n\temail = {name}@example.invalid\n"
                "[init]\n\tdefaultBranch = main\n[advice]\n\tdetachedHead = false\n").encode())
        yield Team(group, gid, {u.name.removeprefix(f"dss{tag}"): u for u in made})
    finally:
        _end_processes({u.uid for u in made})
        for u in made:
            run("userdel", u.name, check=False)
            if _group_exists(u.name):  # the user's own group, where userdel keeps it
                run("groupdel", u.name, check=False)
        if group_made:
            run("groupdel", group, check=False)
