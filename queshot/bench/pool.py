"""The benchmark's workers: real processes (multiprocessing, spawn) running
real `Worker`s on a no-op handler, asked for their counters over a pipe (so
counting puts no load on the server); their memory and CPU read from /proc."""

from __future__ import annotations

import multiprocessing
import os
import time
from multiprocessing.connection import Connection

from ..couch import Couch
from ..queue import Queue
from ..worker import Job

READY_TIMEOUT = 60.0
WAKE_SETTLE = 0.5  # seconds for fresh workers' change feeds to connect
COUNTERS = ("claim_attempts", "claims_won", "claim_conflicts", "completed", "failed", "abandoned")


def noop(job: Job) -> dict[str, float]:
    """The benchmark's job: does nothing, but records when it started (epoch
    ms by this machine's clock, as `created_at` is) for the latency figure."""
    return {"started_ms": time.time() * 1000}


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
    """`count` worker processes on one queue, driven over pipes, each talking
    to one of `urls` in turn (on a cluster, to every node)."""

    def __init__(
        self, urls: list[str], db_name: str, queue_name: str, count: int, concurrency: int
    ) -> None:
        context = multiprocessing.get_context("spawn")
        self._pipes: list[Connection] = []
        self.processes: list[multiprocessing.process.BaseProcess] = []
        for number in range(count):
            parent, child = context.Pipe()
            url = urls[number % len(urls)]
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


def proc_status(pid: int, field: str) -> float:
    """A memory figure of a live process from /proc/<pid>/status, in MB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/{pid}/status has no {field}")


def _stat(pid: int) -> list[str]:
    """The fields of /proc/<pid>/stat after the command name (state first)."""
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rpartition(")")[2].split()


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process, all threads, from /proc/<pid>/stat."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_cpu_seconds(pid: int) -> float:
    """CPU time of a server and every process under it, the ones it has
    reaped included: CouchDB runs design-doc JavaScript (validators,
    handlers, maps) in child processes, which are a large share of its work."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                children.setdefault(int(_stat(int(entry))[1]), []).append(int(entry))
            except OSError:  # ended meanwhile
                continue
    ticks, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            fields = _stat(current)
        except OSError:
            continue
        ticks += sum(int(fields[i]) for i in (11, 12, 13, 14))  # own and reaped children's
        todo += children.get(current, [])
    return ticks / os.sysconf("SC_CLK_TCK")
