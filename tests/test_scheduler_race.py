"""Exactly once per slot, however many schedulers: three `queshot scheduler`
processes race over the slots of a one-second schedule (each handles at least
SLOTS of them), while `queshot worker` processes run the jobs. Every slot
between the first and the last has exactly one job, stored as one revision
(read from every copy on a cluster), and each job ran exactly once. On the
test server, and on a 3-node CouchDB cluster with each scheduler and worker
on a node of its own, so that creates of one slot race through different
nodes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import queue_database, wait_until
from recording import count_events

from queshot import schedule_admin
from queshot.couch import Couch, Database
from queshot.jobs import now_ms
from queshot.localcouch import LocalCluster
from queshot.scheduler import Scheduler
from queshot.schedules import schedule_id

pytestmark = pytest.mark.slow

SCHEDULERS = 3
SLOTS = 20  # each scheduler handles at least this many
PREFIX = "queshot-slot:tick:"
SUMMARY = re.compile(r"scheduler (\S+) stopped: slots=(\d+) (.*)")


def spawn_scheduler(url: str, db_name: str, name: str, log: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "queshot.cli", "scheduler", "--url", url, "--db", db_name]
    with log.open("w") as stderr:
        return subprocess.Popen(
            [*command, "--name", name], stdout=subprocess.DEVNULL, stderr=stderr, env=os.environ
        )


def slot_jobs(db: Database) -> list[dict[str, Any]]:
    rows = db.all_docs(startkey=PREFIX, endkey=PREFIX + "\ufff0", include_docs=True)["rows"]
    return [row["doc"] for row in rows]


def race(
    urls: list[str],
    db: Database,
    spawn_worker: Callable[..., subprocess.Popen],
    record_file: Path,
    tmp_path: Path,
) -> dict[str, Any]:
    """Three schedulers (scheduler i on urls[i % len]) and one worker per url
    over one `every: 1` schedule; returns what each scheduler said."""
    schedule_admin.add_schedule(
        db, {"_id": schedule_id("tick"), "queue": "ticks", "every": 1, "data": {}}
    )
    workers = [
        spawn_worker(db.name, "ticks", "--poll-interval", "1", url=url, stderr=subprocess.DEVNULL)
        for url in urls
    ]
    logs = [tmp_path / f"scheduler-{i}.log" for i in range(SCHEDULERS)]
    schedulers = [
        spawn_scheduler(urls[i % len(urls)], db.name, f"s{i}", log) for i, log in enumerate(logs)
    ]
    try:

        def all_up() -> bool:
            """every scheduler has read the schedules"""
            return all(" 1 schedules" in log.read_text() for log in logs)

        wait_until(all_up, timeout=60)
        up_at = now_ms()

        def enough_slots() -> bool:
            """SLOTS slots since every scheduler is up"""
            return sum(1 for job in slot_jobs(db) if job["slot"] > up_at) >= SLOTS

        wait_until(enough_slots, timeout=SLOTS * 3, every=0.5)
        for process in schedulers:
            process.send_signal(signal.SIGTERM)
        assert [process.wait(30) for process in schedulers] == [0] * SCHEDULERS
        jobs = slot_jobs(db)

        def all_ran() -> bool:
            """every slot's job complete"""
            return all(db.get(job["_id"])["state"] == "complete" for job in jobs)

        wait_until(all_ran, timeout=60, every=0.5)
    finally:
        for process in [*schedulers, *workers]:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in workers:
            process.wait(60)

    said = {}
    for log in logs:
        found = SUMMARY.search(log.read_text())
        assert found, log.read_text()[-2000:]
        counts = dict(pair.split("=") for pair in found.group(3).split())
        said[found.group(1)] = {
            "slots": int(found.group(2)),
            **{k: int(v) for k, v in counts.items()},
        }
    slots = sorted(job["slot"] for job in jobs)
    starts = count_events(record_file, "start")
    created = sum(s["created"] + s["accepted"] + s["contested"] for s in said.values())
    result = {
        "slots": len(slots),
        "per scheduler": said,
        "creates answered 201/202": created,
        "gaps": sum(1 for a, b in zip(slots, slots[1:], strict=False) if b - a != 1000),
        "double runs": sum(1 for job in jobs if starts[job["_id"]] > 1),
        "unrun": sum(1 for job in jobs if starts[job["_id"]] == 0),
        "runs of non-slot ids": sum(1 for job_id in starts if not job_id.startswith(PREFIX)),
    }
    print(f"\n{result}")
    assert all(s["slots"] >= SLOTS for s in said.values()), said
    assert result["gaps"] == result["double runs"] == result["unrun"] == 0, result
    assert result["runs of non-slot ids"] == 0
    assert Counter(job["_id"] for job in jobs).most_common(1)[0][1] == 1
    assert all(job["schedule"] == schedule_id("tick") for job in jobs)
    assert all(s["refused"] == 0 for s in said.values())
    return {**result, "jobs": jobs}


def test_three_schedulers_enqueue_each_slot_once(
    server_url: str,
    db: Database,
    spawn_worker: Callable[..., subprocess.Popen],
    record_file: Path,
    tmp_path: Path,
) -> None:
    result = race([server_url], db, spawn_worker, record_file, tmp_path)
    # one server, one copy: exactly one create per slot succeeded, the rest were told 409
    assert result["creates answered 201/202"] == result["slots"]
    # every rival was told so by the server (409) or found the job there already
    for said in result["per scheduler"].values():
        assert said["slots"] == said["created"] + said["existed"] + said["conflicts"]


@pytest.mark.cluster
def test_three_schedulers_on_three_nodes_enqueue_each_slot_once(
    couch_cluster: LocalCluster,
    spawn_worker: Callable[..., subprocess.Popen],
    record_file: Path,
    tmp_path: Path,
    db_name: str,
) -> None:
    with Couch(couch_cluster.url) as couch:
        db = queue_database(couch, db_name)
        assert db.replicas() == 3
        result = race(couch_cluster.urls, db, spawn_worker, record_file, tmp_path)
        branched = []
        for job in result["jobs"]:
            leaves = db.open_revs(job["_id"], r=3)
            firsts = {leaf["_revisions"]["ids"][-1] for leaf in leaves}
            if len([leaf for leaf in leaves if not leaf.get("_deleted")]) != 1 or len(firsts) != 1:
                branched.append(job["_id"])
        print(f"jobs with more than one branch or first revision: {len(branched)}")
        assert branched == []


@pytest.mark.cluster
def test_creates_of_one_slot_at_the_same_instant_through_three_nodes_leave_one_revision(
    couch_cluster: LocalCluster, db_name: str
) -> None:
    """Three schedulers, one per node, released together on each of 40 slots
    (a barrier, so the creates really overlap): however CouchDB answers each
    (201, 202, 409), every slot's job is one document with one revision on
    every copy."""
    with Couch(couch_cluster.url) as couch:
        db = queue_database(couch, db_name)
        schedule_admin.add_schedule(db, {"_id": schedule_id("tick"), "queue": "ticks", "every": 60})
        dbs = [Couch(url).database(db_name) for url in couch_cluster.urls]
        schedulers = []
        for node_db in dbs:
            scheduler = Scheduler(node_db)
            scheduler.load()
            schedulers.append(scheduler)
        outcomes: Counter[str] = Counter()
        base = (now_ms() // 60_000 + 1) * 60_000
        for n in range(40):
            barrier = threading.Barrier(len(schedulers))

            def one(
                scheduler: Scheduler, slot: int = base + n * 60_000, barrier: Any = barrier
            ) -> None:
                barrier.wait()
                for _, outcome in scheduler.run_once(slot):
                    outcomes[outcome] += 1

            threads = [threading.Thread(target=one, args=(s,)) for s in schedulers]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        jobs = slot_jobs(db)
        leaves = {job["_id"]: db.open_revs(job["_id"], r=3) for job in jobs}
        for node_db in dbs:
            node_db.couch.close()
    print(f"\n{dict(outcomes)}")
    assert len(jobs) == 40
    assert sum(outcomes.values()) == 40 * len(schedulers)
    assert outcomes["refused"] == outcomes["removed"] == 0
    assert all(len(found) == 1 and found[0]["_rev"].startswith("1-") for found in leaves.values())


def run_now_race(
    urls: list[str],
    db: Database,
    spawn_worker: Callable[..., subprocess.Popen],
    record_file: Path,
    tmp_path: Path,
) -> dict[str, dict[str, int]]:
    """Three schedulers (scheduler i on urls[i % len]) see one "run now" of a
    paused schedule; then a fourth starts (a restart: the request seen
    again). Returns what each said; asserts exactly one job ran."""
    schedule_admin.add_schedule(
        db, {"_id": schedule_id("tick"), "queue": "ticks", "every": 1, "data": {}, "enabled": False}
    )
    worker = spawn_worker(
        db.name, "ticks", "--poll-interval", "1", url=urls[0], stderr=subprocess.DEVNULL
    )
    logs = [tmp_path / f"run-now-{i}.log" for i in range(SCHEDULERS + 1)]
    schedulers = [
        spawn_scheduler(urls[i % len(urls)], db.name, f"s{i}", logs[i]) for i in range(SCHEDULERS)
    ]
    try:
        wait_until(lambda: all(" 1 schedules" in log.read_text() for log in logs[:-1]), timeout=60)
        job_id = schedule_admin.request_run(db, "tick", by="race")

        def ran() -> bool:
            """the run-now job is complete"""
            job = db.get_or_none(job_id)
            return job is not None and job["state"] == "complete"

        wait_until(ran, timeout=60, every=0.5)
        late = spawn_scheduler(urls[-1], db.name, "late", logs[-1])
        wait_until(lambda: " 1 schedules" in logs[-1].read_text(), timeout=60)
        schedulers.append(late)
        for process in schedulers:
            process.send_signal(signal.SIGTERM)
        assert [process.wait(30) for process in schedulers] == [0] * (SCHEDULERS + 1)
    finally:
        for process in [*schedulers, worker]:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        worker.wait(60)
    said = {}
    for log in logs:
        found = SUMMARY.search(log.read_text())
        assert found, log.read_text()[-2000:]
        said[found.group(1)] = {
            k: int(v) for k, v in (p.split("=") for p in found.group(3).split())
        }
    print(f"\n{said}")
    assert [job["_id"] for job in slot_jobs(db)] == [job_id]
    assert count_events(record_file, "start") == {job_id: 1}
    assert said["late"]["existed"] == 1 and sum(said["late"].values()) == 1
    return said


def test_three_schedulers_make_one_job_of_one_run_now_request(
    server_url: str,
    db: Database,
    spawn_worker: Callable[..., subprocess.Popen],
    record_file: Path,
    tmp_path: Path,
) -> None:
    said = run_now_race([server_url], db, spawn_worker, record_file, tmp_path)
    assert sum(s["created"] + s["accepted"] + s["contested"] for s in said.values()) == 1


@pytest.mark.cluster
def test_three_schedulers_on_three_nodes_make_one_job_of_one_run_now_request(
    couch_cluster: LocalCluster,
    spawn_worker: Callable[..., subprocess.Popen],
    record_file: Path,
    tmp_path: Path,
    db_name: str,
) -> None:
    with Couch(couch_cluster.url) as couch:
        db = queue_database(couch, db_name)
        run_now_race(couch_cluster.urls, db, spawn_worker, record_file, tmp_path)
        [job] = slot_jobs(db)
        leaves = db.open_revs(job["_id"], r=3)
        assert len(leaves) == 1 and not leaves[0].get("_deleted")  # one branch on every copy
