"""Kill -9 loops against a real API server: a seeded random source, a request run in a thread, and
servers over one store that are SIGKILLed at a random point and started again.

`DSS_TEST_KILL_SEED=N` replays one run (every loop prints the seed it used)."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import psutil
from api_server import ApiServer, api_server
from leftover_processes import describe, wait_gone

SEED_VAR = "DSS_TEST_KILL_SEED"
#: how long what a killed server had started (git, the detached mirroring) may take to end
ORPHAN_TIMEOUT = 60.0

T = TypeVar("T")


def seeded(what: str) -> tuple[int, random.Random]:
    """A seed (from DSS_TEST_KILL_SEED, else a fresh one), printed, and its random source."""
    replay = os.environ.get(SEED_VAR)
    seed = int(replay) if replay else int.from_bytes(os.urandom(4), "big")
    print(f"{what}: seed {seed} (replay with {SEED_VAR}={seed})")
    return seed, random.Random(seed)


@dataclass
class Background(Generic[T]):
    """`call` run in a thread: its result, or the exception it raised (a cut connection)."""

    call: Callable[[], T]
    result: T | None = None
    error: BaseException | None = None
    _thread: threading.Thread = field(init=False)

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.result = self.call()
        except BaseException as e:  # handed to the test, which judges it
            self.error = e

    def join(self, timeout: float = 120.0) -> T | None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"the request did not end within {timeout:g} s of the kill"
        return self.result


@dataclass
class Servers:
    """Servers over one store, one at a time: `start` a new one (a new port), `kill` it with SIGKILL."""

    store: Path
    gate_spec: Mapping[str, Any]
    work: Path
    factory: str = "serve_factory:app"
    stack: ExitStack = field(default_factory=ExitStack)
    current: ApiServer | None = None

    def start(self) -> ApiServer:
        self.stack.close()
        self.current = self.stack.enter_context(api_server(self.store, self.gate_spec, self.work,
                                                                 factory=self.factory))
        return self.current

    def _process(self) -> psutil.Process:
        assert self.current is not None, "no server running"
        port = self.current.url.rsplit(":", 1)[1]
        for child in psutil.Process().children():
            with contextlib.suppress(psutil.Error):
                cmd = child.cmdline()
                if "uvicorn" in cmd and "--port" in cmd and cmd[cmd.index("--port") + 1] == port:
                    return child
        raise AssertionError(f"no uvicorn process of ours listens on port {port}")

    def kill(self, group: bool) -> str:
        """SIGKILL the server (with `group`, its process group: the git it runs dies too), wait
        for what it had started to end, and forget it; says what was killed."""
        proc = self._process()
        started = proc.children(recursive=True)
        names = sorted({_short(p) for p in started} - {""})
        if group:
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            os.kill(proc.pid, signal.SIGKILL)
        left = wait_gone([proc, *started], ORPHAN_TIMEOUT)
        assert not left, (f"still running {ORPHAN_TIMEOUT:g} s after the kill: "
                          f"{'; '.join(map(describe, left))}")
        self.stack.close()
        self.current = None
        killed = "process group" if group else "server process"
        return f"{killed} (running then: {', '.join(names) or 'nothing else'})"

    def close(self) -> None:
        self.stack.close()


def _short(proc: psutil.Process) -> str:
    """A child as a kill report names it: `git fast-import`, `python -m dss_remote.cli sync`."""
    try:
        cmd = proc.cmdline()
    except psutil.Error:  # exited meanwhile, or a zombie
        return ""
    words = [Path(cmd[0]).name, *cmd[1:]] if cmd else [proc.name()]
    return " ".join(words[:4] if "-m" in words[:2] else words[:2])


@contextmanager
def servers(store: Path, gate_spec: Mapping[str, Any], work: Path, factory: str = "serve_factory:app"
            ) -> Iterator[Servers]:
    """`Servers` over `store` (apps of `factory`, see api_server); whichever is running when the
    block ends is stopped."""
    s = Servers(store, gate_spec, work, factory)
    try:
        yield s
    finally:
        s.close()
