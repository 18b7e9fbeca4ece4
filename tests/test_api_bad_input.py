"""Bad input to the DSS read routes, a named test each: the exact DSS error body, no stack trace or
store path in it, and nothing in the store written or lost."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from api_data import Pushed, copy_sample
from fastapi.testclient import TestClient
from gate_double import GateDouble
from httpx import Response

from dss_remote.access.gate import Identity
from dss_remote.server import dss_mapping
from dss_remote.server.app import create_app

ADMIN = {"Authorization": "Bearer tok-admin"}
BOB = {"Authorization": "Bearer tok-bob"}
UNKNOWN = "00000000-0000-4000-8000-000000000000"
UUID_HINT = "is not a UUID like 4dc8313d-2567-4475-a4a0-17cdebad9c1d"
VERSION_HINT = "is not a version like 2026-11-22T031533.123456Z"
NO_VERSION = "2020-01-01T000000.000000Z"


@pytest.fixture(scope="module")
def pushed(tmp_path_factory: pytest.TempPathFactory, sample_template: Pushed) -> Pushed:
    return copy_sample(sample_template, tmp_path_factory.mktemp("bad"))


def _snapshot(root: Path) -> list[tuple[str, int, int]]:
    return sorted((str(p.relative_to(root)), p.lstat().st_size, p.lstat().st_mtime_ns)
                  for p in root.rglob("*"))


@pytest.fixture
def gate(pushed: Pushed) -> GateDouble:
    return GateDouble({"tok-admin": Identity("root", frozenset({"admins"})),
                       "tok-bob": Identity("bob", frozenset({"other"}))}, admins={"admins"})


@pytest.fixture
def client(pushed: Pushed, gate: GateDouble, tmp_path: Path) -> Iterator[TestClient]:
    """A client of the (private) dataset's store; the store is the same after the test."""
    before = _snapshot(pushed.store)
    yield TestClient(create_app(pushed.store, gate, cache_dir=tmp_path / "cache"))
    assert _snapshot(pushed.store) == before, "a refused request changed the store"


def _refused(res: Response, status: int, code: str, title: str) -> None:
    assert res.status_code == status, res.text
    assert res.json() == {"status": status, "code": code, "title": title}
    assert "Traceback" not in res.text and "/tmp/" not in res.text


def _bundle(p: Pushed) -> str:
    return f"/v1/bundles/{p.dataset_id}"


def _file(p: Pushed) -> str:
    return f"/v1/files/{dss_mapping.file_uuid(p.dataset_id, 'small.txt')}"


def test_malformed_bundle_uuid_is_400(client: TestClient) -> None:
    _refused(client.get("/v1/bundles/not-a-uuid", headers=ADMIN), 400, "illegal_arguments",
             f"uuid 'not-a-uuid' {UUID_HINT}")


def test_upper_case_bundle_uuid_is_400(client: TestClient, pushed: Pushed) -> None:
    upper = pushed.dataset_id.upper()
    _refused(client.get(f"/v1/bundles/{upper}", headers=ADMIN), 400, "illegal_arguments",
             f"uuid '{upper}' {UUID_HINT}")


def test_malformed_file_uuid_is_400(client: TestClient) -> None:
    _refused(client.get("/v1/files/1234", headers=ADMIN), 400, "illegal_arguments",
             f"uuid '1234' {UUID_HINT}")


def test_unknown_bundle_uuid_is_404(client: TestClient) -> None:
    _refused(client.get(f"/v1/bundles/{UNKNOWN}", headers=ADMIN), 404, "not_found",
             f"bundle {UNKNOWN} not found: no dataset with this id has bundle versions in this store")


def test_unknown_bundle_uuid_is_401_to_an_anonymous_caller(client: TestClient) -> None:
    # whether a bundle exists is not told to whoever may not read it
    res = client.get(f"/v1/bundles/{UNKNOWN}")
    assert res.status_code == 401 and res.json()["code"] == "unauthorized"


def test_unknown_file_uuid_is_404(client: TestClient) -> None:
    _refused(client.get(f"/v1/files/{UNKNOWN}", headers=ADMIN), 404, "not_found",
             f"file {UNKNOWN} not found in any bundle of this store")


def test_bundle_version_that_does_not_parse_is_400(client: TestClient, pushed: Pushed) -> None:
    _refused(client.get(_bundle(pushed), params={"version": "yesterday"}, headers=ADMIN), 400,
             "illegal_arguments", f"version 'yesterday' {VERSION_HINT}")


def test_file_version_that_does_not_parse_is_400(client: TestClient, pushed: Pushed) -> None:
    _refused(client.get(_file(pushed), params={"version": "2026-13-01"}, headers=ADMIN), 400,
             "illegal_arguments", f"version '2026-13-01' {VERSION_HINT}")


def test_bundle_version_that_does_not_exist_is_404(client: TestClient, pushed: Pushed) -> None:
    _refused(client.get(_bundle(pushed), params={"version": NO_VERSION}, headers=ADMIN), 404, "not_found",
             f"bundle {pushed.dataset_id} has no version {NO_VERSION}; list its versions with "
             f"GET /v1/bundles/all?prefix={pushed.dataset_id}")


def test_file_version_that_does_not_exist_is_404(client: TestClient, pushed: Pushed) -> None:
    fuuid = dss_mapping.file_uuid(pushed.dataset_id, "small.txt")
    _refused(client.get(_file(pushed), params={"version": NO_VERSION}, headers=ADMIN), 404, "not_found",
             f"file {fuuid} has no version {NO_VERSION}; GET the bundle to see its files' versions")


@pytest.mark.parametrize("per_page", ["9", "501", "-1", "ten", "1e3"])
def test_bundle_per_page_out_of_range_is_400(client: TestClient, pushed: Pushed, per_page: str) -> None:
    _refused(client.get(_bundle(pushed), params={"per_page": per_page}, headers=ADMIN), 400,
             "illegal_arguments", f"per_page '{per_page}' must be a whole number from 10 to 500")


def test_bundles_all_per_page_out_of_range_is_400(client: TestClient) -> None:
    _refused(client.get("/v1/bundles/all", params={"per_page": "501"}, headers=ADMIN), 400,
             "illegal_arguments", "per_page '501' must be a whole number from 10 to 500")


def test_events_per_page_out_of_range_is_400(client: TestClient) -> None:
    _refused(client.get("/v1/events", params={"per_page": "0"}, headers=ADMIN), 400,
             "illegal_arguments", "per_page '0' must be a whole number from 1 to 500")


def test_start_at_past_the_last_file_is_400(client: TestClient, pushed: Pushed) -> None:
    res = client.get(_bundle(pushed), params={"start_at": "5000"}, headers=ADMIN)
    assert res.status_code == 400 and res.json()["code"] == "illegal_arguments"
    assert res.json()["title"].startswith("start_at 5000 is past the last file of bundle")


def test_conflicting_duplicate_parameters_are_400(client: TestClient, pushed: Pushed) -> None:
    _refused(client.get(f"{_bundle(pushed)}?replica=aws&replica=gcp", headers=ADMIN), 400,
             "illegal_arguments", "query parameter replica is given more than once with different values "
             "('aws', 'gcp'); give it once")


def test_conflicting_duplicate_file_versions_are_400(client: TestClient, pushed: Pushed) -> None:
    res = client.get(f"{_file(pushed)}?version={pushed.versions[0]}&version={pushed.versions[1]}",
                     headers=ADMIN)
    assert res.status_code == 400
    assert res.json()["title"].startswith("query parameter version is given more than once")


def test_identical_duplicate_parameters_are_accepted(client: TestClient, pushed: Pushed) -> None:
    res = client.get(f"{_bundle(pushed)}?replica=aws&per_page=10&replica=aws", headers=ADMIN)
    assert res.status_code == 206


def test_unknown_replica_is_400_naming_the_known_ones(client: TestClient, pushed: Pushed) -> None:
    _refused(client.get(_bundle(pushed), params={"replica": "azure"}, headers=ADMIN), 400,
             "illegal_arguments", "unknown replica 'azure'; known: aws, gcp, store")


def test_unknown_replica_of_a_file_is_400(client: TestClient, pushed: Pushed) -> None:
    _refused(client.get(_file(pushed), params={"replica": "azure"}, headers=ADMIN), 400,
             "illegal_arguments", "unknown replica 'azure'; known: aws, gcp, store")


def test_unknown_query_parameter_is_400(client: TestClient, pushed: Pushed) -> None:
    _refused(client.get(_bundle(pushed), params={"directurls": "true"}, headers=ADMIN), 400,
             "illegal_arguments", "unknown query parameter 'directurls'; this route takes per_page, "
             "replica, start_at, version")


def test_event_without_version_is_400(client: TestClient, pushed: Pushed) -> None:
    _refused(client.get(f"/v1/events/{pushed.dataset_id}", headers=ADMIN), 400, "illegal_arguments",
             "version is required: GET /v1/events/{uuid}?version=<bundle version>")


def test_events_from_date_that_does_not_parse_is_400(client: TestClient) -> None:
    _refused(client.get("/v1/events", params={"from_date": "last tuesday"}, headers=ADMIN), 400,
             "illegal_arguments", "from_date 'last tuesday' is not a time like 2026-11-22T03:15:33Z or "
             "2026-11-22T031533.123456Z")


# -- path traversal in every parameter ---------------------------------------------------------


@pytest.mark.parametrize("raw", ["%2e%2e", "%2E%2E"])  # a bare .. is resolved by the client
def test_dot_dot_as_a_bundle_uuid_is_400(client: TestClient, raw: str) -> None:
    _refused(client.get(f"/v1/bundles/{raw}", headers=ADMIN), 400, "illegal_arguments",
             f"uuid '..' {UUID_HINT}")


def test_dot_dot_as_a_file_uuid_is_400(client: TestClient) -> None:
    _refused(client.get("/v1/files/%2e%2e", headers=ADMIN), 400, "illegal_arguments",
             f"uuid '..' {UUID_HINT}")


def test_slashes_in_a_uuid_reach_no_route(client: TestClient) -> None:
    res = client.get("/v1/bundles/..%2F..%2F..%2Fetc%2Fpasswd", headers=ADMIN)
    assert res.status_code in (400, 404) and set(res.json()) == {"status", "code", "title"}
    assert "root:" not in res.text


@pytest.mark.parametrize("value", ["../../etc/passwd", "/etc/passwd", "%2e%2e/x"])
def test_a_path_as_a_version_is_400(client: TestClient, pushed: Pushed, value: str) -> None:
    _refused(client.get(_bundle(pushed), params={"version": value}, headers=ADMIN), 400,
             "illegal_arguments", f"version {value!r} {VERSION_HINT}")


@pytest.mark.parametrize("value", ["../", "/etc"])
def test_a_path_as_a_prefix_is_400(client: TestClient, value: str) -> None:
    _refused(client.get("/v1/bundles/all", params={"prefix": value}, headers=ADMIN), 400,
             "illegal_arguments", f"prefix {value!r} must be the start of a UUID (0-9, a-f and -)")


def test_a_path_as_search_after_is_400(client: TestClient) -> None:
    _refused(client.get("/v1/bundles/all", params={"search_after": "../../x"}, headers=ADMIN), 400,
             "illegal_arguments", "search_after '../../x' is not <bundle uuid>.<version>")


def test_a_path_as_start_after_is_400(client: TestClient) -> None:
    _refused(client.get("/v1/events", params={"start_after": "../../etc/passwd"}, headers=ADMIN), 400,
             "illegal_arguments", "start_after '../../etc/passwd' is not an event id from a previous page")


def test_a_path_as_a_replica_is_400(client: TestClient, pushed: Pushed) -> None:
    _refused(client.get(_file(pushed), params={"replica": "../../etc"}, headers=ADMIN), 400,
             "illegal_arguments", "unknown replica '../../etc'; known: aws, gcp, store")


# -- a private dataset -------------------------------------------------------------------------


def test_private_bundle_is_401_to_an_anonymous_caller(client: TestClient, pushed: Pushed,
                                                      gate: GateDouble) -> None:
    res = client.get(_bundle(pushed))
    _refused(res, 401, "unauthorized", f"dataset {pushed.dataset_id} is not public: sign in with a dss "
             "token or a JWT from a trusted issuer (Authorization: Bearer ...)")
    assert "Bearer" in res.headers["WWW-Authenticate"]
    assert gate.audited[-1]["status"] == 401 and gate.audited[-1]["dataset"] == pushed.dataset_id


def test_private_bundle_is_403_to_another_caller(client: TestClient, pushed: Pushed,
                                                 gate: GateDouble) -> None:
    _refused(client.get(_bundle(pushed), headers=BOB), 403, "forbidden",
             f"bob may not read dataset {pushed.dataset_id}; ask an admin for "
             "`dss acl set STORE ID --read GROUP`")
    assert gate.audited[-1]["identity"] == "bob"


def test_private_file_is_401_to_an_anonymous_caller_with_no_byte_or_header(client: TestClient,
                                                                          pushed: Pushed) -> None:
    res = client.get(_file(pushed))
    assert res.status_code == 401 and res.json()["code"] == "unauthorized"
    assert not any(h.lower().startswith("x-dss-") for h in res.headers)


def test_private_file_head_is_403_to_another_caller(client: TestClient, pushed: Pushed) -> None:
    res = client.head(_file(pushed), headers=BOB)
    assert res.status_code == 403
    assert not any(h.lower().startswith("x-dss-") for h in res.headers)


def test_private_event_is_403_to_another_caller(client: TestClient, pushed: Pushed) -> None:
    res = client.get(f"/v1/events/{pushed.dataset_id}", params={"version": pushed.versions[0]}, headers=BOB)
    assert res.status_code == 403 and res.json()["code"] == "forbidden"


def test_a_bad_token_is_401(client: TestClient, pushed: Pushed) -> None:
    res = client.get(_bundle(pushed), headers={"Authorization": "Bearer nope"})
    assert res.status_code == 401 and res.json()["code"] == "unauthorized"
