"""TLS trust for https mirrors: which CA bundle the environment names, as an ssl context."""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass

from ria_store.errors import ConfigError, one_line

#: the variables that name a CA bundle, the first set (non-empty) one wins
CA_BUNDLE_VARS = ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")
TRUST_HINT = ("set REQUESTS_CA_BUNDLE or SSL_CERT_FILE to a PEM file of the CA that signed the mirror's "
              "certificate")


@dataclass(frozen=True)
class Trust:
    """An ssl context for verifying servers, and the variable and file it came from (None: the
    system's default CAs)."""

    context: ssl.SSLContext
    source: str | None = None

    def describe(self) -> str:
        """For messages: which CAs were trusted."""
        return f"{self.source}={os.environ.get(self.source, '')}" if self.source else "the system CAs"


def ca_bundle_from_env() -> tuple[str, str] | None:
    """(variable, path) of the CA bundle the environment names, or None."""
    for name in CA_BUNDLE_VARS:
        value = os.environ.get(name, "")
        if value:
            return name, value
    return None


def trust_from_env() -> Trust:
    """The ssl context an https mirror is verified with, read from the environment now.

    REQUESTS_CA_BUNDLE wins: as for `requests` (and so dss's webhook delivery), only the CAs in
    that file or directory are trusted. Otherwise OpenSSL's default paths, which already honour
    SSL_CERT_FILE (instead of the system's bundle) and SSL_CERT_DIR; SSL_CERT_FILE is also loaded
    explicitly, so a missing or unreadable file is reported instead of silently trusting nothing.
    aiohttp reads those paths once, when it is imported; building the context here, when a mirror
    is first used, makes a variable set later count too.
    """
    named = ca_bundle_from_env()
    if named is None:
        return Trust(ssl.create_default_context())
    name, path = named
    try:
        if name == "REQUESTS_CA_BUNDLE":
            context = (ssl.create_default_context(capath=path) if os.path.isdir(path)
                       else ssl.create_default_context(cafile=path))
        else:
            context = ssl.create_default_context()
            context.load_verify_locations(cafile=path)
    except (OSError, ssl.SSLError) as e:  # ssl.SSLError is an OSError too: named for the reader
        cause = e.strerror if isinstance(e, OSError) and e.strerror else one_line(e)
        raise ConfigError(f"{name}={path}: cannot load it as a CA bundle ({cause}); point it at a PEM "
                          "file of CA certificates, or unset it") from e
    return Trust(context, name)
