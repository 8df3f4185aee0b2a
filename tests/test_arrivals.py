"""A waiting job's place in line is not its producer's clock alone: one whose
`created_at` is far off the server's clock when a worker first sees it is
placed by the server's time (`arrived_at`, the `arrive` handler), so that a
device a day behind jumps no one's jobs and one a day ahead waits behind no
one's (issue: producers with wrong clocks must not starve each other)."""

from __future__ import annotations

import re
import threading
from typing import Any

import pytest
from conftest import running, wait_until
from designdoc_js import DesignDocJS

from queshot import admin, protocol
from queshot.cli import main
from queshot.couch import Database
from queshot.jobs import ARRIVAL_TOLERANCE_MS, needs_place, new_job_id, now_ms
from queshot.queue import Queue

DAY_MS = 86_400_000
WORKER = {"name": "w", "roles": ["queshot_worker"]}
NO_SECURITY: dict[str, Any] = {}


@pytest.fixture(scope="module")
def js() -> DesignDocJS:
    return DesignDocJS()


def waiting(created_at: Any, **fields: Any) -> dict[str, Any]:
    doc = {"_id": new_job_id(), "queues": "line", "state": "inactive", "created_at": created_at}
    return {**doc, "data": {}, **fields}


# -- the rule, in QuickJS ----------------------------------------------------------------


def test_arrive_places_a_job_from_a_wrong_clock_once_by_the_servers_time(js: DesignDocJS) -> None:
    before = now_ms()
    stored, answer = js.update("arrive", waiting(before - DAY_MS), {}, WORKER)
    assert answer["json"]["placed"] is True
    assert before <= stored["arrived_at"] <= now_ms()
    assert "86400 s behind the server's clock" in stored["log"][-1]["msg"]
    again = js.update("arrive", stored, {}, WORKER)
    assert again == [None, {"json": {"ok": True, "placed": False}}]
    ahead, _ = js.update("arrive", waiting(before + DAY_MS), {}, WORKER)
    assert "ahead of the server's clock" in ahead["log"][-1]["msg"]
    timeless, _ = js.update("arrive", waiting("yesterday"), {}, WORKER)  # stored before the rules
    assert timeless["log"][-1]["msg"] == "in line from its arrival: it has no created_at time"


@pytest.mark.parametrize(
    "fields",
    [
        {"created_at": "now"},  # its producer's clock is right
        {"run_at": 1},  # run_at places it
        {"claimed_at": 1},  # it ran before: it keeps the place it had
        {"state": "failed"},
        {"arrived_at": 1},  # placed already
    ],
)
def test_arrive_leaves_a_job_that_has_its_place(js: DesignDocJS, fields: dict[str, Any]) -> None:
    now = now_ms()
    doc = {**waiting(now - DAY_MS), **fields}
    if doc["created_at"] == "now":
        doc["created_at"] = now - ARRIVAL_TOLERANCE_MS // 2
    assert js.update("arrive", doc, {}, WORKER)[0] is None
    assert needs_place(doc, now) is False  # Python's pre-check agrees
    assert needs_place(waiting(now - DAY_MS), now) is True


def test_a_worker_account_may_place_a_job_only_as_arrive_does(js: DesignDocJS) -> None:
    old = {**waiting(now_ms() - DAY_MS), "_rev": "1-a"}
    placed, _ = js.update("arrive", old, {}, WORKER)
    assert js.validate(placed, old, WORKER, NO_SECURITY) is None
    back_in_time = {**placed, "arrived_at": now_ms() - DAY_MS}  # to the front of the line
    assert "server's time" in js.validate(back_in_time, old, WORKER, NO_SECURITY)[1]
    honest = {**waiting(now_ms()), "_rev": "1-a"}
    refused = js.validate({**honest, "arrived_at": now_ms() + 1000}, honest, WORKER, NO_SECURITY)
    assert "placed by its arrival only once" in refused[1]
    producer = {"name": "p", "roles": ["queshot_producer"]}
    assert js.validate(placed, old, producer, NO_SECURITY) is not None
    new = {**waiting(now_ms() - DAY_MS), "arrived_at": now_ms()}  # forged on create
    assert "arrived_at" in js.validate(new, None, producer, NO_SECURITY)[1]


# -- on a server, with a worker ------------------------------------------------------------


def test_a_wrong_clock_buys_no_place_in_line(db: Database) -> None:
    """Jobs from an honest producer, then from one a day behind, then from
    one a day ahead, arrive while their queue is paused (a standing
    backlog): they run in the order they arrived. By `created_at` alone the
    day-behind jobs would run first and the day-ahead ones would wait a day
    behind every other job."""
    admin.set_paused(db, "line", True)
    order: list[str] = []
    lock = threading.Lock()

    def handler(job: Any) -> None:
        with lock:
            order.append(job.id)

    queue = Queue("line", db)
    worker = queue.create_worker(handler, concurrency=1, poll_interval=0.2)
    with running(worker):
        wait_until(lambda: worker._feed.live, timeout=10)
        honest = [queue.create_job({"n": i}) for i in range(5)]
        behind = [waiting(now_ms() - DAY_MS, data={"n": i}) for i in range(5)]
        db.bulk_docs(behind)
        ahead = [waiting(now_ms() + DAY_MS, data={"n": i}) for i in range(5)]
        db.bulk_docs(ahead)
        skewed = [d["_id"] for d in behind + ahead]

        def placed() -> bool:
            rows = db.all_docs(keys=skewed, include_docs=True)["rows"]
            return all("arrived_at" in (row.get("doc") or {}) for row in rows)

        wait_until(placed, timeout=30)
        assert worker.arrivals.placed == 10
        honest_docs = db.all_docs(keys=honest, include_docs=True)["rows"]
        assert not any("arrived_at" in row["doc"] for row in honest_docs)  # they cost nothing
        admin.set_paused(db, "line", False)
        wait_until(lambda: len(order) == 15, timeout=60)
    assert order[:5] == honest
    assert set(order[5:10]) == {d["_id"] for d in behind}
    assert set(order[10:]) == {d["_id"] for d in ahead}


def test_show_says_where_a_placed_jobs_place_comes_from(
    capsys: pytest.CaptureFixture[str], server_url: str, db: Database
) -> None:
    doc = waiting(now_ms() - DAY_MS)
    db.save(doc)
    assert protocol.arrive(db, doc["_id"])
    assert main(["show", doc["_id"], "--url", server_url, "--db", db.name]) == 0
    out = capsys.readouterr().out
    assert re.search(r"in line from +\d{4}-", out)
    assert "86400 s behind the server's clock" in out
