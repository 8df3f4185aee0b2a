"""Retention rules: a queue's finished jobs removed past the age or count
its rule keeps, per queue and state, by one pass or by several workers at
once; the rule's schema checked by the server; tombstones purged on CouchDB."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest
from conftest import REAL_COUCHDB, running, wait_until

from queshot import Queue, cli, retention
from queshot.couch import Database, Forbidden
from queshot.jobs import QueueError, now_ms
from queshot.retention import Keep

HOUR_MS = 3_600_000


def finished(db: Database, queue: str, state: str, ages_ms: list[int]) -> list[str]:
    """Jobs of `queue` that finished in `state` that long ago, written as an
    admin (as a worker would have left them)."""
    now = now_ms()
    field = {"complete": "completed_at", "failed": "failed_at", "cancelled": "cancelled_at"}[state]
    docs = []
    for i, age in enumerate(ages_ms):
        doc = Queue(queue, db).new_job_doc({"i": i})
        doc.update(state=state, attempts=1, created_at=now - age - 10)
        doc[field] = now - age
        docs.append(doc)
    results = db.bulk_docs(docs)
    assert all("error" not in r for r in results), results
    return [doc["_id"] for doc in docs]


def alive(db: Database, ids: list[str]) -> set[str]:
    rows = db.all_docs(keys=ids)["rows"]
    return {row["id"] for row in rows if "value" in row and not row["value"].get("deleted")}


def test_a_rule_removes_what_it_no_longer_keeps_per_queue_and_state(db: Database) -> None:
    old, new = 5 * HOUR_MS, 60_000
    a_done = finished(db, "a", "complete", [old + 1, old, new + 2, new + 1, new])
    a_failed = finished(db, "a", "failed", [old, new])
    sub_done = finished(db, "a/b", "complete", [new + 3, new + 2, new + 1, new])
    c_done = finished(db, "c", "complete", [old, new])
    retention.set_rule(db, "a", complete=Keep(count=2), failed=Keep(age=3600))
    retention.set_rule(db, "c", failed=Keep(count=0))

    done = retention.apply(db)

    assert alive(db, a_done) == set(a_done[3:])  # the newest two
    assert alive(db, a_failed) == {a_failed[1]}  # younger than an hour
    assert alive(db, sub_done) == set(sub_done[2:])  # a/b goes by a's rule, its own newest two
    assert alive(db, c_done) == set(c_done)  # c limits failed jobs only
    assert (done.removed, done.refused, done.more) == (6, [], False)
    assert retention.apply(db).removed == 0


def test_a_rule_of_its_own_wins_over_the_queue_above(db: Database) -> None:
    sub_done = finished(db, "a/b", "complete", [1000, 2000, 3000])
    retention.set_rule(db, "a", complete=Keep(count=0))
    retention.set_rule(db, "a/b", complete=Keep(count=2))
    retention.apply(db)
    assert alive(db, sub_done) == set(sub_done[:2])


def test_the_budget_bounds_a_pass_and_the_next_goes_on(db: Database) -> None:
    ids = finished(db, "q", "complete", [1000 + i for i in range(30)])
    retention.set_rule(db, "q", complete=Keep(count=0))
    first = retention.apply(db, budget=20)
    assert (first.removed, first.more) == (20, True)
    assert retention.apply(db, budget=20).removed == 10
    assert alive(db, ids) == set()


def test_a_pass_pages_through_more_jobs_than_one_batch(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention, "BATCH", 7)
    ids = finished(db, "q", "complete", [1000 + i for i in range(30)])
    retention.set_rule(db, "q", complete=Keep(count=3))
    assert retention.apply(db).removed == 27
    assert alive(db, ids) == set(ids[:3])


@pytest.mark.parametrize("batch", [500, 2])
def test_a_count_keeps_exactly_that_many_of_jobs_finished_in_the_same_millisecond(
    db: Database, monkeypatch: pytest.MonkeyPatch, batch: int
) -> None:
    """Jobs that share a finish time are told apart by id, on both servers
    (pouchdb-server ignores startkey_docid/endkey_docid)."""
    monkeypatch.setattr(retention, "BATCH", batch)
    ids = finished(db, "q", "complete", [1000] * 9)
    retention.set_rule(db, "q", complete=Keep(count=3))
    assert retention.apply(db).removed == 6
    assert len(alive(db, ids)) == 3
    assert retention.apply(db).removed == 0


def test_passes_at_once_remove_each_job_once_without_errors(db: Database) -> None:
    ids = finished(db, "q", "complete", [1000 + i for i in range(600)])
    retention.set_rule(db, "q", complete=Keep(count=100))
    results: list[retention.Removal] = []
    start = threading.Barrier(4)

    def apply() -> None:
        start.wait()
        results.append(retention.apply(db))

    threads = [threading.Thread(target=apply) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(r.removed for r in results) == 500
    assert all(r.refused == [] for r in results)
    assert alive(db, ids) == set(ids[:100])  # the newest hundred: the youngest finish times


def test_workers_apply_the_rule_of_their_queues(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    queue = Queue("mail", db)
    other_done = finished(db, "other", "complete", [1000, 2000])
    retention.set_rule(db, "mail", complete=Keep(count=3))
    retention.set_rule(db, "other", complete=Keep(count=0))
    ids = queue.create_jobs({"i": i} for i in range(20))
    workers = [
        queue.create_worker(lambda job: None, concurrency=2, retention_interval=0.1)
        for _ in range(2)
    ]
    caplog.set_level(logging.INFO, logger="queshot")
    with running(*workers):
        wait_until(lambda: len(alive(db, ids)) == 3, timeout=60)
    assert alive(db, other_done) == set(other_done)  # not these workers' queue
    assert "could not be removed" not in caplog.text


BAD_RULES: list[tuple[dict[str, Any], str]] = [
    ({"complete": {"age": -1}}, "'complete.age' must be seconds"),
    ({"failed": {"count": 1.5}}, "'failed.count' must be a whole number"),
    ({"complete": {"keep": 3}}, "(no 'keep')"),
    ({"complete": 7}, "'complete' is a rule like"),
    ({"active": {"count": 1}}, "not 'active'"),
    ({"complete": {}}, "'age', 'count' or both"),
]


@pytest.mark.parametrize(("fields", "reason"), BAD_RULES)
def test_the_server_refuses_a_wrong_rule(db: Database, fields: dict[str, Any], reason: str) -> None:
    doc = {"_id": "queshot-retention:mail", "type": "queshot_retention", "queue": "mail", **fields}
    with pytest.raises(Forbidden) as refused:
        db.save(doc)
    assert refused.value.reason.startswith("queshot: invalid retention rule: ")
    assert reason in refused.value.reason


def test_the_server_refuses_a_rule_under_another_queues_id(db: Database) -> None:
    doc = {"_id": "queshot-retention:a", "type": "queshot_retention", "queue": "a/b"}
    with pytest.raises(Forbidden, match='"queshot-retention:a/b"'):
        db.save(doc)


def test_the_cli_sets_shows_applies_and_removes_a_rule(
    db: Database, server_url: str, capsys
) -> None:
    where = ["--url", server_url, "--db", db.name]
    ids = finished(db, "mail", "complete", [3 * HOUR_MS, 1000])
    assert cli.main(["retention", "set", "mail", "--complete-age", "2h", *where]) == 0
    assert cli.main(["retention", "show", *where]) == 0
    assert "mail: complete kept for 2h" in capsys.readouterr().out
    assert cli.main(["retention", "apply", *where]) == 0
    assert "removed 1 finished jobs" in capsys.readouterr().out
    assert alive(db, ids) == {ids[1]}
    assert cli.main(["retention", "remove", "mail", *where]) == 0
    assert retention.rules(db) == []
    assert cli.main(["retention", "set", "mail", *where]) == 1
    assert "say what to keep" in capsys.readouterr().err


def test_purge_takes_the_removed_jobs_tombstones_away_on_couchdb(db: Database) -> None:
    ids = finished(db, "q", "complete", [1000 + i for i in range(150)])
    retention.set_rule(db, "q", complete=Keep(count=0))
    if not REAL_COUCHDB:
        with pytest.raises(QueueError, match="pouchdb-server has none"):
            retention.apply(db, purge=True)
        pytest.skip("pouchdb-server has no _purge: the removed jobs stay as tombstones")

    done = retention.apply(db, purge=True)

    assert done.removed == 150
    rows = db.all_docs(keys=ids)["rows"]
    assert all(row.get("error") == "not_found" for row in rows)  # no tombstone left
    assert db.info()["doc_del_count"] == 0
