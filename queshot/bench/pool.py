"""The benchmark's workers: real processes (multiprocessing, spawn) running
real `Worker`s on a no-op handler, asked for their counters over a pipe (so
counting puts no load on the server); idle `queshot worker` processes started
as a user starts them (`IdleWorkers`); their memory and CPU read from /proc."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import IO, Any

from .. import protocol
from ..couch import Couch, Database
from ..queue import Queue
from ..worker import Job

READY_TIMEOUT = 60.0
# `queshot worker`, whether or not the console script is on PATH.
WORKER_COMMAND = (
    sys.executable,
    "-c",
    "import sys; from queshot.cli import main; sys.exit(main())",
    "worker",
)
NOOP = f"{__name__}:noop"
# Generous: 32 Python processes importing queshot on a busy 2-core machine.
IDLE_READY_TIMEOUT = 300.0
IDLE_STOP_SECONDS = 30.0
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


class IdleWorkers:
    """`queshot worker` processes on `noop`, each started as a user starts
    one (the CLI, a process of its own, its children under it), with its
    `options` (queues, --processes...): listeners whose cost the bench
    measures. Entered, they are up and listening: each has written its
    status document, and each has heard a pause of the queue `parent` (above
    all of their queues) and its resume through its changes feed (its status
    document said paused, then not). On exit, error or not, each is stopped
    by its pid: SIGTERM, then SIGKILL if it has not ended after
    IDLE_STOP_SECONDS."""

    def __init__(
        self, urls: list[str], db: Database, parent: str, options: list[list[str]]
    ) -> None:
        self.urls = urls
        self.db = db
        self.parent = parent
        self.options = options
        self.processes: list[subprocess.Popen[bytes]] = []
        self._logs: list[IO[bytes]] = []

    def __enter__(self) -> IdleWorkers:
        try:
            for number, options in enumerate(self.options):
                log_file = tempfile.TemporaryFile()
                self._logs.append(log_file)
                env = os.environ | {"COUCHDB_URL": self.urls[number % len(self.urls)]}
                command = [*WORKER_COMMAND, NOOP, "--db", self.db.name, *options]
                self.processes.append(
                    subprocess.Popen(
                        command, env=env, stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file
                    )
                )
            self._await(lambda doc: True, "write its status document")
            for paused in (True, False):
                protocol.pause(self.db, [self.parent], paused)
                self._await(
                    lambda doc, paused=paused: doc.get("paused") is paused,
                    "hear a " + ("pause" if paused else "resume") + " through its feed",
                )
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _await(self, fact: Callable[[dict[str, Any]], bool], what: str) -> None:
        """Wait until the status document of every process shows `fact`."""
        deadline = time.monotonic() + IDLE_READY_TIMEOUT
        while True:
            docs = {doc.get("pid"): doc for _, doc in protocol.status_docs(self.db)}
            waiting = [p for p in self.processes if p.pid not in docs or not fact(docs[p.pid])]
            if not waiting:
                return
            for process in waiting:
                if process.poll() is not None:
                    raise RuntimeError(
                        f"an idle worker (pid {process.pid}) exited with code "
                        f"{process.returncode} before it could {what}: {self._last_line(process)}"
                    )
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{len(waiting)} idle workers did not {what} within {IDLE_READY_TIMEOUT:.0f} s"
                )
            time.sleep(0.2)

    def _last_line(self, process: subprocess.Popen[bytes]) -> str:
        log_file = self._logs[self.processes.index(process)]
        log_file.seek(0)
        lines = log_file.read().decode(errors="replace").strip().splitlines()
        return lines[-1] if lines else "(nothing logged)"

    def rss_mb(self) -> float:
        """Resident memory of the idle workers and every process under them."""
        return sum(tree_rss_mb(process.pid) for process in self.processes if process.poll() is None)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(IDLE_STOP_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for log_file in self._logs:
            log_file.close()


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


def process_tree(pid: int) -> list[int]:
    """`pid` and every live process under it."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                children.setdefault(int(_stat(int(entry))[1]), []).append(int(entry))
            except OSError:  # ended meanwhile
                continue
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo += children.get(current, [])
    return tree


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and every process under it, in MB."""
    total = 0.0
    for member in process_tree(pid):
        try:
            total += proc_status(member, "VmRSS")
        except OSError:  # ended meanwhile
            continue
    return total


def server_cpu_seconds(pid: int) -> float:
    """CPU time of a server and every process under it, the ones it has
    reaped included: CouchDB runs design-doc JavaScript (validators,
    handlers, maps) in child processes, which are a large share of its work."""
    ticks = 0
    for member in process_tree(pid):
        try:
            fields = _stat(member)
        except OSError:  # ended meanwhile
            continue
        ticks += sum(int(fields[i]) for i in (11, 12, 13, 14))  # own and reaped children's
    return ticks / os.sysconf("SC_CLK_TCK")
