"""Tasks by name and results to wait on, on a real server: a job names its
task with args and kwargs, a worker of a Tasks registry runs it, and the
producer waits for the result on the changes feed."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from conftest import running

from queshot import (
    Database,
    JobFailed,
    Queue,
    QueueError,
    ResultTimeout,
    Tasks,
    current_job,
)

tasks = Tasks()


@tasks.task
def add(a: int, b: int = 0) -> int:
    return a + b


@tasks.task(name="mail.send")
def send_email(to: str, subject: str = "") -> dict[str, Any]:
    current_job().progress(50)
    return {"to": to, "subject": subject, "job": current_job().id}


@tasks.task
def echo(**kwargs: Any) -> dict[str, Any]:
    return kwargs


@tasks.task
def explode(message: str) -> None:
    raise ValueError(message)


@pytest.fixture
def queue(db: Database) -> Queue:
    return Queue("tasks", db)


def test_a_task_passed_by_reference_runs_with_its_args_and_kwargs(queue: Queue) -> None:
    worker = queue.create_worker(tasks, poll_interval=0.2)
    with running(worker):
        handle = queue.enqueue(add, 2, b=3, priority=5)
        assert handle.wait(timeout=30) == 5
    doc = handle.doc
    assert (doc["task"], doc["args"], doc["kwargs"], doc["priority"]) == ("add", [2], {"b": 3}, 5)
    assert handle.status == "complete" and handle.result == 5


def test_a_task_named_by_its_name_or_module_path_runs(queue: Queue) -> None:
    by_name = queue.enqueue("mail.send", "ada@example.org", subject="hi")
    by_path = queue.enqueue(f"{add.__module__}:add", 1, 1)
    with running(queue.create_worker(tasks, poll_interval=0.2)):
        sent = queue.result(by_name.id, timeout=30)
        assert queue.result(by_path.id, timeout=30) == 2
    assert sent == {"to": "ada@example.org", "subject": "hi", "job": by_name.id}
    assert by_name.doc["task"] == "mail.send"


def test_a_job_naming_an_unknown_task_fails_with_that_reason(queue: Queue) -> None:
    handle = queue.enqueue("no_such_task", 1)
    with running(queue.create_worker(tasks, poll_interval=0.2)), pytest.raises(JobFailed) as failed:
        handle.wait(timeout=30)
    assert failed.value.error_type == "UnknownTask"
    assert "'no_such_task' is not registered with this worker" in failed.value.error_message


def test_a_seed_job_on_a_worker_of_tasks_fails_with_that_reason(queue: Queue) -> None:
    job_id = queue.create_job({"to": "ada@example.org"})
    worker = queue.create_worker(tasks, poll_interval=0.2)
    with running(worker), pytest.raises(JobFailed, match="names no 'task'"):
        queue.result(job_id, timeout=30)


def test_a_failed_task_raises_its_error_type_message_and_traceback(queue: Queue) -> None:
    handle = queue.enqueue(explode, "boom")
    with running(queue.create_worker(tasks, poll_interval=0.2)), pytest.raises(JobFailed) as failed:
        handle.wait(timeout=30)
    error = failed.value
    assert (error.state, error.error_type, error.error_message) == ("failed", "ValueError", "boom")
    assert "raise ValueError(message)" in error.traceback
    assert str(error) == f"job {handle.id} failed: ValueError: boom"


def test_waiting_for_a_job_nobody_runs_times_out(queue: Queue) -> None:
    handle = queue.enqueue(add, 1)
    with pytest.raises(ResultTimeout, match="not finished after 0.5 s"):
        handle.wait(timeout=0.5)


def test_a_result_is_seen_on_the_feed_as_soon_as_it_is_written(queue: Queue) -> None:
    """The wait starts before the worker does, and ends on the feed's news."""
    handle = queue.enqueue(add, 40, 2)
    got: list[Any] = []
    waiter = threading.Thread(target=lambda: got.append(handle.wait(timeout=30)))
    waiter.start()
    with running(queue.create_worker(tasks, poll_interval=30)):
        waiter.join(30)
    assert got == [42]


def test_the_seed_handler_form_still_runs_seed_jobs(queue: Queue) -> None:
    job_id = queue.create_job({"n": 4})
    with running(queue.create_worker(lambda job: job.data["n"] * 2, poll_interval=0.2)):
        assert queue.result(job_id, timeout=30) == 8


def test_enqueue_refuses_what_json_cannot_carry(queue: Queue) -> None:
    with pytest.raises(QueueError, match="task args is not JSON-serialisable"):
        queue.enqueue(add, object())
    with pytest.raises(QueueError, match="args and kwargs need a task"):
        queue.create_job(None, args=[1])


def test_enqueue_call_keeps_task_arguments_apart_from_job_options(queue: Queue) -> None:
    """A task argument named like a job option (priority) stays the task's."""
    handle = queue.enqueue_call(echo, kwargs={"priority": "high"}, priority=1)
    with running(queue.create_worker(tasks, poll_interval=0.2)):
        assert handle.wait(timeout=30) == {"priority": "high"}
    assert handle.doc["priority"] == 1
