"""SFTP mirrors against a real SFTP server (asyncssh, chrooted, on 127.0.0.1): the full backend
contract, and each login or network failure as its own one-line error."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from backend_contract import BackendContract, fetch, listed, write_source
from cloud_servers import silent_listener
from file_servers import SftpServer, SshClient, refused_port, ssh_key

from dss_remote.backends.base import TEMP_FILE, Backend
from dss_remote.backends.sftp import SftpBackend
from dss_remote.config.mirrors import check_mirror_url, parse_mirror
from dss_remote.replication.store_replicas import mirror_backend
from ria_store.atomic import TMP_PREFIX
from ria_store.errors import AccessError, ConfigError, NotFoundError, UnavailableError

Server = tuple[SftpServer, SshClient]


class TestSftpBackend(BackendContract):
    # SFTP v3 attributes carry mtimes in whole seconds and no inode, so a same-sized replacement
    # within the same second keeps its revision (a stale archive index then fails its reads'
    # checks and the read falls back; nothing wrong is ever returned).
    revision_tick = 1.1

    @pytest.fixture
    def backend(self, sftp_server: Server) -> SftpBackend:
        return SftpBackend(sftp_server[0].url())

    def interrupt_write(self, backend: Backend, relpath: str, data: bytes) -> str | None:
        """A temp file written over SFTP as a writer killed half way leaves it."""
        assert isinstance(backend, SftpBackend)
        fs, parent = backend._fs(), backend._path(relpath).rpartition("/")[0]
        fs.makedirs(parent, exist_ok=True)
        fs.pipe_file(f"{parent}/{TMP_PREFIX}killed-writer", data[: len(data) // 2])
        return TEMP_FILE

    def make_empty_dir(self, backend: Backend, relpath: str) -> bool:
        assert isinstance(backend, SftpBackend)
        backend._fs().makedirs(backend._path(relpath), exist_ok=True)
        return True


def test_objects_land_under_the_url_path_on_the_server(sftp_server: Server, tmp_path: Path) -> None:
    server, _ = sftp_server
    backend = SftpBackend(server.url())
    backend.put_file(write_source(tmp_path, b"content"), "ab/cd/KEY/KEY")
    assert (server.root / "store/ab/cd/KEY/KEY").read_bytes() == b"content"
    assert not [p for p in server.root.rglob("*") if p.name.startswith(".dss-tmp-")]


def test_no_reader_sees_an_object_before_it_is_complete(sftp_server: Server, tmp_path: Path) -> None:
    """While the bytes travel they are under a temp name; the object appears whole, at the rename."""
    server, _ = sftp_server
    target = server.root / "store/ab/KEY"
    data = os.urandom(3 << 20)
    seen: list[tuple[bool, int]] = []

    def progress(done: int) -> None:
        temps = [p for p in target.parent.iterdir() if p.name.startswith(".dss-tmp-")]
        seen.append((target.exists(), len(temps)))

    SftpBackend(server.url()).put_file(write_source(tmp_path, data), "ab/KEY", progress)
    assert seen and all(seen_target is False and temps == 1 for seen_target, temps in seen)
    assert target.read_bytes() == data
    assert [p.name for p in target.parent.iterdir()] == ["KEY"]


def test_unreachable_host_fails_at_once_naming_the_replica(tmp_path: Path) -> None:
    port = refused_port()
    backend = SftpBackend(f"sftp://dss@127.0.0.1:{port}/store")
    with pytest.raises(UnavailableError) as err:
        backend.info("ab/KEY")
    assert not isinstance(err.value, (NotFoundError, AccessError))
    assert str(err.value) == (f"replica sftp://dss@127.0.0.1:{port}/store: cannot reach 127.0.0.1:{port} "
                              "(ConnectionRefusedError); check the network or the mirror's endpoint url")


def test_silent_host_times_out_in_bounded_time(tmp_path: Path) -> None:
    """A host that accepts TCP and never speaks SSH: given up after connect_timeout, no hang."""
    with silent_listener() as endpoint:
        port = endpoint.rsplit(":", 1)[1]
        backend = SftpBackend(f"sftp://dss@127.0.0.1:{port}/store", connect_timeout=1.0)
        start = time.monotonic()
        with pytest.raises(UnavailableError, match=rf"cannot reach 127\.0\.0\.1:{port} \("):
            fetch(backend, "ab/KEY", tmp_path)
        assert time.monotonic() - start < 10


def test_auth_failure_names_replica_cause_and_fix(sftp_server: Server, tmp_path: Path) -> None:
    server, client = sftp_server
    ssh_key().write_private_key(str(client.ssh_dir / "id_ed25519"))  # a key the server does not know
    backend = SftpBackend(server.url())
    with pytest.raises(AccessError) as err:
        backend.put_file(write_source(tmp_path, b"x"), "ab/KEY")
    msg = str(err.value)
    assert msg.startswith(f"replica {server.url()}: ssh login to 127.0.0.1:{server.port} refused (")
    assert msg.endswith("; load your key into ssh-agent, put it in ~/.ssh, or set DSS_SSH_KEY, and make "
                        "sure the server lists it in authorized_keys")
    assert "\n" not in msg
    assert list((server.root / "store").iterdir()) == []


def test_unknown_host_key_is_refused_naming_known_hosts(sftp_server: Server) -> None:
    server, client = sftp_server
    (client.ssh_dir / "known_hosts").write_text("")
    backend = SftpBackend(server.url())
    with pytest.raises(AccessError) as err:
        backend.info("ab/KEY")
    msg = str(err.value)
    assert msg.startswith(f"replica {server.url()}: the host key of 127.0.0.1:{server.port} is not in "
                          "~/.ssh/known_hosts or does not match it (")
    assert msg.endswith(f"(ssh-keyscan -p {server.port} 127.0.0.1 >> ~/.ssh/known_hosts)")


def test_changed_host_key_is_refused(sftp_server: Server) -> None:
    server, client = sftp_server
    other = ssh_key().export_public_key().decode().strip()
    (client.ssh_dir / "known_hosts").write_text(f"[127.0.0.1]:{server.port} {other}\n")
    with pytest.raises(AccessError, match=r"is not in ~/\.ssh/known_hosts or does not match it"):
        SftpBackend(server.url()).info("ab/KEY")


def test_key_named_by_dss_ssh_key(sftp_server: Server, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    server, client = sftp_server
    elsewhere = tmp_path / "job-key"
    (client.ssh_dir / "id_ed25519").rename(elsewhere)
    with pytest.raises(AccessError, match="ssh login"):
        SftpBackend(server.url()).info("ab/KEY")
    monkeypatch.setenv("DSS_SSH_KEY", str(elsewhere))
    backend = SftpBackend(server.url())
    backend.write_bytes("dss/config.json", b"{}\n")
    assert backend.read_bytes("dss/config.json") == b"{}\n"


def test_dss_ssh_key_naming_no_file(sftp_server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    server, _ = sftp_server
    monkeypatch.setenv("DSS_SSH_KEY", "/nonexistent/key")
    with pytest.raises(ConfigError) as err:
        SftpBackend(server.url()).info("ab/KEY")
    assert str(err.value) == (f"replica {server.url()}: DSS_SSH_KEY=/nonexistent/key is not a file; point "
                              "it at a private key, or unset it to use the ssh agent and ~/.ssh")


def test_password_in_url_is_refused_without_echoing_it() -> None:
    for call in (lambda: check_mirror_url("sftp://dss:hunter2@host/store"),
                 lambda: SftpBackend("sftp://dss:hunter2@host/store")):
        with pytest.raises(ConfigError) as err:
            call()
        msg = str(err.value)
        assert "carries a password; remove it" in msg and "hunter2" not in msg and "DSS_SSH_KEY" in msg


def test_server_restart_reconnects(sftp_server: Server, tmp_path: Path) -> None:
    server, _ = sftp_server
    backend = SftpBackend(server.url())
    backend.write_bytes("a/KEY", b"1")
    server.stop()
    with pytest.raises(UnavailableError, match="cannot reach"):
        backend.info("a/KEY")
    server.start()  # same port
    info = backend.info("a/KEY")
    assert info is not None and info.size == 1


def test_sftp_mirror_config_and_backend(sftp_server: Server) -> None:
    server, _ = sftp_server
    mirror = parse_mirror({"url": server.url() + "/", "name": "hpc"}, "m")
    assert (mirror.url, mirror.writable) == (server.url(), True)
    backend = mirror_backend(mirror)
    assert isinstance(backend, SftpBackend)
    assert (backend.kind, backend.writable, backend.listable) == ("sftp", True, True)
    assert listed(backend, "nothing") == {}
    for bad, why in (("sftp://host", "names no directory"), ("sftp:///store", "names no host")):
        with pytest.raises(ConfigError, match=why):
            check_mirror_url(bad)
