"""pytest plugin: S3 (moto_server) and GCS (gcp-storage-emulator) servers on loopback, a fresh bucket per
test, and a proxy in front of each test's mirror that a test can take down.

Nothing here talks to any address but 127.0.0.1: pytest_configure points the cloud SDKs' metadata-server
probes at loopback before anything imports them, and the fixtures give every client an explicit endpoint.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import select
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

HOST = "127.0.0.1"
BINDIR = Path(sys.executable).parent
TEST_INSTALL = "pip install -e '.[test]'"
START_TIMEOUT = 20.0
S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
          "AWS_DEFAULT_REGION": "us-east-1"}
# environment that keeps the SDKs' credential discovery on this machine: no EC2/GCE metadata server
# (169.254.169.254), no proxy for loopback
_NO_METADATA_ENV = {"AWS_EC2_METADATA_DISABLED": "true", "NO_GCE_CHECK": "true",
                    "GCE_METADATA_HOST": f"{HOST}:9", "GCE_METADATA_IP": f"{HOST}:9",
                    "NO_PROXY": f"{HOST},localhost", "no_proxy": f"{HOST},localhost"}
# Credentials and endpoints a developer or a CI runner may have set, which would reach real clouds or
# shadow the test keys: every provider of boto3's chain that the environment can switch on (boto3
# guide "Credentials": environment, assume role, web identity, IAM Identity Center and login caches,
# shared files, the boto2 config, the container provider; the instance metadata service is off above),
# and google.auth's environment_vars.
_CLOUD_CREDENTIAL_VARS = (
    # environment provider (the access key pair itself is the tests' own: s3_env sets it)
    "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_CREDENTIAL_EXPIRATION", "AWS_ACCOUNT_ID",
    # profiles and the files they live in (HOME is the test's own, but these name other paths)
    "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CREDENTIAL_FILE", "AWS_LOGIN_CACHE_DIRECTORY", "BOTO_CONFIG",
    # assume role with web identity (EKS, GitHub Actions OIDC)
    "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_ROLE_SESSION_NAME",
    # container provider (ECS, EKS Pod Identity); _CLOUD_CREDENTIAL_PREFIXES catches any newer one
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    # endpoints that would send our requests elsewhere than the test's server
    "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_EC2_METADATA_SERVICE_ENDPOINT",
    # Google: service account files, gcloud's config, project, emulator, client certificates
    "GOOGLE_APPLICATION_CREDENTIALS", "CLOUDSDK_CONFIG", "STORAGE_EMULATOR_HOST", "GOOGLE_CLOUD_PROJECT",
    "GCLOUD_PROJECT", "GOOGLE_CLOUD_QUOTA_PROJECT", "GOOGLE_API_USE_CLIENT_CERTIFICATE",
    "GOOGLE_API_CERTIFICATE_CONFIG")
# every variable starting with one of these goes too (AWS_ENDPOINT_URL_<SERVICE> for any service)
_CLOUD_CREDENTIAL_PREFIXES = ("AWS_CONTAINER_", "AWS_ENDPOINT_URL_")


def pytest_configure(config: pytest.Config) -> None:
    # google.auth reads NO_GCE_CHECK and GCE_METADATA_HOST once, at import; set them before any test
    # imports it, for the whole session (subprocesses inherit them too).
    for name, value in _NO_METADATA_ENV.items():
        os.environ.setdefault(name, value)


def free_port() -> int:
    """A port nobody listens on right now (a server started on it may still lose a race: see start)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _http_answers(url: str) -> bool:
    """True once anything answers HTTP at `url` (an error status counts: the server is up)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=1):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


#: a request in werkzeug's access log: `"HEAD /bucket/key HTTP/1.1" 404`, maybe in ANSI colours
_ACCESS_LINE = re.compile(r'"(?:\x1b\[[0-9;]*m)?([A-Z]+) (\S+) HTTP/[0-9.]+')


def run_scoped_env() -> dict[str, str]:
    """This environment without the current test's DSS_TEST_ID (leftover_processes): a server
    belongs to the run, not to the test that happened to start it (a session fixture requested
    by `request.getfixturevalue` starts inside a test), so no test's end takes it down; the
    run-end check still sees it by DSS_TEST_RUN."""
    return {k: v for k, v in os.environ.items() if k != "DSS_TEST_ID"}


class LoopbackServer:
    """A server program from this interpreter's bin dir, on a free 127.0.0.1 port, until stop()."""

    def __init__(self, program: str, args: Callable[[int], list[str]], log_dir: Path,
                 probe: str = "/") -> None:
        self.program = program
        self._args = args
        self._dir = log_dir  # also its working directory: nothing it writes lands in ours
        self._name = Path(program).name  # `program` may also be an absolute path
        self._log = log_dir / f"{self._name}.log"
        self._probe = probe
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        """The server's process id (while it runs): for the benchmarks' CPU accounting."""
        if self._proc is None:
            raise RuntimeError(f"{self.program} is not running")
        return self._proc.pid

    def output(self) -> str:
        try:
            return self._log.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def requests_seen(self, needle: str) -> list[str]:
        """`METHOD path` of each request the server logged (werkzeug's access log, as moto_server
        writes it) whose path holds `needle`, oldest first: what a test counts requests by."""
        try:
            text = self._log.read_text(errors="replace")
        except OSError:
            return []
        return [f"{m[1]} {m[2]}" for m in _ACCESS_LINE.finditer(text) if needle in m[2]]

    def start(self, port: int | None = None) -> LoopbackServer:
        """Start on `port` (a restart on the same endpoint), else on a free one."""
        exe = BINDIR / self.program
        if not exe.exists():
            pytest.fail(f"{self.program} is not installed in {BINDIR}; run {TEST_INSTALL}")
        for attempt in range(3):  # another process may take the free port before the server binds it
            self.port = port or free_port()
            self._log = self._dir / f"{self._name}-{attempt}.log"
            with open(self._log, "wb") as log:
                self._proc = subprocess.Popen([str(exe), *self._args(self.port)], cwd=self._dir,
                                              stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                              start_new_session=True, env=run_scoped_env())
            deadline = time.monotonic() + START_TIMEOUT
            while time.monotonic() < deadline and self._proc.poll() is None:
                if _http_answers(self.endpoint + self._probe):
                    return self
                time.sleep(0.05)
            if self._proc.poll() is None:
                self.stop()
                pytest.fail(f"{self.program} did not answer on {self.endpoint} within {START_TIMEOUT:.0f} s; "
                            f"it printed:\n{self.output()}")
            if "in use" not in self.output():
                break
        pytest.fail(f"{self.program} exited with status {self._proc.returncode if self._proc else '?'} "
                    f"before answering on {self.endpoint}; it printed:\n{self.output()}")

    def alive(self) -> LoopbackServer:
        """This server, after failing the test at once, naming why, if its process has exited
        (instead of letting every client retry against a dead port for minutes)."""
        if self._proc is None or self._proc.poll() is not None:
            code = "never started" if self._proc is None else f"exited with status {self._proc.returncode}"
            pytest.fail(f"{self.program} on {self.endpoint} {code} before this test; it printed:\n"
                        f"{self.output()}")
        return self

    def stop(self) -> None:
        if self._proc is None or self._proc.poll() is not None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(5)


class SwitchableProxy:
    """A TCP forwarder on its own 127.0.0.1 port in front of a server. down() closes the listener and
    every open connection, so clients get "connection refused" while the server keeps its data (moto
    and the GCS emulator lose everything on restart); up() listens again on the same port."""

    def __init__(self, target_port: int) -> None:
        self._target = (HOST, target_port)
        self.port = 0
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._stop: threading.Event | None = None
        self._thread: threading.Thread | None = None
        self.up()

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def is_up(self) -> bool:
        return self._thread is not None

    def up(self) -> None:
        if self._thread is not None:
            return
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((HOST, self.port))
        listener.listen(64)
        self.port = int(listener.getsockname()[1])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, args=(listener, self._stop),
                                        name=f"proxy-{self.port}", daemon=True)
        self._thread.start()

    def down(self) -> None:
        if self._thread is None or self._stop is None:
            return
        self._stop.set()
        self._thread.join()  # the loop closes the listener before it ends
        self._thread = None
        with self._lock:
            conns, self._conns = self._conns, set()
        for conn in conns:
            _reset(conn)

    close = down

    def _accept_loop(self, listener: socket.socket, stop: threading.Event) -> None:
        with listener:
            while not stop.is_set():
                ready, _, _ = select.select([listener], [], [], 0.05)
                if not ready:
                    continue
                try:
                    client, _ = listener.accept()
                except OSError:
                    continue
                threading.Thread(target=self._pump, args=(client, stop), daemon=True).start()

    def _pump(self, client: socket.socket, stop: threading.Event) -> None:
        try:
            upstream = socket.create_connection(self._target, timeout=5)
        except OSError:
            _reset(client)
            return
        with self._lock:
            if stop.is_set():
                _reset(client)
                _reset(upstream)
                return
            self._conns.update((client, upstream))
        peers = {client: upstream, upstream: client}
        open_reads = set(peers)
        try:
            while open_reads and not stop.is_set():
                ready, _, _ = select.select(list(open_reads), [], [], 0.2)
                for sock in ready:
                    data = sock.recv(1 << 16)
                    if data:
                        peers[sock].sendall(data)
                    else:  # half-close: pass the EOF on and keep the other direction going
                        open_reads.discard(sock)
                        with contextlib.suppress(OSError):
                            peers[sock].shutdown(socket.SHUT_WR)
        except (OSError, ValueError):
            pass  # down() reset the connection under us
        finally:
            with self._lock:
                self._conns.difference_update((client, upstream))
            client.close()
            upstream.close()


def _reset(sock: socket.socket) -> None:
    """Close with an RST, so the peer sees the connection die at once."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


@contextlib.contextmanager
def silent_listener() -> Iterator[str]:
    """An endpoint that accepts connections (in the kernel's backlog) and never answers."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        s.listen(64)
        yield f"http://{HOST}:{s.getsockname()[1]}"


@dataclass(frozen=True)
class MirrorFixture:
    """A fresh bucket on a loopback server; endpoint_url goes through `proxy` (None: direct)."""

    url: str
    endpoint_url: str
    proxy: SwitchableProxy | None

    @property
    def bucket(self) -> str:
        return self.url.split("/")[2]


@dataclass(frozen=True)
class Keys:
    access_key_id: str
    secret_access_key: str


@dataclass(frozen=True)
class AuthS3Server:
    """moto_server with IAM authentication on: `admin` may do anything on S3, `reader` only read."""

    endpoint: str
    bucket: str
    admin: Keys
    reader: Keys


def _unique_bucket() -> str:
    return f"dss-test-{uuid.uuid4().hex[:16]}"  # moto needs >= 3 characters; GCS <= 63, lowercase


@functools.cache
def _s3_client(endpoint: str, keys: Keys | None = None, service: str = "s3") -> Any:
    import boto3
    from botocore.config import Config

    keys = keys or Keys(S3_ENV["AWS_ACCESS_KEY_ID"], S3_ENV["AWS_SECRET_ACCESS_KEY"])
    session: Any = boto3.session.Session()
    return session.client(
        service, endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=keys.access_key_id,
        aws_secret_access_key=keys.secret_access_key,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}))


def s3_admin_client(endpoint: str, keys: Keys | None = None) -> Any:
    """A boto3 client straight to a loopback S3 server (not through a proxy), for test setup and checks."""
    return _s3_client(endpoint, keys)


@functools.cache
def gcs_admin_client(endpoint: str) -> Any:
    """A google-cloud-storage client straight to the loopback emulator, for test setup and checks."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    anonymous: Any = AnonymousCredentials
    return storage.Client(project="dss", credentials=anonymous(),
                          client_options={"api_endpoint": endpoint})


def _clean_cloud_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _CLOUD_CREDENTIAL_VARS:
        monkeypatch.delenv(name, raising=False)
    for name in [n for n in os.environ if n.startswith(_CLOUD_CREDENTIAL_PREFIXES)]:
        monkeypatch.delenv(name)
    for name, value in _NO_METADATA_ENV.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def s3_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """moto's test credentials in the environment (subprocesses such as git-annex inherit them)."""
    _clean_cloud_env(monkeypatch)
    for name, value in S3_ENV.items():
        monkeypatch.setenv(name, value)
    return dict(S3_ENV)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackServer]:
    server = LoopbackServer("moto_server", lambda port: ["-H", HOST, "-p", str(port)],
                            tmp_path_factory.mktemp("moto"), probe="/moto-api/").start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def gcs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackServer]:
    server = LoopbackServer(
        "gcp-storage-emulator",
        lambda port: ["start", "--host", HOST, "--port", str(port), "-q", "--in-memory"],
        tmp_path_factory.mktemp("gcs-emulator"), probe="/storage/v1/b").start()
    yield server
    server.stop()


@pytest.fixture
def s3_mirror(s3_server: LoopbackServer, s3_env: dict[str, str]) -> Iterator[MirrorFixture]:
    """A fresh bucket on the session's moto_server, reached through a proxy of this test's own."""
    bucket = _unique_bucket()
    s3_admin_client(s3_server.alive().endpoint).create_bucket(Bucket=bucket)
    proxy = SwitchableProxy(s3_server.port)
    try:
        yield MirrorFixture(f"s3://{bucket}/lab/store", proxy.endpoint, proxy)
    finally:
        proxy.close()


@pytest.fixture
def gcs_mirror(gcs_server: LoopbackServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[MirrorFixture]:
    """A fresh bucket on the session's GCS emulator, reached through a proxy of this test's own."""
    _clean_cloud_env(monkeypatch)
    bucket = _unique_bucket()
    gcs_admin_client(gcs_server.alive().endpoint).create_bucket(bucket)
    proxy = SwitchableProxy(gcs_server.port)
    try:
        yield MirrorFixture(f"gs://{bucket}/lab/store", proxy.endpoint, proxy)
    finally:
        proxy.close()


def _iam_user(iam: Any, name: str, actions: list[str]) -> Keys:
    iam.create_user(UserName=name)
    policy = {"Version": "2012-10-17",
              "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}
    iam.put_user_policy(UserName=name, PolicyName=f"{name}-s3", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return Keys(key["AccessKeyId"], key["SecretAccessKey"])


@pytest.fixture(scope="session")
def s3_auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthS3Server]:
    """A second moto_server that checks signatures and IAM policies.

    moto authenticates nothing until a request count is reached (env INITIAL_NO_AUTH_ACTION_COUNT,
    default infinity); POST /moto-api/reset-auth with a count as the body (text/plain: a form body
    is swallowed and moto answers 500) sets it at run time. The users are made while it is infinite,
    then it goes to 0 and every later request must be signed by a known key that IAM allows.
    """
    server = LoopbackServer("moto_server", lambda port: ["-H", HOST, "-p", str(port)],
                            tmp_path_factory.mktemp("moto-auth"), probe="/moto-api/").start()
    try:
        iam = _s3_client(server.endpoint, service="iam")
        admin = _iam_user(iam, "dss-admin", ["s3:*"])
        # HEAD and listing need s3:GetObject and s3:ListBucket on AWS; moto (since 2026-12) asks
        # for actions named after the operations too: granting both keeps this user read-only
        reader = _iam_user(iam, "dss-reader", ["s3:GetObject", "s3:HeadObject", "s3:ListBucket",
                                                "s3:ListObjectsV2", "s3:ListObjects"])
        request = urllib.request.Request(f"{server.endpoint}/moto-api/reset-auth", data=b"0",
                                         method="POST", headers={"Content-Type": "text/plain"})
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=10) as resp:
            resp.read()
        bucket = _unique_bucket()
        s3_admin_client(server.endpoint, admin).create_bucket(Bucket=bucket)
        yield AuthS3Server(server.endpoint, bucket, admin, reader)
    finally:
        server.stop()
