"""What the benchmark measures: the server's own limits (update-handler
writes, `_bulk_docs` with a trivial validator, changes-feed latency, one
claim) and the queue against them (enqueue, enqueue-to-start, throughput,
claims per job, idle workers)."""

from __future__ import annotations

import queue as stdqueue
import random
import statistics
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .. import protocol
from ..couch import Database
from ..queue import Queue
from .pool import WorkerPool, cpu_seconds, proc_status, server_cpu_seconds

BENCH_DDOC = "queshot-bench"
# The ceiling's update handler: a write with no queue logic at all.
TOUCH = "function (doc, req) { doc.n = (doc.n || 0) + 1; return [doc, {json: {ok: true}}]; }"
# The cheapest validate_doc_update: what every write pays for validation alone.
TRIVIAL_VALIDATOR = "function (newDoc, oldDoc, userCtx, secObj) {}"
DOCS_PER_CLIENT = 100
BULK_CHUNK = 2000


def percentile(values: list[float], pct: int) -> float:
    """The pct-th percentile (inclusive method), e.g. 50 for the median."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[pct - 1]


def spread(values: list[float]) -> dict[str, float]:
    """p50, p95, p99 and max of `values`."""
    return {p: percentile(values, n) for p, n in (("p50", 50), ("p95", 95), ("p99", 99))} | {
        "max": max(values)
    }


# -- the server's own limits ------------------------------------------------------------


def measure_ceiling(db: Database, clients: int, seconds: float) -> tuple[float, int]:
    """Update-handler writes per second on distinct documents with `clients`
    connections, through a handler that does nothing but save; and the number
    of writes. Runs in a database without the queue's design docs, so no
    validate_doc_update is involved either: the bare cost of a claim."""
    db.save({"_id": f"_design/{BENCH_DDOC}", "updates": {"touch": TOUCH}})
    ids = [[f"ceiling-{c}-{i}" for i in range(DOCS_PER_CLIENT)] for c in range(clients)]
    db.bulk_docs([{"_id": doc_id, "n": 0} for own in ids for doc_id in own])
    counts = [0] * clients
    start = threading.Barrier(clients + 1)
    deadline = 0.0

    def client(number: int) -> None:
        own = ids[number]
        db.update(BENCH_DDOC, "touch", own[0])  # warm up the connection and handler
        start.wait()
        done = 0
        while time.monotonic() < deadline:
            db.update(BENCH_DDOC, "touch", own[done % len(own)])
            done += 1
        counts[number] = done

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + seconds
    start.wait()
    began = time.monotonic()
    for thread in threads:
        thread.join()
    return sum(counts) / (time.monotonic() - began), sum(counts)


def measure_bulk(db: Database, docs: list[dict[str, Any]], *, validator: bool) -> float:
    """Documents per second stored through `_bulk_docs` (chunks of
    BULK_CHUNK); with `validator`, the database first gets the cheapest
    validate_doc_update, so that the figure is the server's own price of
    validating every document."""
    if validator:
        db.save({"_id": "_design/trivial", "validate_doc_update": TRIVIAL_VALIDATOR})
    began = time.perf_counter()
    for start in range(0, len(docs), BULK_CHUNK):
        db.bulk_docs([dict(doc) for doc in docs[start : start + BULK_CHUNK]])
    return len(docs) / (time.perf_counter() - began)


def measure_feed_latency(db: Database, count: int) -> dict[str, float]:
    """Milliseconds from a write being sent to a listening continuous
    `_changes` client seeing it: the server's own notification latency, which
    enqueue-to-start cannot beat."""
    seen: stdqueue.Queue[str] = stdqueue.Queue()
    stop = threading.Event()
    # Pinned here, before the first write: a listener that read "now" itself
    # could start after the warm-up document and wait for it forever.
    since = db.info()["update_seq"]

    def listen() -> None:
        for row in db.changes(since=since, heartbeat=1.0, stop=stop):
            seen.put(row["id"])

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    try:
        db.save({"_id": "feed-warm-up"})
        while seen.get(timeout=30) != "feed-warm-up":
            pass
        latencies = []
        for i in range(count):
            doc_id = f"feed-{i}"
            began = time.perf_counter()
            db.save({"_id": doc_id})
            while seen.get(timeout=30) != doc_id:
                pass
            latencies.append((time.perf_counter() - began) * 1000)
            time.sleep(random.uniform(0.02, 0.05))
    finally:
        stop.set()
        listener.join(timeout=5)
    return spread(latencies)


def measure_claim(queue: Queue, count: int) -> dict[str, float]:
    """Milliseconds of one claim through the queue's own `claim` handler (and
    validate_doc_update), one at a time, on waiting jobs no worker reads."""
    ids = queue.create_jobs({"i": i} for i in range(count))
    replicas = queue.db.replicas()
    latencies = []
    for job_id in ids:
        began = time.perf_counter()
        protocol.claim(
            queue.db, job_id, worker_id="bench", lease_seconds=60, queue=queue.path, w=replicas
        )
        latencies.append((time.perf_counter() - began) * 1000)
    return spread(latencies)


# -- the queue against them ---------------------------------------------------------------


def measure_enqueue(db: Database, jobs: int, single_jobs: int) -> dict[str, float]:
    """Jobs per second through `create_jobs` (bulk) and `create_job` one by one,
    on a queue no worker reads."""
    queue = Queue("bench-enqueue", db)
    began = time.perf_counter()
    queue.create_jobs({"i": i} for i in range(jobs))
    bulk_seconds = time.perf_counter() - began
    began = time.perf_counter()
    for i in range(single_jobs):
        queue.create_job({"i": i})
    single_seconds = time.perf_counter() - began
    return {
        "bulk": jobs / bulk_seconds,
        "bulk_seconds": bulk_seconds,
        "single": single_jobs / single_seconds,
    }


def measure_idle(pool: WorkerPool, seconds: float) -> dict[str, float]:
    """Memory and CPU of workers that have nothing to do."""
    before = {pid: cpu_seconds(pid) for pid in pool.pids}
    time.sleep(seconds)
    cpu = [(cpu_seconds(pid) - used) / seconds * 100 for pid, used in before.items()]
    return {
        "cpu_percent": max(cpu),
        "rss_mb": max(proc_status(pid, "VmRSS") for pid in pool.pids),
    }


def measure_latency(pool: WorkerPool, queue: Queue, count: int) -> dict[str, float]:
    """Enqueue-to-start times of jobs arriving one at a time at idle workers
    (each after the previous one has finished, and a pause): the handler's
    start time minus the job's `created_at`."""
    ids = []
    for i in range(count):
        done = pool.counters()["completed"]
        ids.append(queue.create_job({"i": i}))
        deadline = time.monotonic() + 30.0
        while pool.counters()["completed"] == done:
            if time.monotonic() > deadline:
                raise RuntimeError("a latency job did not complete within 30 s")
            time.sleep(0.005)
        time.sleep(random.uniform(0.05, 0.1))
    rows = queue.db.all_docs(keys=ids, include_docs=True)["rows"]
    return spread([row["doc"]["result"]["started_ms"] - row["doc"]["created_at"] for row in rows])


@dataclass(frozen=True)
class Drainers:
    """The workers of a timed run: `workers` processes x `concurrency`,
    spread over `urls`, draining a queue's waiting jobs for `seconds`; the
    server's CPU is read from `server_pids` (when its processes are this
    machine's). One value for every phase that drains, so that each drains
    the same way."""

    urls: list[str]
    workers: int
    concurrency: int
    seconds: float
    server_pids: Sequence[int] = ()

    def rate(self, queue: Queue, waiting: int) -> dict[str, Any]:
        """Completed jobs per second over `seconds` of the `waiting` jobs
        already in `queue` (indexed), after a one-second warm-up; claims per
        job in the window, the workers' peak memory and CPU per job, the
        server's CPU per job, and whether the queue ran dry (then the rate
        is the backlog's, not the workers')."""
        pool = WorkerPool(self.urls, queue.db.name, queue.name, self.workers, self.concurrency)
        with pool:
            time.sleep(1.0)
            first, began = pool.counters(), time.monotonic()
            server_before = sum(server_cpu_seconds(pid) for pid in self.server_pids)
            workers_before = sum(cpu_seconds(pid) for pid in pool.pids)
            time.sleep(self.seconds)
            last = pool.counters()
            elapsed = time.monotonic() - began
            server_cpu = sum(server_cpu_seconds(pid) for pid in self.server_pids) - server_before
            workers_cpu = sum(cpu_seconds(pid) for pid in pool.pids) - workers_before
            peak_rss = max(proc_status(pid, "VmHWM") for pid in pool.pids)
            pool.stop()
        completed = last["completed"] - first["completed"]
        return {
            "per_s": completed / elapsed,
            "completed_total": last["completed"],
            "ran_dry": last["completed"] >= waiting,
            "claims_per_job": (last["claim_attempts"] - first["claim_attempts"])
            / max(1, completed),
            "peak_rss_mb": peak_rss,
            "server_cpu_ms_per_job": 1000 * server_cpu / completed
            if self.server_pids and completed
            else None,
            "worker_cpu_ms_per_job": 1000 * workers_cpu / completed if completed else None,
        }


def best_of(runs: list[dict[str, Any]]) -> tuple[float, float | None]:
    """The base a ratio is set against, from runs of the same thing: the
    higher rate and the lower server CPU per job, so that the ratios do not
    flatter. Server CPU per job is what a busy shared machine disturbs least
    (its other processes slow the clock, not the server's own work per job)."""
    cpu = [run["server_cpu_ms_per_job"] for run in runs]
    return max(run["per_s"] for run in runs), min(cpu) if None not in cpu else None


def ratio(value: float | None, base: float | None) -> float | None:
    """`value` against `base`; None when either was not measured."""
    return value / base if value is not None and base else None


def measure_throughput(drainers: Drainers, queue: Queue, jobs: int) -> dict[str, Any]:
    """Completed jobs per second over a window of a full queue (`Drainers.rate`):
    the `jobs` are enqueued and indexed first. Also how fast the pending
    index took them in."""
    queue.create_jobs({"i": i} for i in range(jobs))
    began = time.monotonic()
    protocol.warm_up(queue.db, queue.view)
    index_seconds = time.monotonic() - began
    return drainers.rate(queue, jobs) | {"index_per_s": jobs / index_seconds}


def measure_contention(
    urls: list[str], db: Database, workers: int, concurrency: int, jobs: int, seconds: float
) -> dict[str, Any]:
    """Claim attempts per completed job when `workers` idle processes drain a
    burst of `jobs` jobs (for at most `seconds`)."""
    queue = Queue(f"bench-contention-{workers}", db)
    with WorkerPool(urls, db.name, queue.name, workers, concurrency) as pool:
        began = time.monotonic()
        queue.create_jobs({"i": i} for i in range(jobs))
        while pool.counters()["completed"] < jobs and time.monotonic() < began + seconds:
            time.sleep(0.1)
        elapsed = time.monotonic() - began
        total = pool.stop()
    return {
        "workers": workers,
        "jobs": total["completed"],
        "claims_per_job": total["claim_attempts"] / max(1, total["completed"]),
        "conflicts": total["claim_conflicts"],
        "per_s": total["completed"] / elapsed,
    }
