"""`queshot worker --reload` in a real process: a job in flight finishes on the
code it started with, jobs claimed after a save run the new code, and a broken
save leaves the old code serving."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from conftest import wait_until

from queshot import Queue
from queshot.couch import Database

HANDLER = """import time

VERSION = {version!r}


def handle(job):
    time.sleep(job.data.get("sleep", 0))
    return VERSION
"""


def write(module: Path, text: str) -> None:
    module.write_text(text)
    os.utime(module)  # a fresh mtime even within the same second


@pytest.mark.parametrize("slots", ["--concurrency", "--processes"])
def test_a_reloading_worker_picks_up_saved_code(
    db: Database, spawn_worker, tmp_path: Path, slots: str
) -> None:
    """With --processes, the children started after a reload import the new code."""
    package = tmp_path / "src"
    package.mkdir()
    module = package / "reloadable_jobs.py"
    write(module, HANDLER.format(version="v1"))
    log_path = tmp_path / "worker.log"
    queue = Queue("dev", db)
    with log_path.open("w") as log_file:
        worker = spawn_worker(
            db.name,
            "dev",
            "--reload",
            slots,
            "2",
            "--poll-interval",
            "0.5",
            handler="reloadable_jobs:handle",
            stderr=log_file,
            pythonpath=(package,),
        )

        def log_has(text: str) -> bool:
            return text in log_path.read_text()

        wait_until(lambda: log_has("reloading reloadable_jobs:handle when"))
        in_flight = queue.create_job({"sleep": 3})
        wait_until(lambda: queue.get_job(in_flight)["state"] == "active")
        write(module, HANDLER.format(version="v2"))
        wait_until(lambda: log_has("reloaded reloadable_jobs:handle"))
        after = queue.create_job({})
        wait_until(lambda: queue.get_job(after)["state"] == "complete")
        wait_until(lambda: queue.get_job(in_flight)["state"] == "complete")
        assert queue.get_job(in_flight)["result"] == "v1"
        assert queue.get_job(after)["result"] == "v2"

        write(module, HANDLER.format(version="v3").replace("def handle(job):", "def handle(job)"))
        wait_until(lambda: log_has("keeping the previous code"))
        assert f"{module.name}:6: SyntaxError" in log_path.read_text()
        broken_save = queue.create_job({})
        wait_until(lambda: queue.get_job(broken_save)["state"] == "complete")
        assert queue.get_job(broken_save)["result"] == "v2"

        write(module, HANDLER.format(version="v3"))
        wait_until(lambda: log_path.read_text().count("reloaded reloadable_jobs:handle") == 2)
        fixed = queue.create_job({})
        wait_until(lambda: queue.get_job(fixed)["state"] == "complete")
        assert queue.get_job(fixed)["result"] == "v3"
        assert worker.poll() is None, "the worker died on a broken save"
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0
