"""`queshot bench`: how fast the queue runs on this server, in one run on
throwaway databases (one per phase, created, then dropped).

Every number is set against the server's own ceiling: the rate of trivial
update-handler writes on distinct documents from as many client connections
as the workers will use, i.e. the cost of one claim with no queue logic.
Workers are real processes (multiprocessing, spawn) running real `Worker`s on
a no-op handler; the bench asks each for its counters over a pipe, so
counting puts no load on the server, and reads memory and CPU from /proc.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import random
import statistics
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from typing import Any

from . import designdocs, protocol, sync
from .couch import Couch, CouchError, Database, safe_url
from .queue import Queue
from .worker import Job

log = logging.getLogger(__name__)

BENCH_DDOC = "queshot-bench"
# The ceiling's update handler: a write with no queue logic at all.
TOUCH = "function (doc, req) { doc.n = (doc.n || 0) + 1; return [doc, {json: {ok: true}}]; }"
DOCS_PER_CLIENT = 100
READY_TIMEOUT = 60.0
WAKE_SETTLE = 0.5  # seconds for fresh workers' change feeds to connect
COUNTERS = ("claim_attempts", "claims_won", "claim_conflicts", "completed", "failed", "abandoned")


@dataclass(frozen=True)
class BenchConfig:
    """What to measure: `workers` processes x `concurrency` for throughput and
    latency; `contention` lists the worker counts for claims per job."""

    jobs: int = 10_000
    workers: int = 4
    concurrency: int = 4
    seconds: float = 10.0
    contention: tuple[int, ...] = (1, 2, 4, 8)
    contention_jobs: int = 500
    latency_jobs: int = 100
    single_jobs: int = 300
    idle_seconds: float = 3.0


def noop(job: Job) -> dict[str, float]:
    """The benchmark's job: does nothing, but records when it started (epoch
    ms by this machine's clock, as `created_at` is) for the latency figure."""
    return {"started_ms": time.time() * 1000}


# -- worker processes -------------------------------------------------------------


def _worker_process(
    conn: Connection, url: str, db_name: str, queue_name: str, concurrency: int
) -> None:
    """A worker process's entry point: run a Worker on `noop`; answer "stats"
    with its counters, "stop" with its final counters after a graceful stop."""
    with Couch(url) as couch:
        worker = Queue(queue_name, couch.database(db_name)).create_worker(
            noop, concurrency=concurrency
        )
        worker.start()
        conn.send("ready")
        while True:
            command = conn.recv()
            if command == "stop":
                worker.stop(grace=10.0)
            stats = worker.stats.as_dict()
            conn.send({name: stats[name] for name in COUNTERS})
            if command == "stop":
                return


class WorkerPool:
    """`count` worker processes on one queue, driven over pipes."""

    def __init__(self, url: str, db_name: str, queue_name: str, count: int, concurrency: int):
        context = multiprocessing.get_context("spawn")
        self._pipes: list[Connection] = []
        self.processes: list[multiprocessing.process.BaseProcess] = []
        for _ in range(count):
            parent, child = context.Pipe()
            process = context.Process(
                target=_worker_process,
                args=(child, url, db_name, queue_name, concurrency),
                daemon=True,
            )
            self._pipes.append(parent)
            self.processes.append(process)

    def __enter__(self) -> WorkerPool:
        for process in self.processes:
            process.start()
        for pipe in self._pipes:
            if not pipe.poll(READY_TIMEOUT) or pipe.recv() != "ready":
                raise RuntimeError("a benchmark worker did not start")
        time.sleep(WAKE_SETTLE)
        return self

    def __exit__(self, *exc: object) -> None:
        for process in self.processes:
            if process.is_alive():
                process.terminate()
            process.join(5)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes if p.pid is not None]

    def _ask(self, command: str) -> dict[str, int]:
        for pipe in self._pipes:
            pipe.send(command)
        total = dict.fromkeys(COUNTERS, 0)
        for pipe in self._pipes:
            for name, value in pipe.recv().items():
                total[name] += value
        return total

    def counters(self) -> dict[str, int]:
        """The workers' counters, summed."""
        return self._ask("stats")

    def stop(self) -> dict[str, int]:
        """Stop every worker gracefully; their final counters, summed."""
        total = self._ask("stop")
        for process in self.processes:
            process.join(10)
        return total


def _proc_status(pid: int, field: str) -> float:
    """A memory figure of a live process from /proc/<pid>/status, in MB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/{pid}/status has no {field}")


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process, all threads, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- the measurements -------------------------------------------------------------


def measure_ceiling(db: Database, clients: int, seconds: float) -> tuple[float, int]:
    """Update-handler writes per second on distinct documents with `clients`
    connections, through a handler that does nothing but save; and the number
    of writes. Runs before the queue's design docs exist, so no
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
    before = {pid: _cpu_seconds(pid) for pid in pool.pids}
    time.sleep(seconds)
    cpu = [(_cpu_seconds(pid) - used) / seconds * 100 for pid, used in before.items()]
    return {
        "cpu_percent": max(cpu),
        "rss_mb": max(_proc_status(pid, "VmRSS") for pid in pool.pids),
    }


def percentile(values: list[float], pct: int) -> float:
    """The pct-th percentile (inclusive method), e.g. 50 for the median."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[pct - 1]


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
    latencies = [row["doc"]["result"]["started_ms"] - row["doc"]["created_at"] for row in rows]
    return {p: percentile(latencies, n) for p, n in (("p50", 50), ("p95", 95), ("p99", 99))} | {
        "max": max(latencies)
    }


def measure_throughput(
    url: str, queue: Queue, config: BenchConfig, jobs: int, server_pid: int | None
) -> dict[str, Any]:
    """Completed jobs per second over `seconds` of a full queue: the jobs are
    enqueued and indexed first, the workers then get a one-second warm-up.
    Also claim attempts per job in the window, the workers' peak memory and
    CPU per job (what sizing the workers' machines needs), and (embedded
    server) the server's CPU per job."""
    queue.create_jobs({"i": i} for i in range(jobs))
    began = time.monotonic()
    protocol.warm_up(queue.db, queue.view)
    index_seconds = time.monotonic() - began
    with WorkerPool(url, queue.db.name, queue.name, config.workers, config.concurrency) as pool:
        time.sleep(1.0)
        first, began = pool.counters(), time.monotonic()
        cpu_before = _cpu_seconds(server_pid) if server_pid else 0.0
        workers_cpu_before = sum(_cpu_seconds(pid) for pid in pool.pids)
        time.sleep(config.seconds)
        last = pool.counters()
        elapsed = time.monotonic() - began
        server_cpu = _cpu_seconds(server_pid) - cpu_before if server_pid else None
        workers_cpu = sum(_cpu_seconds(pid) for pid in pool.pids) - workers_cpu_before
        peak_rss = max(_proc_status(pid, "VmHWM") for pid in pool.pids)
        pool.stop()
    completed = last["completed"] - first["completed"]
    return {
        "per_s": completed / elapsed,
        "claims_per_job": (last["claim_attempts"] - first["claim_attempts"]) / max(1, completed),
        "ran_dry": last["completed"] >= jobs,
        "index_per_s": jobs / index_seconds,
        "peak_rss_mb": peak_rss,
        "server_cpu_ms_per_job": 1000 * server_cpu / completed
        if server_cpu and completed
        else None,
        "worker_cpu_ms_per_job": 1000 * workers_cpu / completed if completed else None,
    }


def measure_contention(
    url: str, db: Database, workers: int, concurrency: int, jobs: int, seconds: float
) -> dict[str, Any]:
    """Claim attempts per completed job when `workers` idle processes drain a
    burst of `jobs` jobs (for at most `seconds`)."""
    queue = Queue(f"bench-contention-{workers}", db)
    with WorkerPool(url, db.name, queue.name, workers, concurrency) as pool:
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


@contextlib.contextmanager
def _server(url: str | None) -> Iterator[tuple[str, int | None]]:
    """The given server, or an embedded in-memory pouchdb-server for the run
    (whose pid lets the bench report the server's CPU per operation)."""
    if url:
        yield url, None
        return
    from .devserver import DevServer

    with DevServer() as server:
        yield server.url, server.pid


class ThrowawayDatabases:
    """A fresh database per phase, all dropped at the end, so that no phase
    pays for another's leftovers: its jobs to index, or the changes feeds of
    its stopped workers, which pouchdb-server goes on serving (ARCHITECTURE.md)
    and which slow every later write to that database."""

    def __init__(self, couch: Couch) -> None:
        self.couch = couch
        self._prefix = f"queshot_bench_{uuid.uuid4().hex[:10]}"
        self._created: list[Database] = []
        self._design_docs = designdocs.load()

    def new(self, *, queue_design_docs: bool = True) -> Database:
        db = self.couch.database(f"{self._prefix}_{len(self._created)}")
        db.create()
        self._created.append(db)
        if queue_design_docs:
            sync.push(self.couch, [db.name], self._design_docs)
        return db

    def drop_all(self) -> None:
        for db in self._created:
            try:
                db.drop()
            except CouchError as exc:
                log.warning("benchmark database %s not dropped: %s", db.name, exc)


def run(config: BenchConfig, url: str | None = None) -> dict[str, Any]:
    """Every measurement in one run; returns the results (see `format_table`)."""
    with _server(url) as (server_url, server_pid), Couch(server_url) as couch:
        databases = ThrowawayDatabases(couch)
        try:
            return _measure(config, server_url, server_pid, databases)
        finally:
            databases.drop_all()


def _measure(
    config: BenchConfig, url: str, server_pid: int | None, databases: ThrowawayDatabases
) -> dict[str, Any]:
    """The phases, each on its own database (ThrowawayDatabases)."""
    clients = config.workers * config.concurrency
    log.info("ceiling: %d clients for %.0f s", clients, config.seconds)
    cpu_before = _cpu_seconds(server_pid) if server_pid else 0.0
    bare = databases.new(queue_design_docs=False)
    ceiling, writes = measure_ceiling(bare, clients, config.seconds)
    ceiling_cpu = _cpu_seconds(server_pid) - cpu_before if server_pid else None

    db = databases.new()
    queue = Queue("bench-latency", db)
    with WorkerPool(url, db.name, queue.name, config.workers, config.concurrency) as pool:
        log.info("idle: %d workers for %.0f s", config.workers, config.idle_seconds)
        idle = measure_idle(pool, config.idle_seconds)
        log.info("latency: %d jobs one at a time", config.latency_jobs)
        latency = measure_latency(pool, queue, config.latency_jobs)
        pool.stop()

    # Enough jobs to keep the workers busy through the window even at the ceiling.
    jobs = min(config.jobs, int(ceiling * (config.seconds + 3)) + 100)
    log.info("throughput: %d jobs, %.0f s window", jobs, config.seconds)
    throughput = measure_throughput(
        url, Queue("bench-throughput", databases.new()), config, jobs, server_pid
    )

    contention = []
    for workers in config.contention:
        log.info("contention: %d workers, %d jobs", workers, config.contention_jobs)
        contention.append(
            measure_contention(
                url,
                databases.new(),
                workers,
                config.concurrency,
                config.contention_jobs,
                2 * config.seconds,
            )
        )
    log.info("enqueue: %d jobs in bulk, %d one by one", config.jobs, config.single_jobs)
    enqueue = measure_enqueue(databases.new(), config.jobs, config.single_jobs)
    return {
        "server": safe_url(url),
        "embedded": server_pid is not None,
        "cores": os.cpu_count(),
        "config": asdict(config),
        "ceiling_per_s": ceiling,
        "throughput_per_s": throughput["per_s"],
        "ratio": throughput["per_s"] / ceiling,
        "throughput": throughput,
        "latency_ms": latency,
        "claims_per_job": contention[-1]["claims_per_job"] if contention else None,
        "contention": contention,
        "enqueue_per_s": enqueue,
        "worker_rss_mb": {"idle": idle["rss_mb"], "peak": throughput["peak_rss_mb"]},
        "worker_idle_cpu_percent": idle["cpu_percent"],
        "server_cpu_ms_per_write": 1000 * ceiling_cpu / writes if ceiling_cpu else None,
    }


def format_table(results: dict[str, Any]) -> str:
    """The results as a plain-text table."""
    config = results["config"]
    lat = results["latency_ms"]
    enqueue = results["enqueue_per_s"]
    rss = results["worker_rss_mb"]
    throughput = results["throughput"]
    clients = config["workers"] * config["concurrency"]
    server = "embedded pouchdb-server" if results["embedded"] else results["server"]
    rows = [
        ("server", f"{server}, {results['cores']} cores"),
        (
            "ceiling",
            f"{results['ceiling_per_s']:,.0f} writes/s (trivial handler, {clients} clients)",
        ),
        (
            "throughput",
            f"{results['throughput_per_s']:,.0f} jobs/s ({config['workers']} workers x "
            f"{config['concurrency']}), ratio {results['ratio']:.2f}, "
            f"{throughput['claims_per_job']:.2f} claims/job"
            + (" (queue ran dry: raise --jobs)" if throughput["ran_dry"] else ""),
        ),
        (
            "enqueue-to-start",
            f"p50 {lat['p50']:.1f} ms, p95 {lat['p95']:.1f} ms, p99 {lat['p99']:.1f} ms",
        ),
        (
            "enqueue",
            f"bulk {enqueue['bulk']:,.0f} jobs/s ({config['jobs']:,} in "
            f"{enqueue['bulk_seconds']:.2f} s), single {enqueue['single']:,.0f} jobs/s",
        ),
        ("pending index", f"{throughput['index_per_s']:,.0f} new jobs/s indexed"),
    ]
    for run_ in results["contention"]:
        rows.append(
            (
                f"claims/job, {run_['workers']} workers",
                f"{run_['claims_per_job']:.2f} ({run_['per_s']:,.0f} jobs/s)",
            )
        )
    rows += [
        ("worker memory", f"idle {rss['idle']:.1f} MB, peak {rss['peak']:.1f} MB"),
        ("idle worker CPU", f"{results['worker_idle_cpu_percent']:.2f} %"),
    ]
    if throughput["worker_cpu_ms_per_job"]:
        rows.append(("worker CPU", f"{throughput['worker_cpu_ms_per_job']:.1f} ms per no-op job"))
    if results["server_cpu_ms_per_write"] and throughput["server_cpu_ms_per_job"]:
        rows.append(
            (
                "server CPU",
                f"{results['server_cpu_ms_per_write']:.1f} ms per ceiling write, "
                f"{throughput['server_cpu_ms_per_job']:.1f} ms per job",
            )
        )
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)
