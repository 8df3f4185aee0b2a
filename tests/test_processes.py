"""`queshot worker --processes`: handlers in child processes, against a real
server and real worker processes. Each handler records its start with its
pid (tests/child_handlers.py), which is how children are counted."""

from __future__ import annotations

import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from conftest import wait_until
from recording import read_records

from queshot import Queue, Worker
from queshot.couch import Database
from queshot.jobs import QueueError

HANDLER = "child_handlers:handle"
WINDOW_LEAD = 15.0  # seconds for workers to start and claim before the CPU test's window
WINDOW = 8.0  # seconds of that window


def finished(queue: Queue, *ids: str) -> bool:
    return all(queue.get_job(i)["state"] in ("complete", "failed", "cancelled") for i in ids)


def pids(record_file: Path) -> Counter[int]:
    """Jobs started per child process."""
    return Counter(r["pid"] for r in read_records(record_file) if r["event"] == "start")


def stop(worker: subprocess.Popen) -> str:
    """SIGTERM the worker; its log, once it exited 0."""
    worker.send_signal(signal.SIGTERM)
    _, stderr = worker.communicate(timeout=60)
    assert worker.returncode == 0, stderr[-3000:]
    return stderr


def test_a_job_over_its_timeout_is_killed_and_its_slot_reused(
    db: Database, spawn_worker: Any, record_file: Path
) -> None:
    queue = Queue("slow", db, backoff_seconds=0)
    hung = queue.create_job({"do": "hang"}, timeout=3, max_attempts=2)
    worker = spawn_worker(db.name, "slow", "--processes", "1", handler=HANDLER)
    wait_until(lambda: finished(queue, hung), timeout=60)
    doc = queue.get_job(hung)
    assert doc["state"] == "failed"
    assert doc["attempts"] == 2
    assert doc["error"]["type"] == "TimeoutError"
    # One slot: a job after two hung attempts still runs, in a third child.
    after = queue.create_job({})
    wait_until(lambda: finished(queue, after))
    assert queue.get_job(after)["state"] == "complete"
    log = stop(worker)
    assert len(pids(record_file)) == 3, log


@pytest.mark.parametrize(
    ("do", "said"),
    [
        ("exit", "exited with code 3"),
        ("sigkill", "killed by signal SIGKILL"),
        ("segfault", "killed by signal SIGSEGV"),
    ],
)
def test_a_child_that_dies_fails_only_its_job(
    db: Database, spawn_worker: Any, record_file: Path, do: str, said: str
) -> None:
    queue = Queue("dying", db)
    doomed = queue.create_job({"do": do}, max_attempts=1)
    fine = queue.create_jobs([{} for _ in range(4)])
    worker = spawn_worker(db.name, "dying", "--processes", "2", handler=HANDLER)
    wait_until(lambda: finished(queue, doomed, *fine), timeout=60)
    error = queue.get_job(doomed)["error"]
    assert queue.get_job(doomed)["state"] == "failed"
    assert error["type"] == "ChildProcessDied"
    assert said in error["message"]
    assert [queue.get_job(i)["state"] for i in fine] == ["complete"] * 4
    assert worker.poll() is None
    stop(worker)


def test_max_jobs_per_child_recycles_children(
    db: Database, spawn_worker: Any, record_file: Path
) -> None:
    queue = Queue("leaky", db)
    ids = queue.create_jobs([{} for _ in range(50)])
    worker = spawn_worker(
        db.name, "leaky", "--processes", "1", "--max-jobs-per-child", "10", handler=HANDLER
    )
    wait_until(lambda: queue.stats()["complete"] == 50, timeout=120)
    assert len(ids) == 50
    assert sorted(pids(record_file).values()) == [10] * 5
    stop(worker)


def test_max_memory_per_child_recycles_children(
    db: Database, spawn_worker: Any, record_file: Path
) -> None:
    queue = Queue("growing", db)
    queue.create_jobs([{"do": "grow", "mb": 40} for _ in range(6)])
    worker = spawn_worker(
        db.name, "growing", "--processes", "1", "--max-memory-per-child", "100", handler=HANDLER
    )
    wait_until(lambda: queue.stats()["complete"] == 6, timeout=120)
    per_child = pids(record_file)
    # Each job keeps 40 MB: no child can run three past 100 MB.
    assert len(per_child) >= 2
    assert max(per_child.values()) <= 3
    stop(worker)


def test_a_cpu_bound_handler_uses_two_cores_with_two_processes(
    db: Database, spawn_worker: Any
) -> None:
    """Two CPU-bound jobs on a worker with --processes 2 and two on one with
    --concurrency 2 (threads) burn CPU in the same wall-time window; the
    children's CPU time, against the threads', tells whether they ran on two
    cores: threads share one (the GIL). Measured side by side, so that what
    else the machine runs weighs on both alike."""
    start = time.time() + WINDOW_LEAD
    data = {"do": "spin", "start": start, "end": start + WINDOW}
    procs, threads = Queue("cpu-procs", db), Queue("cpu-threads", db)
    ids = {q.name: q.create_jobs([data, data]) for q in (procs, threads)}
    workers = [
        spawn_worker(db.name, "cpu-procs", "--processes", "2", handler=HANDLER),
        spawn_worker(db.name, "cpu-threads", "--concurrency", "2", handler=HANDLER),
    ]
    wait_until(lambda: procs.stats()["complete"] == threads.stats()["complete"] == 2, timeout=120)
    for worker in workers:
        stop(worker)
    results = {q.name: [q.get_job(i)["result"] for i in ids[q.name]] for q in (procs, threads)}
    assert not any(r["late"] for rs in results.values() for r in rs), "a job began too late"
    assert len({r["pid"] for r in results["cpu-procs"]}) == 2
    in_children = sum(r["cpu"] for r in results["cpu-procs"])
    in_threads = sum(r["cpu"] for r in results["cpu-threads"])
    print(f"\nin {WINDOW} s: {in_children:.2f} s of CPU in children, {in_threads:.2f} in threads")
    assert in_children > 1.3 * in_threads  # 2 on an idle or evenly loaded machine


def test_cancel_reaches_a_child_cooperating_or_not(db: Database, spawn_worker: Any) -> None:
    queue = Queue("cancel", db)
    worker = spawn_worker(db.name, "cancel", "--processes", "2", handler=HANDLER)
    polite = queue.create_job({"do": "cooperate"})
    deaf = queue.create_job({"do": "hang"})
    wait_until(lambda: all(queue.get_job(i)["state"] == "active" for i in (polite, deaf)))
    queue.cancel(polite)
    queue.cancel(deaf)
    wait_until(lambda: finished(queue, polite, deaf), timeout=60)
    assert queue.get_job(polite)["state"] == "cancelled"
    assert queue.get_job(deaf)["state"] == "cancelled"
    log = stop(worker)
    assert "cancel not obeyed; its process" in log  # the deaf one was killed after the grace
    assert log.count("cancel not obeyed") == 1


@pytest.mark.parametrize(
    ("handler", "job"),
    [
        ("child_handlers:handle", {"data": {"do": "describe"}}),
        ("child_handlers:handle_async", {"data": {}}),
        ("child_handlers", {"task": "described", "args": ["hello"]}),
    ],
)
def test_the_handler_sees_the_job_api_in_a_child(
    db: Database, spawn_worker: Any, handler: str, job: dict[str, Any]
) -> None:
    queue = Queue("api", db)
    if "task" in job:
        job_id = queue.enqueue(job["task"], *job["args"]).id
    else:
        job_id = queue.create_job(job["data"])
    worker = spawn_worker(db.name, "api", "--processes", "1", handler=handler)
    wait_until(lambda: finished(queue, job_id), timeout=60)
    doc = queue.get_job(job_id)
    stop(worker)
    assert doc["state"] == "complete", doc.get("error")
    result = doc["result"]
    assert worker.pid != result["pid"]
    assert result["id"] == result["current"] == job_id
    assert result["attempts"] == 1
    assert result["cancelled"] is False
    if "task" in job:
        assert [line["msg"] for line in doc["log"]] == ["task says hello"]
    elif job["data"]:
        assert result["data"] == job["data"]
        assert [line["msg"] for line in doc["log"]] == ["a line from the child"]


def test_processes_and_another_concurrency_are_refused(db: Database) -> None:
    queue = Queue("refused", db)
    with pytest.raises(QueueError, match="concurrency is the number of processes"):
        Worker(queue, HANDLER, processes=2, concurrency=3)
    with pytest.raises(QueueError, match="cannot be sent to a child process"):
        Worker(queue, lambda job: None, processes=2)
    with pytest.raises(QueueError, match="max_jobs_per_child must be >= 1"):
        Worker(queue, HANDLER, processes=2, max_jobs_per_child=0)
    with pytest.raises(QueueError, match="need processes"):
        Worker(queue, HANDLER, max_memory_per_child=100)
    assert Worker(queue, HANDLER, processes=3).concurrency == 3
    assert queue.create_worker(HANDLER, processes=3).concurrency == 3


def test_the_cli_refuses_processes_with_another_concurrency_in_one_line(
    db: Database, spawn_worker: Any
) -> None:
    worker = spawn_worker(db.name, "q", "--processes", "2", "--concurrency", "3", handler=HANDLER)
    _, stderr = worker.communicate(timeout=60)
    assert worker.returncode != 0
    assert stderr.strip().splitlines() == [
        "queshot: error: concurrency 3 with processes 2: each child process runs one job "
        "at a time, so concurrency is the number of processes"
    ]


def alive(pid: int) -> bool:
    """Whether process `pid` still runs (a zombie counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_sigterm_gives_back_a_job_whose_child_hangs_and_exits(
    db: Database, spawn_worker: Any, record_file: Path
) -> None:
    queue = Queue("stopping", db)
    hung = queue.create_job({"do": "hang"})
    worker = spawn_worker(db.name, "stopping", "--processes", "1", "--grace", "1", handler=HANDLER)
    wait_until(lambda: pids(record_file))
    stop(worker)
    assert queue.get_job(hung)["state"] == "inactive"  # released: it runs again elsewhere
    assert not alive(next(iter(pids(record_file))))


def test_a_sigkilled_worker_leaves_no_child_running(
    db: Database, spawn_worker: Any, record_file: Path
) -> None:
    queue = Queue("orphans", db)
    queue.create_job({"do": "hang"})
    worker = spawn_worker(db.name, "orphans", "--processes", "2", handler=HANDLER)
    wait_until(lambda: pids(record_file))
    child = next(iter(pids(record_file)))
    worker.kill()
    worker.wait()
    wait_until(lambda: not alive(child))
