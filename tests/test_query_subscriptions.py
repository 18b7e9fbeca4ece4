"""Query subscriptions: `dss subscribe --query/--jmespath` and `PUT /v1/subscriptions` with
`jmespath_query`/`es_query`, delivered only for versions whose bundle document matches; real pushes,
a real receiver; the matching rules on hand-made documents."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from api_data import push_more, push_new
from fastapi.testclient import TestClient
from gate_double import GateDouble
from search_data import HUMAN, MAX_BYTES, MOUSE_V1
from test_subscriptions_api import ALICE, SPEC, _allow_private, body
from test_webhooks import dss, listing, pending, subscribe, wait_for
from webhook_receiver import Receiver

from dss_remote.config.search_settings import SearchSettings
from dss_remote.config.store_config import read_config, write_config
from dss_remote.history import events
from dss_remote.server.app import create_app
from dss_remote.webhooks import subscriptions
from dss_remote.webhooks.query_filter import EventDocument
from ria_store.errors import DssError

SECRET = "query-subscriber-secret"
MOUSE_JMESPATH = "files.meta_sample_json.species == 'mouse'"
MOUSE_ES = {"query": {"term": {"files.meta_sample_json.species": "mouse"}}}


def _got(receiver: Receiver, path: str) -> set[tuple[str, str, str]]:
    return {(r.json["type"], r.json["dataset_id"], r.json["version"])
            for r in receiver.unique_accepted().values() if r.path == path}


def test_only_matching_versions_are_delivered(store: Path, tmp_path: Path) -> None:
    """Two pushes (mouse, then human), a dataset-wide metadata change and a deletion, through the
    same subscriptions: every event to the plain one, to the query ones only those whose document
    says mouse."""
    # the store's search settings make the document: human's huge.json (species mouse) stays out
    write_config(store, dataclasses.replace(read_config(store), search=SearchSettings(max_bytes=MAX_BYTES)))
    receiver = Receiver(SECRET).start()
    try:
        subscribe(store, receiver.url("/all"), secret=SECRET)
        subscribe(store, receiver.url("/query"), "--query", "meta.species:mouse", secret=SECRET)
        subscribe(store, receiver.url("/jmespath"), "--jmespath", MOUSE_JMESPATH, secret=SECRET)
        subscriptions.create(store, receiver.url("/es"), SECRET, es_query=MOUSE_ES)
        listed = dss("subscriptions", "list", store).stdout
        assert "\tquery=meta.species:mouse\t" in listed and f"\tjmespath={MOUSE_JMESPATH}\t" in listed
        assert '\tes_query={"query": {"term": {"files.meta_sample_json.species": "mouse"}}}\t' in listed

        ds = push_new(store, tmp_path / "ds", MOUSE_V1)
        m = ds.versions[0]
        h = push_more(ds, HUMAN)  # meta/sample.json now says human
        wait_for(lambda: len(_got(receiver, "/all")) == 2 and not pending(store), "the pushes' deliveries")
        created = {(events.BUNDLE_CREATED, ds.dataset_id, m)}
        assert _got(receiver, "/all") == created | {(events.BUNDLE_CREATED, ds.dataset_id, h)}
        for path in ("/query", "/jmespath", "/es"):
            assert _got(receiver, path) == created, path

        # dataset-wide metadata: the document of the latest version (human's), now with meta.species
        res = dss("meta", "set", store, ds.dataset_id, "species=mouse")
        assert res.returncode == 0, res.stderr
        # (`dss meta set` starts no deliverer; the one `dss bundles delete` starts sends both)
        res = dss("bundles", "delete", store, f"{ds.dataset_id}@{m}", "--reason", "consent withdrawn")
        assert res.returncode == 0, res.stderr
        wait_for(lambda: len(_got(receiver, "/all")) == 4 and not pending(store), "the later deliveries")
        meta = (events.META_UPDATED, ds.dataset_id, "")
        deleted = (events.BUNDLE_DELETED, ds.dataset_id, m)
        assert _got(receiver, "/query") == created | {meta, deleted}
        assert _got(receiver, "/jmespath") == created | {deleted}, "the files of the latest say human"
        assert all(r.signed_ok for r in receiver.requests)
    finally:
        receiver.stop()


def test_subscribe_refuses_a_query_that_does_not_parse(store: Path) -> None:
    before = listing(store)
    res = dss("subscribe", store, "--url", "http://127.0.0.1:9/h", "--secret-file", store / "absent",
              "--query", "meta.species:")
    assert (res.returncode, res.stdout) == (1, "")
    assert res.stderr == ("dss: error: query does not parse at position 13 (at the end): 'meta.species:' "
                          "needs a value (meta.species:VALUE, or meta.species:* for any value)\n")
    assert listing(store) == before and subscriptions.ids(store) == set()


def test_subscribe_refuses_a_jmespath_that_does_not_parse(store: Path) -> None:
    before = listing(store)
    res = dss("subscribe", store, "--url", "http://127.0.0.1:9/h", "--secret-file", store / "absent",
              "--jmespath", "files.meta_sample_json.species ==")
    assert (res.returncode, res.stdout) == (1, "")
    assert res.stderr == ("dss: error: JMESPath expression 'files.meta_sample_json.species ==' does not "
                          "parse at position 33 (the expression is incomplete); see "
                          "https://jmespath.org/specification.html\n")
    assert listing(store) == before and subscriptions.ids(store) == set()


@pytest.fixture
def client(store: Path) -> TestClient:
    _allow_private(store)
    return TestClient(create_app(store, GateDouble.from_spec(SPEC)))


def test_api_keeps_and_shows_a_jmespath_or_es_query(client: TestClient, store: Path) -> None:
    shown = []
    for extra in ({"jmespath_query": MOUSE_JMESPATH}, {"es_query": MOUSE_ES}):
        res = client.put("/v1/subscriptions", json=body(**extra), headers=ALICE)
        assert res.status_code == 201, res.text
        sub = subscriptions.load(store, res.json()["uuid"])
        assert (sub.jmespath_query, sub.es_query) == (extra.get("jmespath_query"), extra.get("es_query"))
        got = client.get(f"/v1/subscriptions/{sub.id}", headers=ALICE).json()
        shown.append({k: got.get(k) for k in ("jmespath_query", "es_query")})
    assert shown == [{"jmespath_query": MOUSE_JMESPATH, "es_query": None},
                     {"jmespath_query": None, "es_query": MOUSE_ES}]


@pytest.mark.parametrize(("extra", "title"), [
    ({"jmespath_query": "files.x == `1"},
     "JMESPath expression 'files.x == `1' does not parse at position 11 (unclosed ` delimiter); see "
     "https://jmespath.org/specification.html"),
    ({"jmespath_query": "lenght(files)"},
     "JMESPath expression 'lenght(files)' calls lenght(), which JMESPath does not have; see "
     "https://jmespath.org/specification.html#built-in-functions"),
    ({"es_query": {"query": {"prefix": {"alias": "mo"}}}},
     "es_query clause 'prefix' at query.prefix is not supported; supported: match_all, match, term, "
     "terms, range, wildcard, exists, bool, constant_score"),
    ({"jmespath_query": MOUSE_JMESPATH, "es_query": MOUSE_ES},
     "a subscription takes at most one of query, jmespath_query, es_query (got jmespath_query and "
     "es_query); write the conditions as one query"),
])
def test_api_refuses_a_bad_query_with_400(client: TestClient, store: Path, extra: dict[str, Any],
                                          title: str) -> None:
    before = listing(store)
    res = client.put("/v1/subscriptions", json=body(**extra), headers=ALICE)
    assert (res.status_code, res.json()) == (400, {"status": 400, "code": "illegal_arguments",
                                                   "title": title})
    assert listing(store) == before and subscriptions.ids(store) == set()


# --- the matching rules, on hand-made documents (no git) ------------------------------------------

DSID = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
VERSION = "2026-11-22T031533.123456Z"


class _Document(EventDocument):
    """An event's document given by the test; counts how often it is built."""

    def __init__(self, event: events.Event, doc: dict[str, Any] | None) -> None:
        super().__init__(Path("/nonexistent"), event)
        self.doc, self.builds = doc, 0

    def _build(self) -> dict[str, Any]:
        self.builds += 1
        if self.doc is None:
            raise DssError("manifest unreadable")
        return self.doc


def _sub(**filters: Any) -> subscriptions.Subscription:
    return subscriptions.Subscription("00000000-0000-4000-8000-000000000000", "http://h/", "s", **filters)


def test_matching_rules(caplog: pytest.LogCaptureFixture) -> None:
    created = events.bundle_created(DSID, VERSION, "a" * 40, "refs/heads/main")
    doc = {"uuid": DSID, "version": VERSION, "event_type": "CREATE", "meta": {"doi": "10.1/x"},
           "files": {"meta_sample_json": {"species": "mouse", "weight_g": 21.5}}}
    mouse = _Document(created, doc)
    cases = {
        "query": (_sub(query="meta.species:mouse AND meta.weight_g<30"), True),
        "query, other species": (_sub(query="meta.species:human"), False),
        "store metadata": (_sub(query="meta.doi:10.1/x"), True),
        "jmespath": (_sub(jmespath_query=MOUSE_JMESPATH + " && event_type == 'CREATE'"), True),
        "jmespath, falsy result": (_sub(jmespath_query="files.meta_sample_json.organ"), False),
        "jmespath, type error (no match, as the DSS)": (_sub(jmespath_query="abs(files)"), False),
        "es_query": (_sub(es_query=MOUSE_ES), True),
        "query, other dataset": (_sub(query="meta.species:mouse", dataset=DSID.replace("0", "1")), False),
        "query, path filter missed": (_sub(query="meta.species:mouse", path="*.csv"), False),
        "no query": (_sub(), True),
    }
    got = {name: sub.matches(created, ["meta/sample.json"], mouse) for name, (sub, _) in cases.items()}
    assert got == {name: want for name, (_, want) in cases.items()}
    assert mouse.builds == 1, "built once per event, for every subscription"
    assert "abs()" in caplog.text, "a failing query is a warning"

    unbuilt = _Document(created, None)
    assert _sub(query="meta.species:human").matches(created, [], unbuilt), "cannot tell: deliver"
    assert "cannot build the bundle document" in caplog.text
    collected = events.keys_collected(DSID, summary="2 keys", when=datetime.now(timezone.utc))
    never = _Document(collected, doc)
    assert not _sub(query="meta.species:mouse").matches(collected, [], never)
    assert never.builds == 0
