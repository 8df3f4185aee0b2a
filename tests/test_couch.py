"""queshot.couch against the real test server: typed errors, bulk writes, views,
revision trees and the `_changes` iterator."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from conftest import REAL_COUCHDB

from queshot.couch import (
    Conflict,
    Couch,
    Database,
    Forbidden,
    NotFound,
    ServerUnreachable,
    Unauthorized,
)
from queshot.devserver import free_port


def job(**fields: Any) -> dict[str, Any]:
    return {"queues": "q", "state": "inactive", "created_at": 1, **fields}


@pytest.fixture
def plain(couch: Couch, db_name: str) -> Database:
    """A fresh database with no design docs."""
    db = couch.database(db_name)
    db.create()
    return db


# -- typed errors ----------------------------------------------------------------------


def test_missing_document_is_not_found(plain: Database) -> None:
    with pytest.raises(NotFound) as caught:
        plain.get("nope")
    assert caught.value.status == 404
    assert plain.get_or_none("nope") is None


def test_stale_revision_is_a_conflict(plain: Database) -> None:
    doc = {"_id": "d", "n": 1}
    first = plain.save(doc)
    plain.save(doc)

    with pytest.raises(Conflict) as caught:
        plain.save({"_id": "d", "_rev": first, "n": 2})
    assert caught.value.status == 409


def test_invalid_job_is_forbidden_with_the_validators_reason(db: Database) -> None:
    with pytest.raises(Forbidden) as caught:
        db.save(job(state="weird"))
    assert caught.value.status == 403
    assert "'state' must be one of" in caught.value.reason
    assert '"weird"' in caught.value.reason
    assert caught.value.reason in str(caught.value)


def test_unreachable_server(db_name: str) -> None:
    url = f"http://alice:s3cret@127.0.0.1:{free_port()}/"
    with Couch(url) as couch, pytest.raises(ServerUnreachable) as caught:
        couch.database(db_name).exists()
    assert "s3cret" not in str(caught.value)


class Refuse401(BaseHTTPRequestHandler):
    """Answers every request as CouchDB does a wrong password."""

    BODY = json.dumps({"error": "unauthorized", "reason": "Name or password is incorrect."})

    def _refuse(self) -> None:
        body = self.BODY.encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PUT = do_POST = do_DELETE = _refuse

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def refusing_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Refuse401)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_wrong_password_message(refusing_url: str) -> None:
    url = refusing_url.replace("http://", "http://alice:s3cret@")
    with Couch(url) as couch, pytest.raises(Unauthorized) as caught:
        couch.info()
    message = str(caught.value)
    assert refusing_url in message
    assert "Name or password is incorrect." in message
    assert "alice" in message
    assert "s3cret" not in message
    assert caught.value.reason == "Name or password is incorrect."


# -- bulk writes, views, revisions ---------------------------------------------------------


def test_bulk_docs_results_pair_by_id(db: Database) -> None:
    docs = [job(_id="ok1"), job(_id="bad", state="weird"), job(_id="ok2")]

    results = {row["id"]: row for row in db.bulk_docs(docs)}

    assert set(results) == {"ok1", "bad", "ok2"}
    assert results["ok1"]["ok"] and results["ok2"]["ok"]
    assert results["bad"]["error"] == "forbidden"
    assert "'state' must be one of" in results["bad"]["reason"]
    assert db.get("ok1")["_rev"] == results["ok1"]["rev"]
    assert db.get_or_none("bad") is None


def test_view_with_keys(db: Database) -> None:
    def blocked(*ids: str) -> dict[str, Any]:
        return job(state="blocked", depends_on=list(ids), waiting_for=list(ids))

    db.bulk_docs([blocked("a"), blocked("a", "c"), blocked("b")])

    result = db.view("queshot", "dependents", keys=["c", "a"], group=True)

    assert [(row["key"], row["value"]) for row in result["rows"]] == [("c", 1), ("a", 2)]


def test_open_revs_returns_every_leaf(plain: Database) -> None:
    # A plain database: pouchdb-server silently drops new_edits=false writes to
    # an existing document when a validate_doc_update exists (CouchDB does not).
    doc = {"_id": "d", "n": 1}
    plain.save(doc)
    parent = doc["_rev"].split("-", 1)[1]
    branches = [uuid.uuid4().hex for _ in range(2)]
    plain.bulk_docs(
        [
            {"_id": "d", "_rev": f"2-{b}", "n": 2, "_revisions": {"start": 2, "ids": [b, parent]}}
            for b in branches
        ],
        new_edits=False,
    )

    leaves = plain.open_revs("d")

    assert sorted(leaf["_rev"] for leaf in leaves) == sorted(f"2-{b}" for b in branches)
    assert all(leaf["n"] == 2 for leaf in leaves)
    assert len(plain.get("d", conflicts=True)["_conflicts"]) == 1


# -- _changes ----------------------------------------------------------------------------------


def first_change_after_start(db: Database, feed: str) -> tuple[dict[str, Any], list[str]]:
    """The first row a `since=now` feed yields, and the ids written meanwhile. The
    request may reach the server after a write, so writes go on until a row shows."""
    rows: list[dict[str, Any]] = []
    got = threading.Event()

    def consume() -> None:
        rows.append(next(db.changes(feed=feed, since="now", heartbeat=0.2)))
        got.set()

    threading.Thread(target=consume, daemon=True).start()
    written: list[str] = []
    while not got.wait(0.2):
        assert len(written) < 25, "the feed yielded nothing"
        doc: dict[str, Any] = {"n": len(written)}
        db.save(doc)
        written.append(doc["_id"])
    return rows[0], written


@pytest.mark.parametrize("feed", ["continuous", "longpoll"])
def test_changes_since_now_yields_later_changes(plain: Database, feed: str) -> None:
    plain.save({"_id": "before"})

    row, written = first_change_after_start(plain, feed)

    assert row["id"] in written
    assert row["changes"][0]["rev"].startswith("1-")


def test_changes_stop_event_ends_a_quiet_feed(plain: Database) -> None:
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()

    rows = list(plain.changes(feed="continuous", since="now", heartbeat=0.2, stop=stop))

    assert rows == []
    assert time.monotonic() - started < 3


def test_changes_normal_feed_yields_what_is_there_and_ends(plain: Database) -> None:
    plain.bulk_docs([{"_id": "a"}, {"_id": "b"}])
    plain.delete("a", plain.get("a")["_rev"])

    rows = list(plain.changes(feed="normal", since=0, include_docs=True))

    assert {row["id"]: row.get("deleted", False) for row in rows} == {"a": True, "b": False}
    assert rows[-1]["doc"]["_id"] in ("a", "b")


def test_a_continuous_feed_splits_rows_only_at_newlines(plain: Database) -> None:
    # JSON leaves U+2028, U+2029 and U+0085 unescaped in strings; split there
    # (as str.splitlines and httpx's iter_lines do), one such document cut
    # its row in two and killed every worker's feed thread (found by the fuzzer).
    texts = ["a\u2028b", "c\u2029d", "e\x85f", "g\x1ch", "i\rj"]
    plain.bulk_docs([{"_id": f"d{i}", "text": t} for i, t in enumerate(texts)])
    stop = threading.Event()
    feed = plain.changes(feed="continuous", since=0, include_docs=True, heartbeat=0.2, stop=stop)
    got = {}
    for row in feed:
        if row.get("doc"):
            got[row["id"]] = row["doc"]["text"]
        if len(got) == len(texts):
            stop.set()
    assert got == {f"d{i}": t for i, t in enumerate(texts)}


@pytest.mark.parametrize("feed", ["normal", "continuous"])
def test_changes_selector_is_applied_by_couchdb_and_refused_by_pouchdb(
    plain: Database, feed: str
) -> None:
    """CouchDB filters by a Mango selector sent in the POST body, as it
    documents; pouchdb-server does not read that body: a normal feed answers
    404 (the worker probes with one, then checks every change itself)."""
    if not REAL_COUCHDB and feed == "continuous":
        pytest.skip("pouchdb-server's continuous feed with a selector neither answers nor fails")
    plain.bulk_docs([{"_id": "wanted", "state": "inactive"}, {"_id": "other", "state": "done"}])
    stop = threading.Event()
    changes = plain.changes(
        feed=feed, since=0, heartbeat=0.5, stop=stop, selector={"state": "inactive"}
    )
    if not REAL_COUCHDB:
        with pytest.raises(NotFound):
            next(changes)
        return
    threading.Timer(2.0, stop.set).start()
    assert [row["id"] for row in changes] == ["wanted"]


def test_changes_longpoll_yields_existing_rows(plain: Database) -> None:
    plain.bulk_docs([{"_id": "a"}, {"_id": "b"}])

    feed = plain.changes(feed="longpoll", since=0)
    ids = {next(feed)["id"], next(feed)["id"]}
    feed.close()

    assert ids == {"a", "b"}
