"""The callback guard: no subscription made through the API makes the server call into its network.

No test here sends traffic outside 127.0.0.0/8: names resolving to private or metadata addresses
are made by patching `socket.getaddrinfo` in-process, and every outgoing connection attempt is
recorded by patching `socket.create_connection` (what urllib3, under requests, connects with).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_webhooks import SECRET, make_event, pending, set_policy
from webhook_receiver import Receiver

from dss_remote.config.server_settings import ServerSettings
from dss_remote.config.store_config import read_config, write_config
from dss_remote.webhooks import callback_guard, outbox, subscriptions
from dss_remote.webhooks.callback_guard import CallbackRefusedError, check_callback
from dss_remote.webhooks.deliverer import deliver

FIX = '"server.allow_private_callbacks": true'


def fake_dns(monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[str]]) -> list[str]:
    """Make getaddrinfo answer `answers` for those names (others as before); returns the names asked."""
    asked: list[str] = []
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        if host in answers:
            asked.append(host)
            return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "",
                     (a, int(port or 80))) for a in answers[host]]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every address an outgoing TCP connection was attempted to (refused unless on 127.0.0.1)."""
    attempted: list[Any] = []
    real = socket.create_connection

    def create_connection(address: Any, *args: Any, **kwargs: Any) -> socket.socket:
        attempted.append(address)
        if address[0] not in ("127.0.0.1", "localhost"):
            raise AssertionError(f"a test tried to connect to {address}")
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", create_connection)
    return attempted


def _refused(url: str, message: str) -> None:
    with pytest.raises(CallbackRefusedError) as err:
        check_callback(url, allow_private=False)
    assert str(err.value) == message


# --- the check ----------------------------------------------------------------------------------

def test_a_name_resolving_to_10_x_is_refused_naming_host_address_and_setting(
        monkeypatch: pytest.MonkeyPatch) -> None:
    asked = fake_dns(monkeypatch, {"hooks.internal.example": ["10.1.2.3"]})
    _refused("https://hooks.internal.example/dss",
             "callback host hooks.internal.example resolves to 10.1.2.3, a private address; give a "
             "callback on a public address, or let this store call private ones with "
             f"{FIX} in its dss/config.json")
    assert asked == ["hooks.internal.example"]


def test_a_name_resolving_to_the_metadata_address_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_dns(monkeypatch, {"evil.example.org": ["169.254.169.254"]})
    with pytest.raises(CallbackRefusedError,
                       match=re.escape("resolves to 169.254.169.254, a cloud metadata address")):
        check_callback("http://evil.example.org/x", allow_private=False)


def test_one_private_address_among_public_ones_is_enough_to_refuse(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_dns(monkeypatch, {"mixed.example.org": ["93.184.216.34", "192.168.1.7"]})
    with pytest.raises(CallbackRefusedError, match=re.escape("resolves to 192.168.1.7, a private address")):
        check_callback("https://mixed.example.org/x", allow_private=False)


def test_a_name_resolving_to_public_addresses_only_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = fake_dns(monkeypatch, {"ci.example.org": ["93.184.216.34", "2606:2800:220:1::1"]})
    check_callback("https://ci.example.org:8443/dss", allow_private=False)
    assert asked == ["ci.example.org"]


def test_loopback_literal_is_refused() -> None:
    _refused("http://127.0.0.1:9/hook",
             "callback host 127.0.0.1 resolves to 127.0.0.1, a loopback address; give a callback "
             f"on a public address, or let this store call private ones with {FIX} in its "
             "dss/config.json")


def test_localhost_is_refused() -> None:
    with pytest.raises(CallbackRefusedError, match=r"callback host localhost resolves to .*loopback"):
        check_callback("http://localhost:9/hook", allow_private=False)


def test_the_aws_ipv6_metadata_literal_is_refused() -> None:
    with pytest.raises(CallbackRefusedError,
                       match=re.escape("resolves to fd00:ec2::254, a cloud metadata address")):
        check_callback("http://[fd00:ec2::254]/latest", allow_private=False)


def test_metadata_google_internal_is_refused_by_name_without_a_lookup(
        monkeypatch: pytest.MonkeyPatch) -> None:
    asked = fake_dns(monkeypatch, {"metadata.google.internal": ["93.184.216.34"]})
    _refused("http://metadata.google.internal./computeMetadata/v1/",
             "callback host metadata.google.internal is a cloud metadata service; give a callback "
             f"on a public address, or let this store call private ones with {FIX} in its "
             "dss/config.json")
    assert asked == []


@pytest.mark.parametrize("address, kind", [
    ("0.0.0.0", "unspecified"), ("224.0.0.1", "multicast"), ("169.254.10.1", "link-local"),
    ("172.16.0.1", "private"), ("100.64.0.1", "not a public address"), ("240.0.0.1", "reserved"),
    ("::1", "loopback"), ("fe80::1", "link-local"), ("fc00::1", "private"),
    ("::ffff:10.0.0.1", "private")])
def test_each_kind_of_non_public_address_is_refused(monkeypatch: pytest.MonkeyPatch, address: str,
                                                    kind: str) -> None:
    fake_dns(monkeypatch, {"x.example.org": [address]})
    shown = ipaddress.ip_address(address)  # ::ffff:10.0.0.1 prints as ::ffff:a00:1
    with pytest.raises(CallbackRefusedError, match=re.escape(f"resolves to {shown}, ") + f".*{kind}"):
        check_callback("https://x.example.org/", allow_private=False)


def test_a_name_that_does_not_resolve_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: Any, **kwargs: Any) -> list[Any]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fail)
    with pytest.raises(CallbackRefusedError,
                       match=re.escape("callback host nowhere.example.org does not resolve")):
        check_callback("https://nowhere.example.org/", allow_private=False)


def test_allow_private_skips_the_check_and_the_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = fake_dns(monkeypatch, {"hooks.internal.example": ["10.1.2.3"]})
    check_callback("https://hooks.internal.example/dss", allow_private=True)
    check_callback("http://169.254.169.254/latest", allow_private=True)
    assert asked == []


def test_the_guard_names_the_setting_the_config_parses() -> None:
    assert callback_guard.SETTING == "server.allow_private_callbacks"
    assert "allow_private_callbacks" in ServerSettings().to_json()


# --- at delivery --------------------------------------------------------------------------------

@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(SECRET).start()
    yield r
    r.stop()


def _allow_private(store: Path, allow: bool) -> None:
    cfg = read_config(store)
    write_config(store, dataclasses.replace(cfg, server=ServerSettings(allow_private_callbacks=allow)))


def test_delivery_to_an_owned_subscription_whose_name_now_resolves_to_10_x_is_never_sent(
        store: Path, monkeypatch: pytest.MonkeyPatch, connections: list[Any]) -> None:
    set_policy(store, (0, 0), give_up_after=0)
    sub = subscriptions.create(store, "http://hooks.example.org:8080/dss", SECRET, owner="alice")
    event = make_event(store, 1)
    outbox.enqueue(store, event, [])
    fake_dns(monkeypatch, {"hooks.example.org": ["10.9.8.7"]})  # DNS changed after subscribing
    report = deliver(store, read_config(store).delivery)
    assert connections == []
    assert report.delivered == 0 and pending(store) == []
    (dead,) = outbox.iter_failed(store)
    assert (dead.subscription_id, dead.event_id, dead.attempts) == (sub.id, event.event_id, 2)
    assert dead.reason.startswith("gave up after 2 attempts")
    assert dead.last_error == (
        "not sent: callback host hooks.example.org resolves to 10.9.8.7, a private address; give a "
        f"callback on a public address, or let this store call private ones with {FIX} in its "
        "dss/config.json")


def test_a_refused_delivery_stays_in_the_outbox_with_the_reason_until_the_schedule_ends(
        store: Path, connections: list[Any], receiver: Receiver) -> None:
    set_policy(store, (0, 3600), give_up_after=7200)
    sub = subscriptions.create(store, receiver.url(), SECRET, owner="alice")
    outbox.enqueue(store, make_event(store, 2), [])
    report = deliver(store, read_config(store).delivery, once=True)
    assert report.delivered == 0 and report.failed == 1
    (entry,) = pending(store)
    assert entry.subscription_id == sub.id and entry.attempts == 1
    assert entry.last_error is not None and entry.last_error.startswith(
        "not sent: callback host 127.0.0.1 resolves to 127.0.0.1, a loopback address")
    assert receiver.requests == [] and connections == []


def test_an_owned_subscription_is_delivered_when_the_store_allows_private_callbacks(
        store: Path, receiver: Receiver) -> None:
    _allow_private(store, True)
    subscriptions.create(store, receiver.url(), SECRET, owner="alice")
    outbox.enqueue(store, make_event(store, 3), [])
    report = deliver(store, read_config(store).delivery, once=True)
    assert report.delivered == 1 and pending(store) == []
    (got,) = receiver.requests
    assert got.signed_ok


def test_a_subscription_made_by_dss_subscribe_stays_trusted(store: Path, receiver: Receiver) -> None:
    subscriptions.create(store, receiver.url(), SECRET)  # no owner: an admin on the store made it
    outbox.enqueue(store, make_event(store, 4), [])
    report = deliver(store, read_config(store).delivery, once=True)
    assert report.delivered == 1 and len(receiver.requests) == 1


def test_old_subscription_files_without_owner_still_load(store: Path) -> None:
    sub = subscriptions.create(store, "https://ci.example.org/hook", SECRET)
    path = subscriptions.subscription_path(store, sub.id)
    assert "owner" not in path.read_text()
    assert subscriptions.load(store, sub.id).owner is None


def test_owner_and_key_id_round_trip_through_the_file(store: Path) -> None:
    sub = subscriptions.create(store, "https://ci.example.org/hook", SECRET, owner="alice",
                               key_id="ci-key-1")
    loaded = subscriptions.load(store, sub.id)
    assert (loaded.owner, loaded.key_id) == ("alice", "ci-key-1")
    assert "secret" not in loaded.public_json() and loaded.public_json()["owner"] == "alice"
