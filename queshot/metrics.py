"""Prometheus metrics (the `prometheus_client` library), two kinds:

- a worker's own, through a hook (`WorkerMetrics`, `queshot worker
  --metrics-port N`): jobs started, completed, failed, retried, cancelled
  and abandoned by queue and task, run durations, claim attempts and
  conflicts, jobs in flight;
- a database's queues (`DatabaseCollector`, `queshot metrics --port N`):
  jobs per queue and state, and the age of each queue's oldest waiting job,
  from the `stats` view and one row per queue at scrape time.

Each has its own registry, so a scrape shows only queshot's numbers and
those of the process serving them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from . import admin, limits, readable
from .couch import Database
from .jobs import now_ms
from .worker.hooks import Hook, Outcome

if TYPE_CHECKING:
    from .worker import Job, Worker

log = logging.getLogger(__name__)

# Seconds: from a no-op job to a long one.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)
OUTCOME_COUNTERS = {
    "complete": "completed",
    "failed": "failed",
    "retrying": "retried",
    "cancelled": "cancelled",
    "abandoned": "abandoned",
}


def label(text: str) -> str:
    """`text` as a label value the exposition can write: a lone surrogate
    (JSON may carry one, UTF-8 cannot) as its backslash escape."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def serve(registry: CollectorRegistry, port: int, host: str = "127.0.0.1") -> None:
    """Serve `registry` at http://host:port/metrics from a daemon thread."""
    start_http_server(port, addr=host, registry=registry)
    log.info("metrics at http://%s:%d/metrics", host, port)


class WorkerMetrics(Hook):
    """A worker's metrics, kept by hooks; `port` (if given) is served from
    the worker's start. Claims and in-flight jobs are read from the worker
    at scrape time (`ClaimCollector`), not counted twice."""

    def __init__(self, port: int | None = None, host: str = "127.0.0.1") -> None:
        self.registry = CollectorRegistry()
        self.port, self.host = port, host
        labels = ("queue", "task")
        self.started = Counter(
            "queshot_jobs_started", "Jobs started by this worker", labels, registry=self.registry
        )
        self.finished = {
            name: Counter(
                f"queshot_jobs_{name}", f"Runs that ended {state}", labels, registry=self.registry
            )
            for state, name in OUTCOME_COUNTERS.items()
        }
        self.duration = Histogram(
            "queshot_job_duration_seconds",
            "How long each run took, by how it ended",
            (*labels, "outcome"),
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self._served = threading.Lock()

    @staticmethod
    def _labels(job: Job) -> tuple[str, str]:
        return label(readable.queue_label(job.doc.get("queues"))), label(job.task or "-")

    def on_start(self, worker: Worker) -> None:
        self.registry.register(ClaimCollector(worker))
        if self.port is not None and self._served.acquire(blocking=False):
            serve(self.registry, self.port, self.host)

    def before_job(self, job: Job) -> None:
        self.started.labels(*self._labels(job)).inc()

    def after_job(self, job: Job, outcome: Outcome) -> None:
        labels = self._labels(job)
        self.finished[OUTCOME_COUNTERS[outcome.state]].labels(*labels).inc()
        self.duration.labels(*labels, outcome.state).observe(outcome.duration)


class ClaimCollector(Collector):
    """A worker's claim counters and jobs in flight, read when scraped."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    def collect(self) -> Iterator[Any]:
        stats = self.worker.stats.as_dict()
        queue = label(self.worker.queue_names)  # the worker's counters: "high, default" if several
        for name, key, help_text in (
            ("queshot_claim_attempts", "claim_attempts", "Claims tried"),
            ("queshot_claims_won", "claims_won", "Claims that got the job"),
            ("queshot_claim_conflicts", "claim_conflicts", "Claims another worker won"),
        ):
            counter = CounterMetricFamily(name, help_text, labels=["queue"])
            counter.add_metric([queue], stats[key])
            yield counter
        in_flight = GaugeMetricFamily("queshot_jobs_in_flight", "Jobs running", labels=["queue"])
        in_flight.add_metric([queue], len(self.worker.running))
        yield in_flight
        usage = self.worker.limiter.describe()
        for name, key, help_text in (
            ("queshot_limit_tokens_held", "tokens_held", "Limit tokens this worker holds"),
            ("queshot_jobs_held_back", "jobs_held_back", "Jobs it passes over: a limit is full"),
        ):
            gauge = GaugeMetricFamily(name, help_text, labels=["queue"])
            gauge.add_metric([queue], usage[key])
            yield gauge


class DatabaseCollector(Collector):
    """Jobs per queue and state, and each queue's oldest waiting job's age,
    for a whole database, read from its views when scraped."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def collect(self) -> Iterator[Any]:
        stats = admin.stats(self.db)
        yield from QueueFamilies(stats).collect()
        yield from limit_families(self.db, stats)


def limit_families(db: Database, stats: admin.Stats) -> Iterator[Any]:
    """Each limit's tokens in use, and the jobs waiting under a limit whose
    queue-wide tokens are all taken (per-key waits: the workers' gauge)."""
    labels = ["limit", "kind", "key"]
    size = GaugeMetricFamily("queshot_limit_tokens", "A limit's tokens (per key)", labels=labels)
    used = GaugeMetricFamily("queshot_limit_tokens_in_use", "Limit tokens held", labels=labels)
    waiting = GaugeMetricFamily(
        "queshot_limit_waiting_jobs", "Jobs waiting on a full limit", labels=["limit"]
    )
    in_use = limits.in_use(db, now_ms())
    for limit in limits.limits(db):
        full = False
        for group in limit.groups(key=""):
            key = "" if group.key is None else "*"
            size.add_metric([label(limit.name), group.kind, key], group.size)
            count = sum(
                n
                for (name, kind, _), n in in_use.items()
                if (name, kind) == (limit.name, group.kind)
            )
            used.add_metric([label(limit.name), group.kind, key], count)
            full = full or (group.key is None and count >= group.size)
        under = [
            e
            for e in stats.queues
            if isinstance(e.queue, list) and e.queue[: len(limit.queue)] == limit.queue
        ]
        waiting.add_metric(
            [label(limit.name)], sum(e.counts.get("waiting", 0) for e in under) if full else 0
        )
    yield from (size, used, waiting)


class QueueFamilies(Collector):
    """The metric families of one reading of a database's queues (`admin.stats`)."""

    def __init__(self, stats: admin.Stats) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Any]:
        jobs = GaugeMetricFamily(
            "queshot_queue_jobs", "Jobs per queue and state", labels=["queue", "state"]
        )
        oldest = GaugeMetricFamily(
            "queshot_queue_oldest_waiting_seconds",
            "Age of the oldest waiting job (0 when none waits)",
            labels=["queue"],
        )
        now = now_ms()
        # Labels are summed, not repeated: odd queues (see readable.queue_label) may share one.
        counts: dict[tuple[str, str], int] = {}
        ages: dict[str, float] = {}
        for entry in self.stats.queues:
            queue = label(readable.queue_label(entry.queue))
            for state, count in entry.counts.items():
                key = (queue, label(state))
                counts[key] = counts.get(key, 0) + count
            since = entry.oldest_waiting_since
            age = 0 if since is None else max(0, now - since) / 1000
            ages[queue] = max(ages.get(queue, 0), age)
        for labels, count in counts.items():
            jobs.add_metric(list(labels), count)
        for queue, age in ages.items():
            oldest.add_metric([queue], age)
        yield jobs
        yield oldest


def database_registry(db: Database) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(DatabaseCollector(db))
    return registry
