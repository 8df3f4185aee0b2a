"""`make demo` / `queshot demo`: the main job end to end on a real server.

Provisions a fresh `queshot_demo` database, enqueues jobs on two queues (some
fail on purpose, some log, some report progress), runs real worker processes
(`queshot worker`) on them and reports progress until every job is done. The
handlers below are what those workers run. Output is the CLI's business:
`run` calls back with progress and returns the summary rows.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import designdocs, sync
from .couch import Couch
from .queue import Queue

log = logging.getLogger(__name__)

DATABASE = "queshot_demo"
QUEUES: dict[str, str | list[str]] = {"email": "email", "reports/daily": ["reports", "daily"]}
EMAILS = 60
REPORTS = 24


def send_email(job: Any) -> dict[str, Any]:
    """Demo handler: 'sends' an email; bad addresses fail on purpose."""
    address = job.data["to"]
    job.log(f"sending welcome mail to {address}")
    time.sleep(0.05)
    if "@" not in address:
        raise ValueError(f"not an email address: {address!r}")
    return {"delivered_to": address}


def build_report(job: Any) -> dict[str, Any]:
    """Demo handler: builds a 'report' in steps, reporting progress."""
    steps = job.data["steps"]
    for step in range(1, steps + 1):
        time.sleep(0.05)
        job.progress(100 * step // steps)
    job.log(f"report for {job.data['day']} ready")
    return {"pages": steps * 3}


HANDLERS = {"email": "queshot.demo:send_email", "reports/daily": "queshot.demo:build_report"}


@dataclass
class QueueProgress:
    name: str
    total: int
    counts: dict[str, int]
    elapsed: float

    @property
    def done(self) -> int:
        return self.counts["complete"] + self.counts["failed"]

    @property
    def rate(self) -> float:
        return self.done / self.elapsed if self.elapsed > 0 else 0.0


def enqueue(queues: dict[str, Queue]) -> dict[str, int]:
    emails = [
        {"to": f"user{n}@example.org" if n % 9 else f"user{n} at example.org"}
        for n in range(EMAILS)
    ]
    reports = [{"day": f"2026-11-{n % 28 + 1:02d}", "steps": 4 + n % 4} for n in range(REPORTS)]
    queues["email"].create_jobs(emails)
    queues["reports/daily"].create_jobs(reports, priority=1)
    return {"email": EMAILS, "reports/daily": REPORTS}


def run(
    url: str,
    on_progress: Callable[[list[QueueProgress]], None],
    *,
    concurrency: int = 4,
    timeout: float = 180.0,
) -> list[QueueProgress]:
    """Run the demo against the CouchDB at `url`; returns the final progress rows."""
    with Couch(url) as couch:
        db = couch.database(DATABASE)
        if db.exists():
            db.drop()
        sync.push(couch, [DATABASE], designdocs.load())
        queues = {name: Queue(path, db) for name, path in QUEUES.items()}
        totals = enqueue(queues)
        started = time.monotonic()
        workers = [_spawn_worker(url, name, concurrency) for name in QUEUES]
        try:
            while True:
                rows = [
                    QueueProgress(name, totals[name], q.stats(), time.monotonic() - started)
                    for name, q in queues.items()
                ]
                on_progress(rows)
                if all(row.done >= row.total for row in rows):
                    return rows
                if time.monotonic() - started > timeout:
                    raise RuntimeError(f"demo did not finish within {timeout:.0f} s")
                for worker in workers:
                    if worker.poll() is not None:
                        raise RuntimeError(f"a demo worker exited early: {worker.args}")
                time.sleep(0.25)
        finally:
            for worker in workers:
                worker.terminate()
            for worker in workers:
                worker.wait(30)


def _spawn_worker(url: str, queue: str, concurrency: int) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "queshot.cli",
        "worker",
        HANDLERS[queue],
        "--queue",
        queue,
        "--concurrency",
        str(concurrency),
        "--db",
        DATABASE,
        "--poll-interval",
        "1",
    ]
    env = dict(os.environ, COUCHDB_URL=url)  # not in argv: ps would show credentials
    return subprocess.Popen(
        command,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
