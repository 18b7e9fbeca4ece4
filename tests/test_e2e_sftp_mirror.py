"""End to end: real git-annex/DataLad writing a store and an SFTP mirror, and reading the mirror back."""

from __future__ import annotations

import shutil
from pathlib import Path

from conftest import SAMPLE, annex_keys, require_tool, run
from file_servers import SftpServer, SshClient, ssh_key

from dss_remote.admin.sibling import create_sibling
from dss_remote.admin.store import add_mirror
from dss_remote.config.mirrors import Mirror
from ria_store.layout import dataset_relpath, object_relpath


def test_push_writes_the_sftp_mirror_and_get_reads_it_back(
        store: Path, dataset: Path, sftp_server: tuple[SftpServer, SshClient]) -> None:
    """git-annex runs the remote with the test's HOME: the key and known_hosts in ~/.ssh are used."""
    require_tool("git-annex-remote-dss")
    server, _ = sftp_server
    add_mirror(store, Mirror(url=server.url(), name="hpc"))
    sib = create_sibling(dataset, "store", f"ria+file://{store}", alias="sample")
    run("datalad", "-l", "error", "push", "--to", "store", cwd=dataset)
    mirrored = server.root / "store"
    for key in annex_keys(dataset).values():
        rel = f"{dataset_relpath(sib.dataset_id)}/{object_relpath(key, '2')}"
        assert (mirrored / rel).read_bytes() == (store / rel).read_bytes()
    assert not [p for p in mirrored.rglob(".dss-tmp-*")]
    run("git", "annex", "drop", "--force", ".", cwd=dataset)
    shutil.rmtree(store / dataset_relpath(sib.dataset_id) / "annex" / "objects")
    run("git", "annex", "get", ".", cwd=dataset)
    for rel, data in SAMPLE.items():
        assert (dataset / rel).read_bytes() == data
    res = run("dss", "fsck", store, "--replica", "hpc", "--json")
    assert '"findings": []' in res.stdout


def test_refused_login_through_git_annex_names_the_mirror_and_the_fix(
        store: Path, dataset: Path, sftp_server: tuple[SftpServer, SshClient]) -> None:
    require_tool("git-annex-remote-dss")
    server, client = sftp_server
    add_mirror(store, Mirror(url=server.url(), name="hpc"))
    create_sibling(dataset, "store", f"ria+file://{store}")
    ssh_key().write_private_key(str(client.ssh_dir / "id_ed25519"))  # not in authorized_keys
    res = run("git", "annex", "copy", "--to", "store-storage", "small.txt", cwd=dataset, check=False)
    assert res.returncode != 0
    out = res.stdout + res.stderr
    line = next((ln for ln in out.splitlines() if "[hpc]" in ln), out)
    assert f"[hpc] replica {server.url()}: ssh login to 127.0.0.1:{server.port} refused (" in line
    assert "set DSS_SSH_KEY" in line and "write_quorum needs 2" in line
    assert "store-storage" not in run("git", "annex", "whereis", "--json", "small.txt", cwd=dataset).stdout
