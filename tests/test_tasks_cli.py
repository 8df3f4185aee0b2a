"""`queshot worker MODULE` (a module of tasks, with a hook), `wait`,
`cancel` and `show` of a task's result, against the test server: the worker
as a real subprocess, the other commands in-process."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import pytest
from conftest import wait_until

from queshot.cli import main
from queshot.couch import Database
from queshot.queue import Queue


def cli(server_url: str, db: Database, *args: str) -> int:
    return main([*args, "--url", server_url, "--db", db.name])


def test_a_worker_of_a_tasks_module_runs_jobs_by_name_and_wait_says_how_they_ended(
    server_url: str,
    db: Database,
    spawn_worker: Callable[..., subprocess.Popen],
    capsys: pytest.CaptureFixture[str],
) -> None:
    queue = Queue("cli-tasks", db)
    added = queue.enqueue("add", 2, 3)
    napped = queue.enqueue("slow", 0.01)
    failed = queue.enqueue("fail", "no luck")
    worker = spawn_worker(
        db.name,
        "cli-tasks",
        "--hook",
        "task_module:Timing",
        "--concurrency",
        "2",
        handler="task_module",
    )
    assert cli(server_url, db, "wait", added.id, "--timeout", "30") == 0
    assert capsys.readouterr().out == "5\n"
    assert cli(server_url, db, "wait", napped.id, "--timeout", "30") == 0
    assert capsys.readouterr().out == '"slept"\n'
    assert cli(server_url, db, "wait", failed.id, "--timeout", "30") == 1
    assert capsys.readouterr().err == f"queshot: job {failed.id} failed: RuntimeError: no luck\n"

    assert cli(server_url, db, "show", added.id) == 0
    shown = capsys.readouterr().out
    assert "task: add\n  args:   [2, 3]\n  kwargs: {}\n" in shown
    assert "result:\n  5\n" in shown

    worker.terminate()
    _, stderr = worker.communicate(timeout=30)
    assert f"timing: add {added.id} complete in " in stderr
    assert f"job {failed.id} failed (RuntimeError: no luck)" in stderr


def test_wait_times_out_with_exit_2(
    server_url: str, db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    handle = Queue("cli-tasks", db).enqueue("add", 1, 1)
    assert cli(server_url, db, "wait", handle.id, "--timeout", "0.3") == 2
    assert capsys.readouterr().err == (
        f"queshot: job {handle.id} not finished after 0.3 s (it is inactive)\n"
    )


def test_cancel_a_waiting_job_and_refuse_a_finished_one(
    server_url: str, db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    queue = Queue("cli-tasks", db)
    waiting = queue.enqueue("add", 1, 1)
    done = queue.enqueue("add", 1, 2)
    queue.cancel(done.id)
    assert cli(server_url, db, "cancel", waiting.id, done.id, "nope") == 1
    assert capsys.readouterr().out.splitlines() == [
        "cancelled 1 job",
        f"  {done.id}: not cancelled: job is cancelled: too late to cancel",
        "  nope: not cancelled: no such job",
    ]
    wait_until(lambda: waiting.status == "cancelled")
    assert cli(server_url, db, "wait", waiting.id) == 1
    assert capsys.readouterr().err == f"queshot: job {waiting.id} cancelled: no error recorded\n"


def test_enqueue_a_task_with_its_arguments_and_what_it_waits_for(
    server_url: str, db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    first = Queue("cli-tasks", db).enqueue("add", 1, 1)
    status = cli(
        server_url,
        db,
        "enqueue",
        "cli-tasks",
        "--task",
        "add",
        "--args",
        "[2]",
        "--kwargs",
        '{"b": 3}',
        "--depends-on",
        first.id,
    )
    assert status == 0
    doc = db.get(capsys.readouterr().out.strip())
    assert (doc["task"], doc["args"], doc["kwargs"]) == ("add", [2], {"b": 3})
    assert (doc["state"], doc["waiting_for"]) == ("blocked", [first.id])


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["{}", "--args", "[1]"], "--args and --kwargs go with --task"),
        (["--task", "add", "--args", "{}"], "--args must be a JSON array"),
        (["--task", "add", "--kwargs", "[x"], "--kwargs is not JSON"),
        (["--task", "add", "--depends-on", "nope"], "no job 'nope' to depend on"),
    ],
)
def test_enqueue_refuses_bad_task_flags_in_one_line(
    server_url: str, db: Database, capsys: pytest.CaptureFixture[str], flags: list, message: str
) -> None:
    assert cli(server_url, db, "enqueue", "cli-tasks", *flags) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
