"""A worker on several queues takes them in order (RQ's): in-process workers
and `queshot worker --queue high --queue default` as a real subprocess,
against the test server; the status document's shapes without one."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import running, wait_until
from recording import read_records

from queshot import admin
from queshot.cli import main
from queshot.cli.output import queue_text, worker_queues_text
from queshot.couch import Database
from queshot.jobs import WORKER_DOC_PREFIX, QueueError, now_ms, worker_queue_paths, worker_queues
from queshot.queue import Queue
from queshot.worker import Job, Worker
from queshot.worker.peers import Peers


def feed_is_up(db: Database, worker: Worker) -> None:
    """Wait until the worker's feed has seen a write made now: it then hears
    of every later one. The write is a long-gone rival's status document,
    which changes no one's order of preference."""
    probe = {"type": "queshot_worker", "name": "probe", "queues": "high", "last_seen": 0}
    db.save({"_id": WORKER_DOC_PREFIX + "probe", **probe})

    def probe_heard() -> bool:
        """the worker's feed has heard of the probe"""
        return "probe" in worker.peers._seen

    wait_until(probe_heard, timeout=10, every=0.02)


def test_every_high_job_runs_before_any_default_one(db: Database) -> None:
    """Enqueued together while the worker is paused (its feed hands it hints
    for both queues, the `default` ones first and older), then resumed: with
    one slot, every `high` job runs before any `default` one."""
    high, default = Queue("high", db), Queue("default", db)
    ran: list[str] = []
    worker = Worker([high, default], lambda job: ran.append(job.doc["queues"]), poll_interval=30)
    with running(worker):
        worker.pause()
        feed_is_up(db, worker)
        default.create_jobs({"n": n} for n in range(6))
        high.create_jobs({"n": n} for n in range(6))
        hints = [picker._hints for picker in worker.picker.pickers]

        def both_hinted() -> bool:
            """the feed has offered every job to its queue's picker"""
            return [h.qsize() for h in hints] == [6, 6]

        wait_until(both_hinted, timeout=10, every=0.02)
        worker.resume()
        wait_until(lambda: len(ran) == 12, timeout=20)
    assert ran == ["high"] * 6 + ["default"] * 6


def test_a_default_job_runs_when_high_is_empty_and_a_new_high_job_goes_next(
    db: Database,
) -> None:
    """`default` jobs run while `high` has none; a `high` job enqueued while
    they wait (the one slot busy) runs next."""
    high = Queue("high", db, autoremove=True)
    default = Queue("default", db)
    started: list[str] = []
    go_on = threading.Event()

    def handler(job: Job) -> None:
        started.append(job.id)
        if len(started) == 1:
            go_on.wait(10)

    worker = Worker([high, default], handler, poll_interval=30)
    with running(worker):
        waiting = default.create_jobs({"n": n} for n in range(8))
        wait_until(lambda: started, timeout=10)  # a default job runs: high is empty
        urgent = high.create_job({"urgent": True})
        go_on.set()
        wait_until(lambda: len(started) == 9, timeout=20)
    assert started[0] in waiting and started[1] == urgent, started
    assert sorted(started) == sorted([*waiting, urgent])
    assert db.get_or_none(urgent) is None  # high's autoremove: its own queue's setting
    assert default.get_job(started[0])["state"] == "complete"


def test_a_paused_queue_is_passed_over_and_the_next_one_taken(db: Database) -> None:
    """With `high` paused, a worker on both runs `default` jobs and tries no
    claim on `high`'s; it is not paused itself; resumed, `high` runs."""
    high, default = Queue("high", db), Queue("default", db)
    ran: list[str] = []
    worker = Worker([high, default], lambda job: ran.append(job.doc["queues"]), poll_interval=0.2)
    with running(worker):
        admin.set_paused(db, "high", True)
        wait_until(lambda: worker.control.holds(["high"]), timeout=10)
        high.create_jobs({"n": n} for n in range(3))
        default.create_jobs({"n": n} for n in range(3))
        wait_until(lambda: default.stats()["complete"] == 3, timeout=15)
        assert high.stats()["inactive"] == 3 and worker.stats.claim_attempts == 3
        assert not worker.control.paused
        admin.set_paused(db, "high", False)
        wait_until(lambda: high.stats()["complete"] == 3, timeout=15)
    assert ran == ["default"] * 3 + ["high"] * 3


def test_the_cli_takes_repeated_queues_in_order_and_workers_shows_them(
    server_url: str,
    db: Database,
    spawn_worker: Callable[..., subprocess.Popen],
    record_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`queshot worker --queue high --queue default`: one worker, `high`
    first (its jobs enqueued after the `default` ones), both queues listed
    by `queshot workers`; none of the jobs is refused as another queue's."""
    default = Queue("default", db)
    high = Queue(["high", "urgent"], db)
    default_ids = default.create_jobs({"n": n} for n in range(5))
    high_ids = high.create_jobs({"n": n} for n in range(5))
    worker = spawn_worker(db.name, "high/urgent", "--queue", "default", "--concurrency", "1")

    def all_ran() -> bool:
        """the worker ran all ten jobs"""
        return len([r for r in read_records(record_file) if r["event"] == "end"]) == 10

    wait_until(all_ran, timeout=60)
    assert main(["workers", "--url", server_url, "--db", db.name]) == 0
    table = capsys.readouterr().out
    assert main(["workers", "--json", "--url", server_url, "--db", db.name]) == 0
    [status] = json.loads(capsys.readouterr().out)
    worker.terminate()
    _, stderr = worker.communicate(timeout=30)

    order = [r["id"] for r in read_records(record_file) if r["event"] == "start"]
    assert order[:5] == high_ids and sorted(order[5:]) == sorted(default_ids)
    assert "high/urgent, default" in table.splitlines()[1]
    assert status["queues"] == [["high", "urgent"], ["default"]]
    assert "on queues high/urgent, default" in stderr
    assert worker.returncode == 0


def test_one_worker_takes_queues_of_one_database_each_once(db: Database) -> None:
    other = db.couch.database(db.name + "_other")
    with pytest.raises(QueueError, match="given twice"):
        Worker([Queue("a", db), Queue(["a"], db)], lambda job: None)
    with pytest.raises(QueueError, match="one worker takes the queues of one database"):
        Worker([Queue("a", db), Queue("b", other)], lambda job: None)
    with pytest.raises(QueueError, match="writeonly"):
        Worker([Queue("a", db), Queue("b", db, writeonly=True)], lambda job: None)
    with pytest.raises(QueueError, match="at least one queue"):
        Worker([], lambda job: None)


def test_the_cli_refuses_a_queue_given_twice(
    server_url: str, db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["worker", "recording:handle", "--queue", "a", "--queue", "a"]
    assert main([*args, "--url", server_url, "--db", db.name]) != 0
    assert capsys.readouterr().err == "queshot: error: queue 'a' given twice\n"


# -- the status document's `queues`, without a server -----------------------------------


def test_status_queues_keep_the_one_queue_shape_and_list_paths_for_several() -> None:
    assert worker_queues([["email"]]) == "email"
    assert worker_queues([["email", "welcome"]]) == ["email", "welcome"]
    assert worker_queues([["high"], ["email", "welcome"]]) == [["high"], ["email", "welcome"]]
    for shape in ("email", ["email", "welcome"], [["high"], ["email", "welcome"]]):
        assert worker_queues(worker_queue_paths(shape)) == shape  # old and new shapes read back
    with pytest.raises(QueueError):
        worker_queue_paths(None)
    assert worker_queues_text([["high"], ["email", "welcome"]]) == "high, email/welcome"
    assert queue_text(["email", "welcome"]) == "email/welcome"
    assert queue_text("email") == "email"


def test_a_rival_on_several_queues_is_a_peer_on_each_of_them_only() -> None:
    """Rendezvous stays per queue: a worker on [high, email/welcome] is a rival
    for the jobs of `high`, `email/welcome` and below, not of `email`; an old
    worker's one-queue document still counts."""
    seen = now_ms()

    def status(queues: object) -> dict[str, object]:
        return {"type": "queshot_worker", "queues": queues, "last_seen": seen}

    def rivals(path: list[str]) -> list[str]:
        peers = Peers("me", path)
        peers.heard(WORKER_DOC_PREFIX + "both", status([["high"], ["email", "welcome"]]))
        peers.heard(WORKER_DOC_PREFIX + "old", status("email"))
        return sorted(peers.live())

    assert rivals(["high"]) == ["both", "me"]
    assert rivals(["email", "welcome", "vip"]) == ["both", "me", "old"]
    assert rivals(["email"]) == ["me", "old"]
    assert rivals(["low"]) == ["me"]
