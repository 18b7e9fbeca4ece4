"""End to end with real DataLad and git-annex: create-sibling, push, clone (by id and alias), get, fsck."""

from __future__ import annotations

from pathlib import Path

from conftest import SAMPLE, annex_keys, run

from dss_remote.admin.sibling import Sibling
from ria_store.layout import object_relpath


def test_push_stores_every_key_at_its_ria_path(published: Sibling, dataset: Path) -> None:
    keys = annex_keys(dataset)
    assert set(keys) == {p for p in SAMPLE}
    for path, key in keys.items():
        obj = published.dataset_dir / object_relpath(key, "2")
        assert obj.read_bytes() == (dataset / path).read_bytes()
    # the bare repo got the history too
    head = run("git", "rev-parse", "HEAD", cwd=dataset).stdout.strip()
    bare = run("git", f"--git-dir={published.dataset_dir}", "rev-parse", "main").stdout.strip()
    assert bare == head


def test_clone_by_id_and_alias_then_get_and_fsck(published: Sibling, store: Path, tmp_path: Path) -> None:
    for frag in (published.dataset_id, "~sample"):
        dest = tmp_path / f"clone-{frag.strip('~')}"
        run("datalad", "-l", "error", "clone", f"ria+file://{store}#{frag}", dest)
        run("datalad", "-l", "error", "get", ".", cwd=dest)
        for rel, data in SAMPLE.items():
            assert (dest / rel).read_bytes() == data
        fsck = run("git", "annex", "fsck", "--json", cwd=dest).stdout
        assert fsck.count('"success":true') == len(SAMPLE)
        assert '"success":false' not in fsck
        # the remote came up by itself (autoenable), as a dss remote
        kind = run("git", "config", "remote.store-storage.annex-externaltype", cwd=dest).stdout
        assert kind.strip() == "dss"
