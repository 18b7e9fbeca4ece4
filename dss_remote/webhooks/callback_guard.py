"""Whether a subscription's callback URL may be called: never into the server's own network.

Once anyone with a token can subscribe, a callback URL is a way to make the server POST to
addresses only it can reach (a metadata service, an admin port on loopback, a private subnet).
As the HCA DSS did, a callback host must resolve only to public addresses: every address
`getaddrinfo` gives is checked (one private address is enough to refuse), and the cloud metadata
names and addresses are refused by name too. The store config's `server.allow_private_callbacks`
turns the check off (tests, and stores whose receivers live on the private network).

Who is checked (a decision of issue 17): subscriptions that carry an `owner`, i.e. made through
the HTTP API. `dss subscribe` is run by an admin with a shell on the store, who can reach those
addresses anyway; its subscriptions stay trusted, so existing stores keep delivering.
The check runs at subscribe time and again before each delivery, because DNS answers change.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

from ria_store.errors import DssError

logger = logging.getLogger(__name__)

#: the store config setting that allows private callbacks, as an admin would write it
SETTING = "server.allow_private_callbacks"
#: names and addresses of cloud instance-metadata services (AWS, GCP, Azure, Alibaba, AWS IPv6)
METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata.goog", "metadata"})
METADATA_ADDRESSES = frozenset({ipaddress.ip_address("169.254.169.254"),
                                ipaddress.ip_address("fd00:ec2::254"),
                                ipaddress.ip_address("100.100.100.200")})

Resolver = Callable[..., Sequence[tuple[Any, ...]]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class CallbackRefusedError(DssError):
    """A callback URL whose host is (or resolves to) an address the server must not call."""


def why_refused(address: IPAddress) -> str | None:
    """What kind of non-public address `address` is; None for a public one."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return why_refused(address.ipv4_mapped)
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    for kind, flag in (("loopback", address.is_loopback), ("unspecified", address.is_unspecified),
                       ("link-local", address.is_link_local), ("multicast", address.is_multicast),
                       ("reserved", address.is_reserved), ("private", address.is_private)):
        if flag:
            return f"a {kind} address"
    if not address.is_global:  # e.g. 100.64.0.0/10 (carrier-grade NAT), 6to4/Teredo oddities
        return "not a public address"
    return None


def check_callback(url: str, *, allow_private: bool, resolve: Resolver | None = None) -> None:
    """Go on only if `url`'s host resolves to public addresses only (or private ones are allowed);
    CallbackRefusedError naming the host, the address and the setting otherwise."""
    if allow_private:
        return
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".").lower()
    port = parts.port or (443 if parts.scheme == "https" else 80)
    fix = (f"give a callback on a public address, or let this store call private ones with "
           f'"{SETTING}": true in its dss/config.json')
    if host in METADATA_HOSTS:
        raise CallbackRefusedError(f"callback host {host} is a cloud metadata service; {fix}")
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [literal]
    else:
        # looked up at call time, so a test's monkeypatch of socket.getaddrinfo is what answers
        lookup = resolve or socket.getaddrinfo
        try:
            infos = lookup(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as e:
            raise CallbackRefusedError(f"callback host {host} does not resolve ({e}); the server "
                                       "calls only hosts it can check: fix the name or the DNS"
                                       ) from e
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
        if not addresses:
            raise CallbackRefusedError(f"callback host {host} resolves to no address; fix the name "
                                       "or the DNS")
    for address in addresses:
        kind = why_refused(address)
        if kind is not None:
            raise CallbackRefusedError(f"callback host {host} resolves to {address}, {kind}; {fix}")
    logger.debug("callback host %s resolves to public %s", host, ", ".join(map(str, addresses)))
