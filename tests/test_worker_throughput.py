"""The worker's throughput paths keep the queue's rules: batched completions,
claims from view pages, spare rows and feed hints (issue #7), also when the
answer to a claim or a completion is lost on its way back."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from conftest import running, wait_until

from queshot import protocol
from queshot.couch import Database, ServerUnreachable
from queshot.queue import Queue
from queshot.worker import Job, picking
from queshot.worker.dispatch import IDLE_POLL_FACTOR
from queshot.worker.peers import Peers
from queshot.worker.picking import Picker


def _drain(queue: Queue, handler: Any, count: int, concurrency: int = 4) -> Any:
    worker = queue.create_worker(handler, concurrency=concurrency, poll_interval=0.5)
    worker.start()
    deadline = time.monotonic() + 30
    while worker.stats.completed + worker.stats.abandoned < count:
        assert time.monotonic() < deadline, worker.stats
        time.sleep(0.05)
    worker.stop()
    return worker


def test_batched_completions_store_results_once(db: Database) -> None:
    queue = Queue("batch", db)
    ids = queue.create_jobs({"n": n} for n in range(40))
    worker = _drain(queue, lambda job: {"double": job.data["n"] * 2}, 40)
    assert worker.stats.completed == 40 and worker.stats.claims_won == 40
    for doc in (queue.get_job(job_id) for job_id in ids):
        assert doc["state"] == "complete" and doc["progress"] == 100
        assert doc["result"] == {"double": doc["data"]["n"] * 2}
        assert doc["lease_expires_at"] is None and isinstance(doc["completed_at"], int)
        assert doc["_rev"].startswith("3-")  # created, claimed, completed: nothing else


def test_a_job_that_wrote_since_its_claim_completes_through_the_handler(db: Database) -> None:
    queue = Queue("logged", db)
    [job_id] = queue.create_jobs([{}])

    def handler(job: Job) -> str:
        job.log("working")
        job.doc["data"] = "changed by the handler"  # not written back
        return "done"

    _drain(queue, handler, 1)
    doc = queue.get_job(job_id)
    assert doc["state"] == "complete" and doc["result"] == "done"
    assert doc["data"] == {} and [line["msg"] for line in doc["log"]] == ["working"]


def test_a_completion_against_a_changed_job_is_abandoned(db: Database) -> None:
    queue = Queue("changed", db)
    [job_id] = queue.create_jobs([{}])
    started, go_on = threading.Event(), threading.Event()

    def handler(job: Job) -> str:
        started.set()
        go_on.wait(10)
        return "late"

    worker = queue.create_worker(handler, poll_interval=0.5)
    worker.start()
    assert started.wait(10)
    queue.set_job_state(job_id, "failed")  # an admin cancels it meanwhile
    go_on.set()
    deadline = time.monotonic() + 10
    while worker.stats.abandoned == 0:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    worker.stop()
    doc = queue.get_job(job_id)
    assert doc["state"] == "failed" and "result" not in doc
    assert worker.stats.completed == 0


def test_higher_priority_runs_first_even_from_a_large_page(db: Database) -> None:
    queue = Queue("prio", db)
    queue.create_jobs({"n": n} for n in range(30))
    queue.create_jobs([{"urgent": True}], priority=5)
    order: list[Any] = []
    _drain(queue, lambda job: order.append(job.data), 31, concurrency=1)
    assert order[0] == {"urgent": True}


def test_jobs_enqueued_while_idle_wake_the_worker_promptly(db: Database) -> None:
    queue = Queue("wake", db)
    worker = queue.create_worker(lambda job: None, concurrency=2, poll_interval=30)
    worker.start()
    try:
        time.sleep(0.5)  # idle: the first round found nothing, the feed listens
        for _ in range(3):
            done = worker.stats.completed
            queue.create_job({})
            deadline = time.monotonic() + 5  # far below the 30 s poll
            while worker.stats.completed == done:
                assert time.monotonic() < deadline
                time.sleep(0.02)
            time.sleep(0.3)
    finally:
        worker.stop()
    assert worker.stats.completed == 3


def test_an_idle_worker_reads_its_queue_less_often_while_its_feed_is_live(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pending view is the feed's safety net, and each read costs the
    server: idle, a worker reads it one poll interval apart at first, then
    twice as far apart after each read that found nothing, up to
    IDLE_POLL_FACTOR intervals; a job the feed names is claimed at once, and
    the reads start again one interval apart."""
    reads: list[float] = []
    read = protocol.pending_rows

    def counted(*args: Any, **kwargs: Any) -> Any:
        reads.append(time.monotonic())
        return read(*args, **kwargs)

    monkeypatch.setattr(protocol, "pending_rows", counted)
    interval, longest = 0.1, 0.1 * IDLE_POLL_FACTOR
    queue = Queue("idle-polls", db)
    worker = queue.create_worker(lambda job: None, poll_interval=interval)
    with running(worker):
        wait_until(lambda: len(reads) >= 7, timeout=60)
        gaps = [b - a for a, b in zip(reads, reads[1:], strict=False)]
        assert min(gaps[-2:]) >= 0.9 * longest, gaps  # later reads: the longest apart
        assert sum(gaps[:6]) >= 0.9 * interval * (1 + 2 + 4 + 8 + 8 + 8) - 2 * interval, gaps
        before = len(reads)
        queue.job(queue.create_job({})).wait(timeout=30)
        after_job = len(reads)
        wait_until(lambda: len(reads) >= after_job + 2, timeout=30)
    assert reads[after_job + 1] - reads[after_job] < longest - 0.3, reads[before:]


def test_rows_rivals_claimed_since_the_page_was_read_are_not_tried(db: Database) -> None:
    """One pending-view page serves many rounds; the changes feed strikes off
    the rows rivals claim meanwhile, so the worker does not waste claims on
    them (each lost claim is a write the server pays for)."""
    queue = Queue("spare", db, limit=20)
    ids = queue.create_jobs({"n": n} for n in range(20))
    started, go_on = threading.Event(), threading.Event()

    def handler(job: Job) -> None:
        started.set()
        go_on.wait(10)

    worker = queue.create_worker(handler, concurrency=1, poll_interval=30)
    worker.start()
    try:
        assert started.wait(10)  # the first job runs; the rest of its page is spare
        [running] = worker.running_jobs
        rivals = [job_id for job_id in ids if job_id != running][:10]
        for job_id in rivals:
            db.update("queshot", "claim", job_id, {"worker_id": "rival", "lease_seconds": 60})

        def struck_off() -> bool:
            """the worker's feed has reported every rival's claim"""
            return worker.picker.still_open(rivals) == []

        wait_until(struck_off, timeout=10, every=0.02)
        go_on.set()
        deadline = time.monotonic() + 20
        while worker.stats.completed < 10:
            assert time.monotonic() < deadline, worker.stats
            time.sleep(0.05)
    finally:
        worker.stop()
    assert worker.stats.claim_conflicts == 0
    assert worker.stats.claim_attempts == 10
    assert all(queue.get_job(job_id)["worker_id"] == "rival" for job_id in rivals)


def _answer_lost_once(db: Database, method: str, when: Any = lambda *args: True) -> None:
    """Make the first matching call of `db.<method>` reach the server and
    store its write, but lose the answer, as a dropped connection would."""
    real = getattr(db, method)
    lost = threading.Event()

    def call(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)
        if not lost.is_set() and when(*args):
            lost.set()
            raise ServerUnreachable("answer lost (test)")
        return result

    setattr(db, method, call)


def test_a_batched_completion_whose_answer_was_lost_counts_as_complete(db: Database) -> None:
    """The retry of the batch meets the revision its first attempt made: a
    409, but the job is this worker's own completion, not someone else's."""
    queue = Queue("lost-batch", db)
    [job_id] = queue.create_jobs([{}])
    _answer_lost_once(db, "bulk_docs")
    worker = _drain(queue, lambda job: "stored once", 1)
    assert (worker.stats.completed, worker.stats.abandoned) == (1, 0)
    doc = queue.get_job(job_id)
    assert doc["state"] == "complete" and doc["result"] == "stored once"


def test_a_handler_completion_whose_answer_was_lost_counts_as_complete(db: Database) -> None:
    queue = Queue("lost-handler", db)
    [job_id] = queue.create_jobs([{}])

    def handler(job: Job) -> str:
        job.log("written since the claim, so completion goes through the handler")
        return "stored once"

    _answer_lost_once(db, "update", when=lambda ddoc, name, *rest: name == "complete")
    worker = _drain(queue, handler, 1)
    assert (worker.stats.completed, worker.stats.abandoned) == (1, 0)
    doc = queue.get_job(job_id)
    assert doc["state"] == "complete" and doc["result"] == "stored once"


def test_a_claim_whose_answer_was_lost_is_settled_and_run(db: Database) -> None:
    """The claim was stored but its answer lost: the worker settles it by
    reading the job (it is held by this worker) and runs it, instead of
    leaving it held and unrun until its lease runs out."""
    queue = Queue("lost-claim", db, lease_seconds=60)
    [job_id] = queue.create_jobs([{}])
    _answer_lost_once(db, "update", when=lambda ddoc, name, *rest: name == "claim")
    worker = _drain(queue, lambda job: "ran", 1)
    assert (worker.stats.claims_won, worker.stats.completed) == (1, 1)
    assert queue.get_job(job_id)["state"] == "complete"


def test_what_the_feed_saw_taken_is_forgotten_after_a_bound(db: Database) -> None:
    """A worker that reads no page (paused, or living on hints) must not
    remember every job the feed saw offered or taken: memory stays bounded."""
    picker = Picker(db, Queue("bounded", db), Peers("w", ["bounded"]))
    for n in range(picking.MAX_GONE + 5):
        picker.strike(f"job-{n}")
        picker.offer(f"job-{n}")
    assert len(picker._gone) <= picking.MAX_GONE
    assert picker._hints.qsize() <= picking.MAX_PAGE


def test_a_job_waiting_again_is_a_candidate_again(db: Database) -> None:
    """The feed saw a job taken (a rival claimed it), then waiting again (its
    lease ran out, or an admin requeued it): it must not stay struck off."""
    picker = Picker(db, Queue("again", db), Peers("w", ["again"]))
    picker.strike("job-1")
    picker.offer("job-1")
    candidates, from_view = picker.next_round(free=1)
    assert (candidates, from_view) == (["job-1"], False)
    assert picker.still_open(candidates) == ["job-1"]


def test_idle_rivals_leave_each_new_job_to_its_first_choice(db: Database) -> None:
    """Three idle workers hear of every new job at once; without agreeing on
    who goes first, each job would cost about three claims."""
    queue = Queue("rivals", db)
    workers = [queue.create_worker(lambda job: None, poll_interval=30) for _ in range(3)]
    with running(*workers):
        wait_until(lambda: all(len(w.peers.live()) == 3 for w in workers), timeout=10)
        for n in range(20):
            job_id = queue.create_job({"n": n})
            wait_until(lambda job_id=job_id: queue.get_job(job_id)["state"] == "complete")
        attempts = sum(w.stats.claim_attempts for w in workers)
    assert sum(w.stats.completed for w in workers) == 20
    assert attempts <= 25, f"{attempts} claims for 20 jobs"
    assert all(w.stats.completed for w in workers), "the jobs went to one worker only"


def test_a_worker_that_stops_is_no_rival_any_more(db: Database) -> None:
    queue = Queue("leaving", db)
    stays, leaves = (queue.create_worker(lambda job: None, poll_interval=30) for _ in range(2))
    with running(stays):
        with running(leaves):
            wait_until(lambda: len(stays.peers.live()) == 2, timeout=10)
        wait_until(lambda: stays.peers.live() == [stays.id], timeout=10)
