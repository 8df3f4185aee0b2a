"""Prometheus metrics scraped over HTTP after a known run: a worker's own
(`--metrics-port`) and a database's queues (`queshot metrics`)."""

from __future__ import annotations

import subprocess
import sys
import urllib.request

import pytest
from conftest import running, wait_until
from prometheus_client.parser import text_string_to_metric_families

from queshot import Database, Queue, Tasks
from queshot.devserver import free_port
from queshot.metrics import WorkerMetrics

tasks = Tasks()


@tasks.task
def ok(n: int) -> int:
    return n


@tasks.task
def broken() -> None:
    raise RuntimeError("no")


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_a_worker_serves_its_job_and_claim_counters(db: Database) -> None:
    queue = Queue("metered", db, backoff_seconds=0.05)
    handles = [queue.enqueue(ok, n) for n in range(3)]
    failing = queue.enqueue(broken, max_attempts=2)
    port = free_port()
    worker = queue.create_worker(tasks, poll_interval=0.2, hooks=[WorkerMetrics(port)])
    with running(worker):
        for handle in handles:
            handle.wait(timeout=30)
        wait_until(lambda: failing.status == "failed")
        wait_until(lambda: worker.stats.failed == 1)
        samples = scrape(port)
    ok_labels = (("queue", "metered"), ("task", "ok"))
    broken_labels = (("queue", "metered"), ("task", "broken"))
    assert samples[("queshot_jobs_started_total", ok_labels)] == 3
    assert samples[("queshot_jobs_completed_total", ok_labels)] == 3
    assert samples[("queshot_jobs_started_total", broken_labels)] == 2
    assert samples[("queshot_jobs_retried_total", broken_labels)] == 1
    assert samples[("queshot_jobs_failed_total", broken_labels)] == 1
    count = ("queshot_job_duration_seconds_count", (*ok_labels, ("outcome", "complete")))
    assert samples[(count[0], tuple(sorted(count[1])))] == 3
    assert samples[("queshot_claims_won_total", (("queue", "metered"),))] == 5
    assert samples[("queshot_claim_attempts_total", (("queue", "metered"),))] >= 5
    assert samples[("queshot_jobs_in_flight", (("queue", "metered"),))] == 0


def test_queshot_metrics_serves_depth_and_oldest_wait_per_queue(
    server_url: str, db: Database
) -> None:
    Queue("email", db).create_jobs([{"n": n} for n in range(4)])
    Queue("email", db).create_job({"n": 5}, delay=3600)  # scheduled, not waiting
    Queue(["reports", "daily"], db).create_job({"n": 1})
    port = free_port()
    command = [sys.executable, "-m", "queshot.cli", "metrics", "--port", str(port)]
    command += ["--url", server_url, "--db", db.name]
    server = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:

        def served() -> dict | None:
            """the metrics server answers"""
            try:
                return scrape(port)
            except OSError:
                return None

        samples = wait_until(served)
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert samples[("queshot_queue_jobs", (("queue", "email"), ("state", "waiting")))] == 4
    assert samples[("queshot_queue_jobs", (("queue", "email"), ("state", "scheduled")))] == 1
    assert samples[("queshot_queue_jobs", (("queue", "email"), ("state", "failed")))] == 0
    assert samples[("queshot_queue_jobs", (("queue", "reports/daily"), ("state", "waiting")))] == 1
    age = samples[("queshot_queue_oldest_waiting_seconds", (("queue", "email"),))]
    assert 0 <= age < 60


def test_queshot_metrics_says_when_the_server_is_unreachable(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from queshot.cli import main

    port = free_port()
    assert main(["metrics", "--port", str(free_port()), "--url", f"http://127.0.0.1:{port}/"]) == 1
    assert "cannot reach CouchDB at http://127.0.0.1:" in capsys.readouterr().err
