"""Jobs that wait for other jobs, on a real server: a diamond in order with
results handed on, a fan-in of 200, failures and cancels that propagate (or
not, with on_dependency_failure="run"), the rules validate_doc_update keeps,
and reconciliation when the worker that finished a dependency died before
telling anyone."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from conftest import REAL_COUCHDB, running, wait_until

from queshot import Database, JobFailed, Queue, QueueError, Tasks, current_job, protocol
from queshot.couch import Conflict, Forbidden
from queshot.jobs import now_ms
from queshot.workflow import chain, fan_in, previous_result

tasks = Tasks()
order: list[str] = []
lock = threading.Lock()


@tasks.task
def step(name: str) -> dict[str, Any]:
    with lock:
        order.append(name)
    results = [r for r in current_job().dependency_results.values() if r is not None]
    seen = sorted(results, key=lambda r: r["name"])
    return {"name": name, "saw": [r["name"] for r in seen]}


@tasks.task
def total() -> int:
    return sum(current_job().dependency_results.values())


@tasks.task
def number(n: int) -> int:
    return n


@tasks.task
def double() -> int:
    return previous_result() * 2


@tasks.task
def explode() -> None:
    raise RuntimeError("dependency broke")


@pytest.fixture
def queue(db: Database) -> Queue:
    order.clear()
    return Queue("flows", db)


def test_a_diamond_runs_in_order_and_the_last_sees_both_results(queue: Queue) -> None:
    a = queue.enqueue(step, "A")
    b = queue.enqueue(step, "B", depends_on=[a])
    c = queue.enqueue(step, "C", depends_on=[a])
    d = queue.enqueue(step, "D", depends_on=[b, c])
    assert (b.status, d.status) == ("blocked", "blocked")
    assert d.doc["waiting_for"] == [b.id, c.id]
    with running(queue.create_worker(tasks, concurrency=4, poll_interval=0.2)):
        assert d.wait(timeout=60) == {"name": "D", "saw": ["B", "C"]}
    assert order[0] == "A" and order[-1] == "D" and sorted(order[1:3]) == ["B", "C"]
    assert d.doc["depends_on"] == [b.id, c.id] and d.doc["waiting_for"] == []


def test_a_fan_in_of_200_jobs_waits_for_every_one(queue: Queue) -> None:
    group, last = fan_in([queue.step(number, n) for n in range(200)], queue.step(total))
    assert last.status == "blocked"
    with running(queue.create_worker(tasks, concurrency=8, poll_interval=0.2)):
        assert last.wait(timeout=120) == sum(range(200))
    assert all(handle.status == "complete" for handle in group)
    assert len(last.doc["dependency_results"]) == 200


def test_a_chain_hands_each_result_to_the_next(queue: Queue) -> None:
    handles = chain(queue.step(number, 21), queue.step(double), queue.step(double))
    with running(queue.create_worker(tasks, poll_interval=0.2)):
        assert handles[-1].wait(timeout=60) == 84


def test_a_failure_propagates_down_the_graph_unless_the_job_runs_anyway(queue: Queue) -> None:
    broken = queue.enqueue(explode)
    dependent = queue.enqueue(step, "after", depends_on=[broken])
    grandchild = queue.enqueue(step, "later", depends_on=[dependent])
    anyway = queue.enqueue(step, "anyway", depends_on=[broken], on_dependency_failure="run")
    with running(queue.create_worker(tasks, poll_interval=0.2)):
        with pytest.raises(JobFailed) as failed:
            dependent.wait(timeout=60)
        with pytest.raises(JobFailed) as failed_too:
            grandchild.wait(timeout=60)
        assert anyway.wait(timeout=60) == {"name": "anyway", "saw": []}
    assert failed.value.error_type == "DependencyFailed"
    assert failed.value.error_message == f"job {broken.id} it waits for is failed"
    assert failed_too.value.error_message == f"job {dependent.id} it waits for is failed"
    assert anyway.doc["dependency_results"] == {broken.id: None}
    assert order == ["anyway"]


def test_cancelling_a_dependency_fails_what_waits_for_it(queue: Queue) -> None:
    first = queue.enqueue(number, 1)
    after = queue.enqueue(number, 2, depends_on=[first])
    assert queue.cancel(first.id) == "cancelled"
    assert after.status == "failed"
    assert after.error["message"] == f"job {first.id} it waits for is cancelled"
    blocked = queue.enqueue(number, 3, depends_on=[queue.enqueue(number, 4)])
    assert queue.cancel(blocked.id) == "cancelled"  # a blocked job is cancelled at once


def test_a_dependency_already_finished_does_not_block(queue: Queue) -> None:
    """The producer may not resolve (a worker's move): the worker whose feed
    shows the job created blocked tells it (not its reconciliation, which
    only runs at start here, before the job exists)."""
    first = queue.enqueue(number, 5)
    worker = queue.create_worker(tasks, poll_interval=0.2, reap_interval=600)
    with running(worker):
        first.wait(timeout=30)
        later = queue.enqueue(total, depends_on=[first])
        assert later.wait(timeout=30) == 5
    assert later.doc["dependency_results"] == {first.id: 5}
    assert worker.unblocker.resolved >= 1


def test_a_producer_leaves_a_finished_dependency_to_the_workers(queue: Queue) -> None:
    """Enqueued after its dependency completed: stored blocked, untouched by
    the producer, and told by a worker as it starts (its reconciliation)."""
    first = queue.enqueue(number, 5)
    with running(queue.create_worker(tasks, poll_interval=0.2)):
        first.wait(timeout=30)
    later = queue.enqueue(total, depends_on=[first])
    doc = later.doc
    assert (doc["state"], doc["_rev"][:2]) == ("blocked", "1-")
    with running(queue.create_worker(tasks, poll_interval=0.2, reap_interval=600)):
        assert later.wait(timeout=30) == 5


@pytest.mark.skipif(not REAL_COUCHDB, reason="acts as a producer account: Apache CouchDB only")
def test_a_producer_account_enqueues_on_a_finished_dependency(
    queue: Queue, server_url: str, new_user: Callable[..., tuple[str, str]]
) -> None:
    """As a queshot_producer, `queshot enqueue --depends-on` a complete job
    used to store the job, then be refused its own resolve: "refused", exit 1
    (a retry made a duplicate)."""
    first = queue.enqueue(number, 5)
    with running(queue.create_worker(tasks, poll_interval=0.2)):
        first.wait(timeout=30)
    name, password = new_user("queshot_producer")
    parts = urlsplit(server_url)
    url = urlunsplit(
        (parts.scheme, f"{name}:{password}@{parts.hostname}:{parts.port}", "/", "", "")
    )
    enqueued = subprocess.run(
        [sys.executable, "-m", "queshot.cli", "enqueue", "flows", "--task", "total",
         "--depends-on", first.id, "--url", url, "--db", queue.db.name],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert (enqueued.returncode, enqueued.stderr) == (0, "")
    later = queue.job(enqueued.stdout.strip())
    with running(queue.create_worker(tasks, poll_interval=0.2)):
        assert later.wait(timeout=30) == 5


def test_depending_on_a_job_that_does_not_exist_is_refused(queue: Queue) -> None:
    with pytest.raises(QueueError, match="no job 'nope' to depend on"):
        queue.enqueue(number, 1, depends_on=["nope"])


def test_validate_doc_update_keeps_blocked_jobs_consistent(queue: Queue, db: Database) -> None:
    first = queue.enqueue(number, 1)
    blocked = queue.enqueue(number, 2, depends_on=[first])
    doc = blocked.doc
    with pytest.raises(
        Forbidden, match="a job with 'waiting_for' is 'blocked' until they complete"
    ):
        db.save({**doc, "state": "inactive"})
    with pytest.raises(Forbidden, match="a 'blocked' job needs 'waiting_for'"):
        db.save({**doc, "waiting_for": []})
    with pytest.raises(Conflict, match="job is blocked"):
        protocol.claim(db, blocked.id, worker_id="w", lease_seconds=60, queue=["flows"], w=1)


def test_a_dependency_finished_by_a_worker_that_died_is_reconciled(
    queue: Queue, db: Database
) -> None:
    """The dependency is completed as its worker would, and nobody is told
    (the worker died right then): another worker's reconciliation tells."""
    first = queue.enqueue(number, 7)
    after = queue.enqueue(total, depends_on=[first])
    claimed = {**first.doc, "state": "active", "worker_id": "w-died", "attempts": 1}
    claimed.update(claimed_at=now_ms(), lease_expires_at=now_ms() + 60_000)
    db.save(claimed)
    db.save({**claimed, "state": "complete", "completed_at": now_ms(), "result": 7})
    assert after.status == "blocked"
    worker = queue.create_worker(tasks, poll_interval=0.2, reap_interval=0.5)
    with running(worker):
        assert after.wait(timeout=30) == 7
    assert worker.unblocker.resolved == 1


def test_a_worker_killed_right_after_completing_the_last_dependency_leaves_nothing_stuck(
    db: Database, spawn_worker: Callable[..., subprocess.Popen]
) -> None:
    queue = Queue("flows-kill", db)
    first = queue.enqueue("add", 1, 2)
    after = queue.enqueue("add", 3, 4, depends_on=[first])
    killed = spawn_worker(db.name, "flows-kill", handler="task_module")
    wait_until(lambda: first.status == "complete", timeout=30, every=0.005)
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=10)
    worker = queue.create_worker("task_module", poll_interval=0.2, reap_interval=0.5)
    with running(worker):
        assert after.wait(timeout=30) == 7
