"""Which GCS failures are retried: google-cloud-storage's rule, minus refused connections (nothing
listens there; the next replica should be asked now, not after a 90 s retry deadline)."""

from __future__ import annotations

import pytest
import requests
from cloud_servers import HOST, free_port
from google.api_core import exceptions as gexc

from dss_remote.backends.gcs import _refused, _worth_retrying


def _refused_error() -> requests.ConnectionError:
    with pytest.raises(requests.ConnectionError) as e:
        requests.get(f"http://{HOST}:{free_port()}/storage/v1/b", timeout=5)
    return e.value


def test_a_refused_connection_is_not_retried() -> None:
    e = _refused_error()
    assert _refused(e)
    assert not _worth_retrying(e)


def test_a_reset_connection_and_a_503_are_still_retried() -> None:
    reset = requests.ConnectionError(ConnectionResetError(104, "Connection reset by peer"))
    assert not _refused(reset) and _worth_retrying(reset)
    assert _worth_retrying(gexc.ServiceUnavailable("busy"))


def test_a_404_is_not_retried() -> None:
    assert not _worth_retrying(gexc.NotFound("no such object"))
