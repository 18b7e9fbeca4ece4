"""An in-memory stand-in for git-annex's side of the external remote protocol (for one process)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from annexremote import Master

from dss_remote.remote import DssRemote

_QUERIES = {"GETCONFIG", "GETUUID", "GETGITDIR", "GETGITREMOTENAME", "GETSTATE", "DIRHASH",
            "DIRHASH-LOWER"}


class _Output:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self._buf = ""

    def write(self, text: str) -> int:
        self._buf += text
        *done, self._buf = self._buf.split("\n")
        self.lines.extend(done)
        return len(text)

    def flush(self) -> None:
        pass


class AnnexDouble:
    """Feeds requests to a DssRemote and answers its queries from `config` and fixed values.

    `SETCONFIG` updates `config`, as git-annex records it during INITREMOTE.
    """

    def __init__(self, config: dict[str, str], git_dir: str = "/nonexistent/.git",
                 uuid: str = "11111111-2222-3333-4444-555555555555",
                 remote_name: str = "store-storage") -> None:
        self.config = dict(config)
        self.git_dir, self.uuid, self.remote_name = git_dir, uuid, remote_name
        self.output = _Output()
        self._requests: list[str | Callable[[], object]] = []
        self._seen = 0

    # the input stream Master reads from
    def readline(self) -> str:
        new = self.output.lines[self._seen:]
        self._seen = len(self.output.lines)
        for line in new:
            cmd, _, arg = line.partition(" ")
            if cmd == "SETCONFIG":
                name, _, value = arg.partition(" ")
                self.config[name] = value
        if new:
            cmd, _, arg = new[-1].partition(" ")
            if cmd in _QUERIES:
                return f"VALUE {self._answer(cmd, arg)}\n"
        while self._requests:
            request = self._requests.pop(0)
            if callable(request):  # something that happens between two requests
                request()
                continue
            return request + "\n"
        return ""

    def _answer(self, cmd: str, arg: str) -> str:
        if cmd == "GETCONFIG":
            return self.config.get(arg, "")
        if cmd == "GETUUID":
            return self.uuid
        if cmd == "GETGITDIR":
            return self.git_dir
        if cmd == "GETGITREMOTENAME":
            return self.remote_name
        raise AssertionError(f"the double cannot answer {cmd} {arg}")

    def converse(self, requests: Iterable[str | Callable[[], object]]) -> list[str]:
        """Run one remote process over `requests`; return its replies (no PROGRESS/DEBUG/queries).

        A callable among the requests runs between the requests around it.
        """
        self._requests = ["EXTENSIONS INFO GETGITREMOTENAME", *requests]
        self.output.lines.clear()
        self._seen = 0
        master = Master(self.output)
        master.LinkRemote(DssRemote(master))
        master.Listen(self)
        return [line for line in self.output.lines
                if line.split(" ", 1)[0] not in _QUERIES | {"PROGRESS", "DEBUG", "SETCONFIG",
                                                           "VERSION", "EXTENSIONS"}]

    def progress(self) -> list[int]:
        return [int(line.split()[1]) for line in self.output.lines if line.startswith("PROGRESS ")]
