"""Webhook requests: the body, its HMAC-SHA256 signature, and one POST with bounded timeouts.

The body is the event's JSON plus `subscription_id` and `delivery_id`, serialised the same way on
every attempt. `X-DSS-Signature-256: sha256=<hex>` is the HMAC-SHA256 of exactly those bytes
under the subscription's secret (the scheme GitHub uses for its webhooks), so a receiver verifies
the raw body before parsing it. `requests` is imported only when a POST is made.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ria_store.errors import one_line
from ria_store.urls import redact_url

from .. import __version__
from .entry_file import Entry
from .subscriptions import Subscription

if TYPE_CHECKING:
    import requests

SIGNATURE_HEADER = "X-DSS-Signature-256"
EVENT_HEADER = "X-DSS-Event"
DELIVERY_HEADER = "X-DSS-Delivery"
ATTEMPT_HEADER = "X-DSS-Attempt"
USER_AGENT = f"dss-remote/{__version__}"
_SNIPPET = 200
_ERRNO_RE = re.compile(r"\[Errno -?\d+\] ([^'\")]+)")


def body(entry: Entry) -> bytes:
    """The POST body of a delivery: the same bytes on every attempt."""
    doc: dict[str, Any] = entry.event.to_json() | {"subscription_id": entry.subscription_id,
                                                   "delivery_id": entry.delivery_id}
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def sign(secret: str, data: bytes) -> str:
    """The X-DSS-Signature-256 value of `data`: `sha256=` and the hex HMAC-SHA256 under `secret`."""
    return "sha256=" + hmac.new(secret.encode(), data, hashlib.sha256).hexdigest()


def verify(secret: str, data: bytes, signature: str | None) -> bool:
    """What a receiver does: whether `signature` is `data`'s under `secret` (constant time)."""
    return signature is not None and hmac.compare_digest(sign(secret, data), signature)


def headers(entry: Entry, secret: str, data: bytes) -> dict[str, str]:
    return {"Content-Type": "application/json", "User-Agent": USER_AGENT,
            SIGNATURE_HEADER: sign(secret, data), EVENT_HEADER: entry.event.type,
            DELIVERY_HEADER: entry.delivery_id, ATTEMPT_HEADER: str(entry.attempts + 1)}


@dataclass(frozen=True)
class Outcome:
    """How one POST went: `ok` for a 2xx answer; `unreachable` when no answer came at all."""

    ok: bool
    status: int | None
    error: str | None = None
    unreachable: bool = False


def new_session() -> requests.Session:
    import requests  # noqa: PLC0415  (the push hook imports this package; keep it fast)

    session = requests.Session()
    session.headers["User-Agent"] = USER_AGENT
    return session


def _cause(e: Exception) -> str:
    m = _ERRNO_RE.search(str(e))
    return m.group(1).strip() if m else type(e).__name__


def post(session: requests.Session, sub: Subscription, entry: Entry, timeout: float) -> Outcome:
    """POST one delivery; never raises for what the network or the receiver does."""
    import requests  # noqa: PLC0415

    data = body(entry)
    url = redact_url(sub.url)
    try:
        resp = session.post(sub.url, data=data, headers=headers(entry, sub.secret, data),
                            timeout=(timeout, timeout), allow_redirects=False, stream=True)
    except requests.exceptions.ConnectTimeout:
        return Outcome(False, None, f"{url}: no connection within {timeout:g} s (is the receiver "
                       "up and reachable from this host?)", unreachable=True)
    except requests.exceptions.ReadTimeout:
        return Outcome(False, None, f"{url}: no answer within {timeout:g} s (the receiver should "
                       "answer at once and work afterwards)", unreachable=True)
    except requests.exceptions.ConnectionError as e:
        return Outcome(False, None, f"{url}: cannot connect ({_cause(e)}; is the receiver up?)",
                       unreachable=True)
    except requests.exceptions.RequestException as e:
        return Outcome(False, None, f"{url}: request failed ({one_line(e)[:_SNIPPET]})")
    with resp:
        if 200 <= resp.status_code < 300:
            return Outcome(True, resp.status_code)
        try:
            snippet = resp.raw.read(_SNIPPET, decode_content=True).decode("utf-8", "replace")
        except Exception:  # a body that breaks off: the status says enough
            snippet = ""
    error = f"{url}: HTTP {resp.status_code} {resp.reason or ''}".rstrip()
    if 300 <= resp.status_code < 400:
        error += " (redirects are not followed; subscribe the final URL)"
    elif snippet.strip():
        error += f": {one_line(snippet)}"
    return Outcome(False, resp.status_code, error)
