"""Job handlers that count their runs, for tests. In worker subprocesses
(`handle`), each execution appends one line to the file named by
$QUESHOT_TEST_RECORD (fsynced), so that counts of who ran what survive
SIGKILL and can be checked from the test; in the test's own workers, `Runs`."""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any


def record(job_id: str, event: str, **extra: Any) -> None:
    line = {"id": job_id, "pid": os.getpid(), "event": event, "at": time.time(), **extra}
    fd = os.open(os.environ["QUESHOT_TEST_RECORD"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, (json.dumps(line) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def read_records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def count_events(path: Path, event: str) -> Counter[str]:
    """How many times each job id recorded `event` (e.g. executions: "start")."""
    return Counter(r["id"] for r in read_records(path) if r["event"] == event)


def handle(job: Any) -> dict[str, Any]:
    """Runs `data.sleep` seconds; fails always when `data.fail`, or on its first
    `data.fail_attempts` attempts; records start (with the attempt) and end."""
    record(job.id, "start", attempt=job.attempts)
    time.sleep(job.data.get("sleep", 0))
    if job.data.get("fail") or job.attempts <= job.data.get("fail_attempts", 0):
        raise RuntimeError(f"job {job.id} fails on purpose (attempt {job.attempts})")
    record(job.id, "end", attempt=job.attempts)
    return {"pid": os.getpid(), "attempt": job.attempts}


class Runs:
    """An in-process handler: each job's runs, counted."""

    def __init__(self) -> None:
        self.count: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __call__(self, job: Any) -> dict[str, Any]:
        with self._lock:
            self.count[job.id] += 1
        return {"ran": job.id}
