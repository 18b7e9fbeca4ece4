"""A bare repository with a pushed branch, made with plain git (no DataLad, no annex)."""

from __future__ import annotations

from pathlib import Path

from conftest import run


def pushed_repo(base: Path, files: dict[str, str] | None = None) -> Path:
    """`base/repo.git` with `refs/heads/main` at one commit of `files` (a file `a.txt` by default)."""
    work, repo = base / "work", base / "repo.git"
    run("git", "init", "-q", "--bare", repo)
    run("git", "init", "-q", work)
    for name, text in (files or {"a.txt": "a\n"}).items():
        (work / name).write_text(text)
    run("git", "add", ".", cwd=work)
    run("git", "commit", "-qm", "files", cwd=work)
    run("git", "push", "-q", repo, "HEAD:refs/heads/main", cwd=work)
    return repo
