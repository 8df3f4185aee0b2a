"""Job handlers for worker subprocesses in tests. Each execution appends one
line to the file named by $QUESHOT_TEST_RECORD (fsynced), so that counts of
who ran what survive SIGKILL and can be checked from the test."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any


def record(job_id: str, event: str) -> None:
    line = json.dumps({"id": job_id, "pid": os.getpid(), "event": event}) + "\n"
    fd = os.open(os.environ["QUESHOT_TEST_RECORD"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def read_records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def handle(job: Any) -> dict[str, Any]:
    """Runs `data.sleep` seconds, fails when `data.fail`, records start and end."""
    record(job.id, "start")
    time.sleep(job.data.get("sleep", 0))
    if job.data.get("fail"):
        raise RuntimeError(f"job {job.id} fails on purpose")
    record(job.id, "end")
    return {"pid": os.getpid()}
