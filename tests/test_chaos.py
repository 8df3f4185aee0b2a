"""Chaos: ~2,000 jobs for worker processes that are SIGKILLed every few
seconds and replaced, with one restart of the server mid-run (embedded server
only). At the end nothing may be lost, nothing stuck, nothing failed but the
jobs that fail on purpose, and no job run more often than it was claimed.

On pouchdb-server every killed worker leaves its continuous `_changes` feed
behind, still served (ten dead feeds halve its write rate, measured), so the
run slows as kills add up until the restart clears them: KILL_EVERY trades
chaos for run time. Apache CouchDB ends a feed whose client is gone."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import COUCHDB_URL, queue_database
from recording import count_events

from queshot import Queue
from queshot.couch import Couch, CouchError, Database
from queshot.history import HISTORY_DOC_PREFIX
from queshot.jobs import WORKER_DOC_PREFIX

JOBS = 2000
DOOMED = 0.03  # fail on every attempt, max_attempts 1: must end failed
FLAKY = 0.07  # fail on their first attempt, then succeed: must end complete
WORKERS = 3
CONCURRENCY = 4
LEASE = 4.0
KILL_EVERY = 8.0
DEADLINE = 420.0  # a hang detector: the run takes about 2.5 minutes on 2 cores
QUEUE = "chaos"


@pytest.fixture
def chaos_server(request: pytest.FixtureRequest, db_name: str) -> Iterator[tuple[str, Any]]:
    """(url, server): the test's own on-disk server (pouchdb-server, or a
    CouchDB node with COUCHDB_BIN), which it may restart; with COUCHDB_URL
    that server, and None (no restart)."""
    if COUCHDB_URL:
        request.getfixturevalue("db")
        yield request.getfixturevalue("server_url"), None
        return
    server = request.getfixturevalue("disk_server")
    with Couch(server.url) as couch:
        queue_database(couch, db_name)
    yield server.url, server


def enqueue(queue: Queue, rng: random.Random) -> tuple[list[str], set[str], set[str]]:
    """All job ids, the doomed ones and the flaky ones."""
    kinds = [rng.random() for _ in range(JOBS)]
    doomed = queue.create_jobs([{"fail": True} for k in kinds if k < DOOMED], max_attempts=1)
    flaky = queue.create_jobs([{"fail_attempts": 1} for k in kinds if DOOMED <= k < DOOMED + FLAKY])
    plain = queue.create_jobs(
        [{"sleep": rng.uniform(0, 0.3)} for k in kinds if k >= DOOMED + FLAKY]
    )
    return doomed + flaky + plain, set(doomed), set(flaky)


def unsettled(db: Database) -> int | None:
    """Rows still waiting or running (cheap: two view totals), None while the
    server does not answer."""
    try:
        pending = db.view("queshot", "pending", limit=0)["total_rows"]
        return pending + db.view("queshot", "leases", limit=0)["total_rows"]
    except CouchError:
        return None


def reporting(db: Database, pids: set[int]) -> bool:
    """Whether every one of these worker processes has written its status document."""
    rows = db.all_docs(
        startkey=WORKER_DOC_PREFIX, endkey=WORKER_DOC_PREFIX + "\ufff0", include_docs=True
    )["rows"]
    return pids <= {row["doc"].get("pid") for row in rows}


def children_of(pid: int) -> list[int]:
    """The child processes of `pid` (Linux: /proc)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split()]


@pytest.mark.slow
@pytest.mark.parametrize("slots", ["--concurrency", "--processes"])
def test_chaos_nothing_lost_nothing_stuck(
    slots: str,
    chaos_server: tuple[str, Any],
    db_name: str,
    spawn_worker: Callable[..., subprocess.Popen],
    record_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    url, server = chaos_server
    rng = random.Random(4)
    with Couch(url) as couch:
        db = couch.database(db_name)
        queue = Queue(QUEUE, db, max_attempts=6, backoff_seconds=0.2)
        ids, doomed, flaky = enqueue(queue, rng)

        logs: dict[int, Path] = {}

        def spawn() -> subprocess.Popen:
            path = tmp_path / f"worker-{len(logs)}.log"
            with path.open("w") as log:
                process = spawn_worker(
                    db_name, QUEUE, slots, str(CONCURRENCY),
                    "--lease-seconds", str(LEASE), "--poll-interval", "1", "--limit", "50",
                    url=url, stderr=log,
                )  # fmt: skip
            logs[process.pid] = path
            return process

        workers = [spawn() for _ in range(WORKERS)]
        began = time.monotonic()
        next_kill, kills, child_kills, restart = began + KILL_EVERY, 0, 0, None
        while (left := unsettled(db)) != 0:
            elapsed = time.monotonic() - began
            assert elapsed < DEADLINE, f"{left} jobs still unsettled after {DEADLINE} s"
            for worker in workers:
                assert worker.poll() is None, f"a worker exited: {logs[worker.pid].read_text()}"
            if (
                server is not None
                and restart is None
                and left is not None
                and left < JOBS / 2
                and reporting(db, {w.pid for w in workers})  # none caught starting up
            ):
                restart = time.monotonic()
                server.restart()
                restart = time.monotonic() - restart
            if time.monotonic() >= next_kill:
                victim = rng.choice(workers)
                children = children_of(victim.pid) if slots == "--processes" else []
                if children and kills % 2:  # every other kill, one child process
                    os.kill(rng.choice(children), signal.SIGKILL)
                    child_kills += 1
                else:
                    victim.kill()
                    victim.wait()
                    workers[workers.index(victim)] = spawn()
                kills += 1
                next_kill = time.monotonic() + KILL_EVERY
            time.sleep(1)
        elapsed = time.monotonic() - began
        for worker in workers:
            worker.terminate()
        assert [worker.wait(60) for worker in workers] == [0] * WORKERS
        rows = db.all_docs(include_docs=True)["rows"]

    docs = {
        r["id"]: r["doc"]
        for r in rows
        if not r["id"].startswith(("_design/", WORKER_DOC_PREFIX, HISTORY_DOC_PREFIX))
    }
    states = Counter(doc["state"] for doc in docs.values())
    failed = {job_id for job_id, doc in docs.items() if doc["state"] == "failed"}
    starts = count_events(record_file, "start")
    rerun = {job_id for job_id, n in starts.items() if n > 1 and job_id not in flaky}
    with capsys.disabled():
        restarted = (
            f"server restarted once ({restart:.1f} s)"
            if server
            else "server restart skipped: COUCHDB_URL is set (we do not restart your CouchDB)"
        )
        print(
            f"\nchaos ({slots}): {len(ids)} jobs in {elapsed:.0f} s, {kills} SIGKILLs "
            f"({child_kills} of child processes), {restarted}; "
            f"{states['complete']} complete, {states['failed']} failed (all on purpose), "
            f"{len(flaky)} retried by design, {len(rerun)} run again after a kill, "
            f"{len(set(ids) - set(docs))} lost, {states['active'] + states['inactive']} stuck"
        )
    assert set(docs) == set(ids), "jobs lost"
    assert states["active"] == states["inactive"] == 0, "jobs stuck"
    assert failed == doomed, "failed jobs other than those failing on purpose"
    # Re-runs come only from runs a kill (or the restart) cut short: a killed
    # worker held at most CONCURRENCY jobs (a killed child one), and the restart may have cost every
    # worker the outcome of the jobs it held.
    interrupted = CONCURRENCY * (kills + (WORKERS if server else 0))
    extra_runs = sum(starts[job_id] - 1 for job_id in rerun)
    assert extra_runs <= interrupted, f"{extra_runs} re-runs, but kills cut short {interrupted}"
    for job_id, doc in docs.items():
        claims = doc["attempts"] + doc.get("stalls", 0)  # a stall gives its attempt back
        assert starts[job_id] <= claims, f"{job_id} ran more often than it was claimed"
        if doc["state"] == "complete":
            assert doc["result"]["attempt"] == doc["attempts"], f"{job_id}: result of a stale run"
