"""Worker hooks on a real server: each event heard once, in order, and a
hook that raises everywhere is logged, never fatal, and loses no outcome."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from conftest import running, wait_until

from queshot import Database, Hook, Queue, Tasks

tasks = Tasks()


@tasks.task
def ok(n: int) -> int:
    return n


@tasks.task
def flaky() -> None:
    raise RuntimeError("try again")


class Recorder(Hook):
    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def on_start(self, worker: Any) -> None:
        self.events.append(("start",))

    def on_stop(self, worker: Any) -> None:
        self.events.append(("stop",))

    def before_job(self, job: Any) -> None:
        self.events.append(("before", job.task))

    def after_job(self, job: Any, outcome: Any) -> None:
        self.events.append(("after", job.task, outcome.state))

    def on_failure(self, job: Any, outcome: Any) -> None:
        self.events.append(("failure", outcome.error["type"], outcome.error["message"]))

    def on_retry(self, job: Any, outcome: Any) -> None:
        self.events.append(("retry", outcome.run_at > 0))


class Broken(Hook):
    def __getattribute__(self, name: str) -> Any:
        if name in ("on_start", "on_stop", "before_job", "after_job", "on_failure", "on_retry"):

            def fail(*args: Any) -> None:
                raise ValueError(f"{name} is broken")

            return fail
        return super().__getattribute__(name)


@pytest.fixture
def queue(db: Database) -> Queue:
    return Queue("hooks", db, backoff_seconds=0.05)


def test_hooks_hear_each_event_of_the_worker_and_its_jobs(queue: Queue) -> None:
    recorder = Recorder()
    done = queue.enqueue(ok, 1)
    retried = queue.enqueue(flaky, max_attempts=2)
    worker = queue.create_worker(tasks, poll_interval=0.2, hooks=[recorder])
    with running(worker):
        assert done.wait(timeout=30) == 1
        wait_until(lambda: retried.status == "failed")
        wait_until(lambda: ("after", "flaky", "failed") in recorder.events)
    events = recorder.events
    assert events[0] == ("start",) and events[-1] == ("stop",)
    assert events.count(("before", "flaky")) == 2
    ok_events = [e for e in events if e[1:2] == ("ok",)]
    assert ok_events == [("before", "ok"), ("after", "ok", "complete")]
    flaky_events = [
        e for e in events if e[0] in ("after", "retry", "failure") and e[1:2] != ("ok",)
    ]
    assert flaky_events == [
        ("after", "flaky", "retrying"),
        ("retry", True),
        ("after", "flaky", "failed"),
        ("failure", "RuntimeError", "try again"),
    ]


def test_a_hook_that_raises_is_logged_and_loses_nothing(
    queue: Queue, caplog: pytest.LogCaptureFixture
) -> None:
    handles = [queue.enqueue(ok, n) for n in range(3)] + [queue.enqueue(flaky)]
    worker = queue.create_worker(tasks, poll_interval=0.2, hooks=[Broken(), Recorder()])
    with caplog.at_level(logging.ERROR, logger="queshot.worker.hooks"), running(worker):
        assert [h.wait(timeout=30) for h in handles[:3]] == [0, 1, 2]
        wait_until(lambda: handles[3].status == "failed")
    assert worker.stats.completed == 3 and worker.stats.failed == 1
    failed_hooks = {r.getMessage() for r in caplog.records}
    assert "hook Broken.before_job failed (ignored)" in failed_hooks
    assert "hook Broken.after_job failed (ignored)" in failed_hooks
    assert "hook Broken.on_failure failed (ignored)" in failed_hooks
    assert {"hook Broken.on_start failed (ignored)", "hook Broken.on_stop failed (ignored)"} <= (
        failed_hooks
    )
