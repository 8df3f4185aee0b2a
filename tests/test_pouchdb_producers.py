"""Offline producers in PouchDB (Node, the packages pouchdb-server brings)
against Apache CouchDB 3.5: jobs made with no connection, pushed as the
producer's account, run once by a queshot worker, and pulled back - each
producer its own, with their results - while one producer edits a running
job's copy and the two producers' clocks are a day off either way."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import REAL_COUCHDB, running

from queshot.couch import Database
from queshot.queue import Queue

SCRIPT = Path(__file__).with_name("pouchdb_producer.js")
DAY_MS = 86_400_000
JOBS_EACH = 500

pytestmark = [
    pytest.mark.skipif(
        not REAL_COUCHDB,
        reason="the producer accounts' rules need a server with users (pouchdb-server is an "
        "admin party): set COUCHDB_BIN (or COUCHDB_URL) to run it on Apache CouchDB",
    ),
    pytest.mark.skipif(shutil.which("node") is None, reason="needs Node (make setup)"),
]


@pytest.fixture
def accounts(new_user: Callable[..., tuple[str, str]]) -> Callable[[], tuple[str, str]]:
    """`make()`: a new account with the role queshot_producer: (name, password)."""
    return lambda: new_user("queshot_producer", prefix="producer")


class Runs:
    """The jobs run, in the order they started."""

    def __init__(self) -> None:
        self.order: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, job: Any) -> dict[str, Any]:
        with self._lock:
            self.order.append(job.id)
        return {"ran": job.id}


def producer(db: Database, account: tuple[str, str], **options: Any) -> subprocess.Popen:
    name, password = account
    opts = {
        "name": name,
        "password": password,
        "queueUrl": db.url,
        "queue": "offline",
        "count": JOBS_EACH,
        "clockOffsetMs": 0,
        "editRunning": False,
        **options,
    }
    return subprocess.Popen(
        ["node", str(SCRIPT), json.dumps(opts)],
        cwd=SCRIPT.parent.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def report(process: subprocess.Popen) -> dict[str, Any]:
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def test_pouchdb_producers_offline_each_get_back_only_their_own_run_once(
    db: Database, accounts: Callable[[], tuple[str, str]]
) -> None:
    early, late = accounts(), accounts()
    runs = Runs()
    worker = Queue("offline", db).create_worker(runs, concurrency=8, poll_interval=0.2)
    with running(worker):
        ahead = producer(db, early, clockOffsetMs=-DAY_MS, editRunning=True)
        behind = producer(db, late, clockOffsetMs=DAY_MS)
        try:
            seen = {early[0]: report(ahead), late[0]: report(behind)}
        finally:
            for process in (ahead, behind):
                process.kill()
                process.wait()
    # every job once, and nothing else
    assert len(runs.order) == len(set(runs.order)) == 2 * JOBS_EACH
    for name, got in seen.items():
        own = sorted(f"{name}-{i:05d}" for i in range(JOBS_EACH))
        assert got["pushed"] == JOBS_EACH and got["pushFailures"] == 0
        assert sorted(got["ids"]) == own  # its own jobs, and no other producer's
        assert got["resultsOk"]
        assert set(own) <= set(runs.order)
    # the edit of a running job's copy was refused, and left no branch
    edited = seen[early[0]]["edited"]
    assert edited is not None and seen[early[0]]["editFailures"] == 1
    stored = db.get(edited, conflicts="true")
    assert "_conflicts" not in stored and stored["state"] == "complete"
    assert stored["data"] == {"n": int(edited.rsplit("-", 1)[1])}
    # neither clock starved the other: each producer's first job ran in the first tenth
    first = {
        name: min(runs.order.index(i) for i in runs.order if i.startswith(name)) for name in seen
    }
    print("first run of each producer:", first, "of", len(runs.order))
    assert all(place < len(runs.order) // 10 for place in first.values())
