"""async handlers and cancelling, on a real server: coroutines run on the
worker's event loop, `--concurrency` of them in flight; a cancel stops a
waiting job at once and a running one through its worker's feed."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from conftest import running, wait_until

from queshot import Database, JobFailed, Queue, QueueError, Tasks, current_job

tasks = Tasks()
in_flight = {"now": 0, "most": 0}
events: list[str] = []
lock = threading.Lock()
started = threading.Event()


@tasks.task
async def nap(seconds: float) -> str:
    with lock:
        in_flight["now"] += 1
        in_flight["most"] = max(in_flight["most"], in_flight["now"])
    try:
        await asyncio.sleep(seconds)
    finally:
        with lock:
            in_flight["now"] -= 1
    return current_job().id


@tasks.task
def sync_add(a: int, b: int) -> int:
    return a + b


@tasks.task
async def wait_forever() -> None:
    started.set()
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        events.append("async task cancelled")
        raise


@tasks.task
def checks_for_cancel() -> None:
    started.set()
    job = current_job()
    while True:
        job.check_cancelled()
        time.sleep(0.02)


@tasks.task
def ignores_cancel() -> str:
    started.set()
    job = current_job()
    wait_until(lambda: job.cancelled, timeout=30)
    return "done anyway"


@pytest.fixture
def queue(db: Database) -> Queue:
    started.clear()
    events.clear()
    return Queue("async", db)


def test_a_hundred_async_jobs_run_together_on_one_worker(queue: Queue) -> None:
    in_flight.update(now=0, most=0)
    handles = [queue.enqueue(nap, 0.5) for _ in range(100)]
    worker = queue.create_worker(tasks, concurrency=100, poll_interval=0.2)
    with running(worker):
        results = [handle.wait(timeout=60) for handle in handles]
    assert results == [handle.id for handle in handles]
    docs = [handle.doc for handle in handles]
    span = (max(d["completed_at"] for d in docs) - min(d["claimed_at"] for d in docs)) / 1000
    # One after another they take 50 s; together, a few claim rounds and one nap.
    assert in_flight["most"] >= 50, in_flight
    assert span < 10, span


def test_sync_and_async_tasks_share_a_worker(queue: Queue) -> None:
    sync_job = queue.enqueue(sync_add, 1, 2)
    async_job = queue.enqueue(nap, 0.05)
    with running(queue.create_worker(tasks, concurrency=2, poll_interval=0.2)):
        assert sync_job.wait(timeout=30) == 3
        assert async_job.wait(timeout=30) == async_job.id


def test_an_async_job_over_its_timeout_is_cancelled_and_fails(queue: Queue) -> None:
    handle = queue.enqueue(wait_forever, timeout=0.5)
    with running(queue.create_worker(tasks, poll_interval=0.2)), pytest.raises(JobFailed) as failed:
        handle.wait(timeout=30)
    assert failed.value.error_type == "TimeoutError"
    assert failed.value.error_message == "job ran over its timeout of 0.5 s"
    assert events == ["async task cancelled"]


def test_a_waiting_job_is_cancelled_at_once(queue: Queue) -> None:
    handle = queue.enqueue(sync_add, 1, 2)
    assert handle.cancel() == "cancelled"
    with running(queue.create_worker(tasks, poll_interval=0.2)), pytest.raises(JobFailed) as failed:
        handle.wait(timeout=5)
        assert failed.value.state == "cancelled"
        assert queue.stats()["cancelled"] == 1
    assert handle.doc.get("attempts") == 0  # never claimed


@pytest.mark.parametrize("task", [checks_for_cancel, wait_forever], ids=["sync", "async"])
def test_a_running_job_asked_to_stop_ends_cancelled(queue: Queue, task: Any) -> None:
    handle = queue.enqueue(task)
    worker = queue.create_worker(tasks, poll_interval=0.2)
    with running(worker):
        assert started.wait(30)
        assert handle.cancel() == "active"  # asked; its worker stops it
        with pytest.raises(JobFailed) as failed:
            handle.wait(timeout=30)
    assert failed.value.state == "cancelled"
    assert failed.value.error_type == "Cancelled"
    assert handle.doc["cancelled_at"] >= handle.doc["cancel_requested_at"]
    assert worker.stats.cancelled == 1 and worker.stats.abandoned == 0


def test_a_job_that_ignores_the_cancel_completes_and_says_it_came_too_late(queue: Queue) -> None:
    handle = queue.enqueue(ignores_cancel)
    with running(queue.create_worker(tasks, poll_interval=0.2)):
        assert started.wait(30)
        handle.cancel()
        assert handle.wait(timeout=30) == "done anyway"
    doc = handle.doc
    assert doc["state"] == "complete"
    assert doc["log"][-1]["msg"] == "completed before it could stop: the cancel came too late"


def test_a_finished_job_cannot_be_cancelled(queue: Queue) -> None:
    handle = queue.enqueue(sync_add, 1, 1)
    with running(queue.create_worker(tasks, poll_interval=0.2)):
        handle.wait(timeout=30)
    with pytest.raises(QueueError, match="job is complete: too late to cancel"):
        handle.cancel()
