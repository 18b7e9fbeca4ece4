"""https mirrors against a real TLS web server on 127.0.0.1 with a throwaway CA (trustme): the read
contract over TLS, an untrusted certificate refused in one line naming the fix, and which of
REQUESTS_CA_BUNDLE and SSL_CERT_FILE makes the CA trusted."""

from __future__ import annotations

from pathlib import Path

import pytest
from backend_contract import ReadContract, fetch
from conftest import write_files
from file_servers import TLSCA, HttpServer, new_ca, serve_http

from dss_remote.backends.base import Backend
from dss_remote.backends.http import HttpBackend
from ria_store.errors import ConfigError, NotFoundError, UnavailableError

CONTENT = b"content over tls"
FIX = "set REQUESTS_CA_BUNDLE or SSL_CERT_FILE to a PEM file of the CA that signed the mirror's certificate"


class TestHttpsBackend(ReadContract):
    """(a) A CA the process trusts (REQUESTS_CA_BUNDLE names it): every read of the contract works."""

    served: Path

    @pytest.fixture
    def backend(self, https_server: HttpServer, tls_ca: TLSCA,
                monkeypatch: pytest.MonkeyPatch) -> HttpBackend:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls_ca.bundle))
        self.served = https_server.root / "store"
        self.served.mkdir()
        return HttpBackend(f"{https_server.url}/store")

    def populate(self, backend: Backend, tmp_path: Path, objects: dict[str, bytes]) -> None:
        write_files(self.served, objects)


@pytest.fixture
def tls_store(https_server: HttpServer) -> str:
    """The url of a store directory on the TLS server, holding `ab/KEY`."""
    write_files(https_server.root / "store", {"ab/KEY": CONTENT})
    return f"{https_server.url}/store"


def read(backend: HttpBackend, op: str, tmp_path: Path) -> object:
    if op == "info":
        return backend.info("ab/KEY")
    if op == "get_file":
        return fetch(backend, "ab/KEY", tmp_path)[1]
    if op == "read_range":
        return backend.read_range("ab/KEY", 8, 4)
    return backend.read_bytes("ab/KEY")


def assert_works(url: str, tmp_path: Path) -> None:
    backend = HttpBackend(url)
    info = backend.info("ab/KEY")
    assert info is not None and info.size == len(CONTENT)
    assert fetch(backend, "ab/KEY", tmp_path) == (len(CONTENT), CONTENT)
    assert backend.read_range("ab/KEY", 8, 4) == CONTENT[8:12]
    assert backend.info("ab/NONE") is None


def dst_files(tmp_path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in tmp_path.glob("dst-*")}


# -- (b) an untrusted certificate -----------------------------------------------------------------
@pytest.mark.parametrize("op", ["info", "get_file", "read_range", "read_bytes"])
def test_untrusted_certificate_fails_naming_the_mirror_and_the_fix(tls_store: str, op: str,
                                                                   tmp_path: Path) -> None:
    backend = HttpBackend(tls_store)
    with pytest.raises(UnavailableError) as ei:
        read(backend, op, tmp_path)
    assert not isinstance(ei.value, NotFoundError)
    assert str(ei.value) == (f"replica {tls_store}: certificate verify failed (unable to get local issuer "
                             f"certificate; trusted: the system CAs); {FIX}")
    assert all(data == b"" for data in dst_files(tmp_path).values()), "nothing partial"


def test_certificate_of_another_ca_in_the_bundle_fails_naming_the_bundle(
        tls_store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = new_ca(tmp_path / "other-ca")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(other.bundle))
    with pytest.raises(UnavailableError) as ei:
        fetch(HttpBackend(tls_store), "ab/KEY", tmp_path)
    assert str(ei.value) == (f"replica {tls_store}: certificate verify failed (unable to get local issuer "
                             f"certificate; trusted: REQUESTS_CA_BUNDLE={other.bundle}); {FIX}")
    assert dst_files(tmp_path) == {next(iter(dst_files(tmp_path))): b""}


def test_certificate_for_another_host_fails(tmp_path: Path, tls_ca: TLSCA,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Trusted CA, but the certificate names dss.example.invalid, not the 127.0.0.1 dss connects to."""
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_ca.bundle))
    write_files(tmp_path / "www2", {"store/ab/KEY": CONTENT})
    with serve_http(tmp_path / "www2", tls_ca.server_context("dss.example.invalid")) as server:
        with pytest.raises(UnavailableError) as ei:
            HttpBackend(f"{server.url}/store").info("ab/KEY")
    assert str(ei.value) == (f"replica {server.url}/store: certificate verify failed (IP address mismatch, "
                             f"certificate is not valid for '127.0.0.1'.; trusted: SSL_CERT_FILE="
                             f"{tls_ca.bundle}); {FIX}")


# -- (c) the variables that make it trusted ---------------------------------------------------------
@pytest.mark.parametrize("var", ["REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"])
def test_ca_bundle_variable_makes_the_mirror_trusted(var: str, tls_store: str, tls_ca: TLSCA, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Set after aiohttp was imported (it reads OpenSSL's default paths once, then): still counts."""
    import aiohttp  # noqa: F401 - imported before the variable is set, on purpose

    with pytest.raises(UnavailableError, match="certificate verify failed"):
        HttpBackend(tls_store).info("ab/KEY")
    monkeypatch.setenv(var, str(tls_ca.bundle))
    assert_works(tls_store, tmp_path)


def test_requests_ca_bundle_as_a_directory_of_hashed_certificates(
        tls_store: str, tls_ca: TLSCA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As requests allows: a directory as `c_rehash` leaves it (<subject hash>.0)."""
    import ssl

    certs = tmp_path / "certs"
    certs.mkdir()
    der = ssl.PEM_cert_to_DER_cert(tls_ca.bundle.read_text())
    subject_hash = _subject_hash(der)
    (certs / f"{subject_hash}.0").write_bytes(tls_ca.bundle.read_bytes())
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certs))
    assert_works(tls_store, tmp_path)


def _subject_hash(der: bytes) -> str:
    """OpenSSL's subject-name hash of a certificate (what `openssl x509 -hash` prints)."""
    import subprocess

    from conftest import require_tool

    openssl = require_tool("openssl", "apt-get install openssl")
    res = subprocess.run([openssl, "x509", "-inform", "DER", "-noout", "-hash"], input=der,
                         capture_output=True, check=True, timeout=30)
    return res.stdout.decode().strip()


def test_requests_ca_bundle_wins_over_ssl_cert_file(tls_store: str, tls_ca: TLSCA, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    other = new_ca(tmp_path / "other-ca")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls_ca.bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(other.bundle))
    assert_works(tls_store, tmp_path)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(other.bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_ca.bundle))
    with pytest.raises(UnavailableError, match=f"trusted: REQUESTS_CA_BUNDLE={other.bundle}"):
        HttpBackend(tls_store).info("ab/KEY")


def test_empty_requests_ca_bundle_counts_as_unset(tls_store: str, tls_ca: TLSCA, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "")
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_ca.bundle))
    assert_works(tls_store, tmp_path)


# -- bad input: a CA bundle variable that names no bundle ---------------------------------------------
@pytest.mark.parametrize("var", ["REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"])
def test_ca_bundle_variable_naming_a_missing_file_is_a_config_error(
        var: str, tls_store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "no-such-ca.pem"
    monkeypatch.setenv(var, str(missing))
    with pytest.raises(ConfigError) as ei:
        fetch(HttpBackend(tls_store), "ab/KEY", tmp_path)
    assert str(ei.value) == (f"{var}={missing}: cannot load it as a CA bundle (No such file or directory); "
                             "point it at a PEM file of CA certificates, or unset it")
    assert dst_files(tmp_path) == {next(iter(dst_files(tmp_path))): b""}


@pytest.mark.parametrize("var", ["REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"])
def test_ca_bundle_variable_naming_a_file_without_certificates_is_a_config_error(
        var: str, tls_store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    monkeypatch.setenv(var, str(junk))
    with pytest.raises(ConfigError) as ei:
        HttpBackend(tls_store).info("ab/KEY")
    msg = str(ei.value)
    assert msg.startswith(f"{var}={junk}: cannot load it as a CA bundle (") and "\n" not in msg
    assert msg.endswith("); point it at a PEM file of CA certificates, or unset it")


def test_plain_http_ignores_the_ca_variables(http_server: HttpServer, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad bundle only matters where TLS is spoken: an http:// mirror never loads it."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "no-such-ca.pem"))
    write_files(http_server.root, {"store/ab/KEY": CONTENT})
    assert HttpBackend(f"{http_server.url}/store").read_bytes("ab/KEY") == CONTENT


def test_https_client_on_a_plain_http_port_names_the_tls_failure(http_server: HttpServer) -> None:
    url = f"https://127.0.0.1:{http_server.port}/store"
    with pytest.raises(UnavailableError) as ei:
        HttpBackend(url).info("ab/KEY")
    msg = str(ei.value)
    assert msg.startswith(f"replica {url}: TLS with 127.0.0.1:{http_server.port} failed (")
    assert "\n" not in msg
    assert msg.endswith("); check that the server speaks https on that port"), msg
