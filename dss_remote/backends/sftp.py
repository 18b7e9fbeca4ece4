"""Mirrors in a directory reached over SFTP: fsspec's `sshfs` file system (asyncssh).

Logging in works as `ssh` does it: host keys are checked against `~/.ssh/known_hosts` (an unknown
or changed key is refused), keys come from the ssh agent (`SSH_AUTH_SOCK`) and `~/.ssh/id_*`, and
`~/.ssh/config` applies (User, Port, IdentityFile, ...). `DSS_SSH_KEY` may name one private key
file to use instead of `~/.ssh/id_*` (cluster jobs without an agent). The url never carries a
password. Writes go to a temp name beside the target and are renamed over it with
`posix-rename@openssh.com`, which replaces the target in one step; a server without it is refused
rather than written non-atomically.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any
from urllib.parse import unquote, urlsplit

from ria_store.errors import AccessError, ConfigError, DssError, WriteError, one_line

from .base import check_range
from .cloud_common import op_failed, unreachable
from .fsspec_backend import FsspecBackend

logger = logging.getLogger(__name__)

#: env var naming a private key file to log in with (instead of ~/.ssh/id_*; the agent still counts)
KEY_ENV = "DSS_SSH_KEY"
#: seconds for TCP connect + ssh handshake + login: bounded, never a hang
CONNECT_TIMEOUT = 15.0
#: a connection whose server stops answering is given up after about interval x count seconds
KEEPALIVE_INTERVAL = 15.0
KEEPALIVE_COUNT = 4


class SftpBackend(FsspecBackend):
    """Objects are files under the url's absolute path on an SFTP server."""

    def __init__(self, url: str, connect_timeout: float = CONNECT_TIMEOUT) -> None:
        super().__init__(url)
        parts = urlsplit(self.url)
        if parts.password is not None:
            raise ConfigError(f"replica sftp://{parts.hostname}{parts.path}: the url carries a password; "
                              f"remove it (dss logs in with your ssh agent, ~/.ssh keys or {KEY_ENV})")
        if not parts.hostname or not parts.path.strip("/"):
            raise ConfigError(f"replica {self.url}: use sftp://[user@]host[:port]/absolute/path")
        self._host = parts.hostname
        self._port = parts.port
        self._user = unquote(parts.username) if parts.username else None
        self._dir = "/" + parts.path.strip("/")
        self._endpoint = f"{self._host}:{self._port or 22}"
        self._timeout = connect_timeout
        self._renamer: Any = None  # an SFTP client of our own for posix_rename, opened on first write

    def _open_fs(self) -> tuple[Any, str]:
        from sshfs import SSHFileSystem  # noqa: PLC0415 - asyncssh costs ~0.3 s to import

        options: dict[str, Any] = {
            "known_hosts": (),  # asyncssh's default, ~/.ssh/known_hosts; sshfs's own default checks nothing
            "connect_timeout": self._timeout, "timeout": self._timeout + 5,
            "keepalive_interval": KEEPALIVE_INTERVAL, "keepalive_count_max": KEEPALIVE_COUNT,
            "skip_instance_cache": True}
        if self._port is not None:
            options["port"] = self._port
        if self._user is not None:
            options["username"] = self._user
        key = os.environ.get(KEY_ENV)
        if key:
            if not os.path.isfile(key):
                raise ConfigError(f"replica {self.url}: {KEY_ENV}={key} is not a file; point it at a "
                                  "private key, or unset it to use the ssh agent and ~/.ssh")
            options["client_keys"] = [key]
        logger.debug("replica %s: connecting to %s", self.url, self._endpoint)
        return SSHFileSystem(self._host, **options), self._dir

    def read_range(self, relpath: str, start: int, length: int) -> bytes:
        """sshfs's `cat_file` ignores start/end (it reads the whole file); an SFTP file handle
        reads at an offset, so only the asked-for bytes travel."""
        path = self._path(relpath)
        check_range(start, length)
        try:
            with self._fs().open(path, "rb") as f:
                f.seek(start)
                return bytes(f.read(length)) if length else b""
        except Exception as e:
            raise self._error(e, relpath) from e

    def _rename(self, fs: Any, tmp: str, path: str) -> None:
        """`posix-rename@openssh.com` (or SFTP v5+ rename with overwrite): one step. fsspec's `mv`
        would fall back to `cp` + `rm` through a shell, which readers could see half done."""
        from fsspec.asyn import sync  # noqa: PLC0415

        sync(fs.loop, self._posix_rename, fs, tmp, path)

    def _rmdir(self, fs: Any, path: str) -> None:
        """sshfs's synchronous `rmdir` is fsspec's no-op default; its coroutine does remove."""
        from fsspec.asyn import sync  # noqa: PLC0415

        sync(fs.loop, fs._rmdir, path)

    async def _posix_rename(self, fs: Any, tmp: str, path: str) -> None:
        if self._renamer is None:
            self._renamer = await fs.client.start_sftp_client()
        await self._renamer.posix_rename(tmp, path)

    def _transport_error(self, e: Exception, relpath: str, writing: bool) -> DssError | None:
        import asyncssh  # noqa: PLC0415
        from fsspec.exceptions import FSTimeoutError  # noqa: PLC0415

        login = self._login_error(e)
        if login is not None:
            return login
        what = f" of {relpath}" if relpath else ""
        if isinstance(e, (asyncssh.SFTPPermissionDenied, PermissionError)):
            if writing:
                return WriteError(f"replica {self.url}: permission denied on write{what}; ask the "
                                  "server's admin for write access to the directory")
            return AccessError(f"replica {self.url}: permission denied on read{what}; check the "
                               "directory's permissions on the server")
        lost = (OSError, asyncio.TimeoutError, FSTimeoutError, asyncssh.DisconnectError,
                asyncssh.ChannelOpenError, asyncssh.ConnectionLost, asyncssh.SFTPConnectionLost,
                asyncssh.SFTPNoConnection)
        if isinstance(e, lost) and not isinstance(e, FileNotFoundError):
            self._forget_connection()
            return unreachable(self.url, self._endpoint, e)
        if isinstance(e, asyncssh.SFTPError):
            return op_failed(self.url, "write" if writing else "read", what, one_line(e.reason))
        return None

    def _login_error(self, e: Exception) -> DssError | None:
        """What no retry fixes: an unknown host key, a refused login, no atomic rename."""
        import asyncssh  # noqa: PLC0415

        if isinstance(e, asyncssh.SFTPOpUnsupported):
            return WriteError(
                f"replica {self.url}: the SFTP server cannot replace a file in one step (no "
                "posix-rename@openssh.com), which dss needs for atomic writes; use OpenSSH's sftp-server")

        if isinstance(e, asyncssh.HostKeyNotVerifiable):
            self._forget_connection()
            port = f"-p {self._port} " if self._port else ""
            return AccessError(
                f"replica {self.url}: the host key of {self._endpoint} is not in ~/.ssh/known_hosts or "
                f"does not match it ({one_line(e)}); check the server's key fingerprint, then add it "
                f"(ssh-keyscan {port}{self._host} >> ~/.ssh/known_hosts)")
        # sshfs turns a refused login into PermissionError; before a connection exists it is one
        if isinstance(e, (asyncssh.PermissionDenied, PermissionError)) and self._fs_obj is None:
            cause = one_line(e) or "no key accepted"
            return AccessError(
                f"replica {self.url}: ssh login to {self._endpoint} refused ({cause}); load your key "
                f"into ssh-agent, put it in ~/.ssh, or set {KEY_ENV}, and make sure the server lists "
                "it in authorized_keys")
        return None

    def _forget_connection(self) -> None:
        """Reconnect on next use: a connection that failed once stays failed."""
        with self._lock:
            self._fs_obj = None
            self._renamer = None
