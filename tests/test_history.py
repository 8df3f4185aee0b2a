"""History that does not lie: the workers' history counters (queshot.history,
worker/history.py) count jobs that ended complete or failed per minute and
queue, in documents of their own, so that requeueing, deleting and cleaning
jobs leaves the past as it was; `queshot history` shows them."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import run_until_settled, running, wait_until
from designdoc_js import DesignDocJS

from queshot import history
from queshot.cli import main
from queshot.couch import Database
from queshot.jobs import now_ms
from queshot.queue import Queue
from queshot.worker import Job


def handler(job: Job) -> str:
    if job.data.get("fail"):
        raise ValueError("no")
    return "ok"


def shown(capsys: pytest.CaptureFixture[str], server_url: str, db: Database) -> Any:
    assert main(["history", "--json", "--url", server_url, "--db", db.name]) == 0
    return json.loads(capsys.readouterr().out)


def run_cli(server_url: str, db: Database, *args: str) -> int:
    return main([*args, "--url", server_url, "--db", db.name])


def test_history_survives_requeue_delete_and_clean(
    capsys: pytest.CaptureFixture[str], server_url: str, db: Database
) -> None:
    email, sms = Queue("email", db), Queue(["sms", "eu"], db)
    email.create_jobs([{"n": n} for n in range(5)] + [{"fail": True}] * 2)
    sms.create_job({"n": 1})
    run_until_settled(email, handler)
    run_until_settled(sms, handler)  # each stops its worker: the last counts are written
    counted = {
        "email": {"complete": 5, "failed": 2},
        "sms/eu": {"complete": 1, "failed": 0},
    }

    def by_queue() -> dict[str, Any]:
        found = shown(capsys, server_url, db)
        assert all(q["counts"]["hour"] == q["counts"]["week"] for q in found)
        return {"/".join(q["queue"]): q["counts"]["day"] for q in found}

    assert by_queue() == counted
    yes = ("--all", "--yes")
    assert run_cli(server_url, db, "requeue", "--queue", "email", "--state", "failed", *yes) == 0
    assert run_cli(server_url, db, "delete", "--queue", "email", "--state", "waiting", *yes) == 0
    assert run_cli(server_url, db, "clean", "--older-than", "0s") == 0
    assert run_cli(server_url, db, "delete", "--queue", "sms/eu", "--state", "complete", *yes) == 0
    capsys.readouterr()
    jobs_left = [r["id"] for r in db.all_docs()["rows"] if not r["id"].startswith(("_", "queshot"))]
    assert jobs_left == []
    assert by_queue() == counted

    assert run_cli(server_url, db, "history") == 0
    lines = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert lines[0][:3] == ["QUEUE", "COMPLETE/HOUR", "FAILED/HOUR"]
    assert lines[1] == ["email", "5", "2", "5", "2", "5", "2"]


def test_a_running_worker_writes_its_counts_every_interval(db: Database) -> None:
    email = Queue("email", db)
    email.create_jobs([{"n": n} for n in range(3)])
    worker = email.create_worker(handler, poll_interval=0.2, history_interval=0.1)
    with running(worker):

        def written() -> bool:
            """the three jobs are counted while the worker runs"""
            return [q.counts["hour"]["complete"] for q in history.recent(db)] == [3]

        wait_until(written)
        docs = history_docs(db)
        assert [d["worker_id"] for d in docs] == [worker.id]  # one document, rewritten
        # its status document says how many runs ended there, and when the last did
        worker._status.write()
        status = db.get(f"queshot-worker:{worker.id}")
        assert status["finished"] == 3 and status["last_finished_at"] <= status["last_seen"]
        assert status["status_every_ms"] == worker._status.every * 1000


def history_docs(db: Database) -> list[dict[str, Any]]:
    prefix = history.HISTORY_DOC_PREFIX
    rows = db.all_docs(startkey=prefix, endkey=prefix + "\ufff0", include_docs=True)["rows"]
    return [row["doc"] for row in rows]


def test_the_chart_view_sums_every_queue_per_minute(db: Database) -> None:
    Queue("a", db).create_jobs([{}] * 2)
    Queue("b", db).create_jobs([{}, {"fail": True}])
    run_until_settled(Queue("a", db), handler)
    run_until_settled(Queue("b", db), handler)
    rows = db.view("queshot-watch", "history_by_minute", group_level=2)["rows"]
    totals: dict[str, int] = {}
    for row in rows:
        minute, state = row["key"]
        assert minute % history.MINUTE_MS == 0 and minute <= now_ms()
        totals[state] = totals.get(state, 0) + row["value"]
    assert totals == {"complete": 3, "failed": 1}


def test_documents_past_keeping_are_removed_by_a_worker(db: Database) -> None:
    hour = history.hour_of(now_ms())
    old = history.new_doc(hour - (history.HISTORY_KEEP_HOURS + 2) * history.HOUR_MS, "gone", None)
    old["counts"] = {"0": {"email": [1, 0]}}
    kept = history.new_doc(hour - 2 * history.HOUR_MS, "earlier", None)
    kept["counts"] = {"0": {"email": [1, 0]}}
    db.save(old)
    db.save(kept)
    email = Queue("email", db)
    email.create_job({})
    run_until_settled(email, handler)
    ids = [d["_id"] for d in history_docs(db)]
    assert old["_id"] not in ids and kept["_id"] in ids and len(ids) == 2


def test_a_document_made_in_python_is_what_the_rules_expect() -> None:
    hour = 1796533200000  # 2026-12-06T05:00:00Z
    assert history.doc_id(hour, "w:1") == "queshot-history:20261206T050000Z:w:1"
    doc = history.new_doc(hour, "w:1", None)
    history.add(doc, hour + 5 * history.MINUTE_MS, "email/welcome", [1, 0])
    history.add(doc, hour + 5 * history.MINUTE_MS, "email/welcome", [2, 1])
    assert doc["counts"] == {"5": {"email/welcome": [3, 1]}}
    assert DesignDocJS().validate(doc, None, {"name": None, "roles": ["_admin"]}, {}) is None
