"""SIGTERM/SIGINT on a worker process: finish or give back, exit 0, leave nothing active."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

from conftest import wait_until
from recording import read_records

from queshot import Queue
from queshot.couch import Database


def worker_running_a_job(
    db: Database, spawn_worker, record_file: Path, *, sleep: float, grace: str
) -> tuple[Queue, str, subprocess.Popen]:
    """A worker process with a job of `sleep` seconds in flight."""
    queue = Queue("term", db)
    job_id = queue.create_job({"sleep": sleep})
    worker = spawn_worker(db.name, "term", "--grace", grace, "--poll-interval", "0.5")

    def started() -> bool:
        return any(r["id"] == job_id and r["event"] == "start" for r in read_records(record_file))

    wait_until(started)
    return queue, job_id, worker


def test_sigterm_lets_the_running_job_finish(db: Database, spawn_worker, record_file) -> None:
    queue, job_id, worker = worker_running_a_job(db, spawn_worker, record_file, sleep=2, grace="20")
    worker.send_signal(signal.SIGTERM)
    _, stderr = worker.communicate(timeout=30)
    assert worker.returncode == 0, stderr
    doc = queue.get_job(job_id)
    assert doc["state"] == "complete"
    assert queue.stats()["active"] == 0


def test_sigterm_releases_what_cannot_finish_in_the_grace_period(
    db: Database, spawn_worker, record_file
) -> None:
    queue, job_id, worker = worker_running_a_job(
        db, spawn_worker, record_file, sleep=30, grace="0.5"
    )
    began = time.monotonic()
    worker.send_signal(signal.SIGINT)
    _, stderr = worker.communicate(timeout=30)
    assert worker.returncode == 0, stderr
    assert time.monotonic() - began < 10
    doc = queue.get_job(job_id)
    assert (doc["state"], doc["worker_id"], doc["attempts"]) == ("inactive", None, 0)
    assert "released unfinished" in stderr


def test_a_second_signal_gives_the_running_job_back_and_exits(
    db: Database, spawn_worker, record_file
) -> None:
    """As `docker stop` or Kubernetes do after their grace period: the job is
    back to waiting at once (attempt not counted), not held until its lease."""
    queue, job_id, worker = worker_running_a_job(
        db, spawn_worker, record_file, sleep=30, grace="60"
    )
    worker.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    began = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    _, stderr = worker.communicate(timeout=10)
    assert time.monotonic() - began < 3
    assert worker.returncode != 0
    assert "second signal" in stderr
    doc = queue.get_job(job_id)
    assert (doc["state"], doc["worker_id"], doc["attempts"]) == ("inactive", None, 0)
    assert "released unfinished" in stderr
