"""Limits under races: `queshot worker` processes (on different nodes of a
3-node cluster where COUCHDB_BIN gives one) share one limit, checked from
what the handlers themselves record (tests/recording.py: start and end
times), never from the database. Every job still runs exactly once, and a
SIGKILLed worker's tokens come back within one lease."""

from __future__ import annotations

import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import REAL_COUCHDB, queue_database, wait_until
from recording import read_records

from queshot import Queue
from queshot.couch import Couch, CouchError, Database
from queshot.limits import Limit, Rate, set_limit, tokens

pytestmark = pytest.mark.slow

PROCESSES = 4
CONCURRENCY = 4


@pytest.fixture(params=["single", pytest.param("cluster", marks=pytest.mark.cluster)])
def servers(request: pytest.FixtureRequest, server_url: str, db_name: str) -> Iterator[Any]:
    """(database, the URLs workers connect to, one per worker)."""
    if request.param == "cluster":
        cluster = request.getfixturevalue("couch_cluster")
        urls = cluster.urls
    else:
        urls = [server_url]
    with Couch(urls[0]) as couch:
        db = queue_database(couch, db_name)
        yield db, [urls[i % len(urls)] for i in range(PROCESSES)]
        if len(urls) > 1:
            db.drop()


def drain(
    db: Database,
    urls: list[str],
    spawn_worker: Callable[..., subprocess.Popen],
    record_file: Path,
    jobs: list[dict[str, Any]],
    limit: Limit,
) -> dict[str, dict[str, Any]]:
    """Run `jobs` under `limit` with PROCESSES workers; each job's start and
    end as its handler recorded them."""
    set_limit(db, limit)
    queue = Queue("api", db)
    ids = [queue.create_job(data, limit_key=data.get("key")) for data in jobs]
    workers = [
        spawn_worker(db.name, "api", "--concurrency", str(CONCURRENCY), "--poll-interval", "1",
                     url=url)
        for url in urls
    ]  # fmt: skip

    def all_complete() -> bool:
        """every job complete"""
        try:
            return queue.stats()["complete"] == len(ids)
        except CouchError:
            return False

    wait_until(all_complete, timeout=300, every=0.5)
    for worker in workers:
        worker.send_signal(signal.SIGTERM)
    assert [worker.wait(60) for worker in workers] == [0] * len(workers)
    records = read_records(record_file)
    starts = Counter(r["id"] for r in records if r["event"] == "start")
    assert set(starts) == set(ids)
    assert [job for job, count in starts.items() if count != 1] == []  # exactly once
    runs = {r["id"]: {"start": r["at"]} for r in records if r["event"] == "start"}
    for r in records:
        if r["event"] == "end":
            runs[r["id"]]["end"] = r["at"]
    by_id = dict(zip(ids, jobs, strict=True))
    return {job_id: run | {"key": by_id[job_id].get("key")} for job_id, run in runs.items()}


def most_at_once(runs: list[dict[str, Any]]) -> int:
    events = sorted(
        (at, step) for run in runs for at, step in ((run["start"], 1), (run["end"], -1))
    )
    most = now = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


def test_a_global_limit_of_three_never_has_four_running(
    servers: Any, spawn_worker: Callable[..., subprocess.Popen], record_file: Path
) -> None:
    db, urls = servers
    jobs = [{"n": n, "sleep": 0.1} for n in range(60)]
    runs = drain(db, urls, spawn_worker, record_file, jobs, Limit(["api"], concurrency=3))
    most = most_at_once(list(runs.values()))
    print(f"\n60 jobs, {PROCESSES} workers x {CONCURRENCY}, limit 3: at most {most} at once")
    assert most <= 3
    assert most == 3  # the limit, not the workers, was what held them
    assert all(token["state"] == "free" for token in tokens(db))


def test_a_limit_of_one_per_key_never_overlaps_within_a_key(
    servers: Any, spawn_worker: Callable[..., subprocess.Popen], record_file: Path
) -> None:
    db, urls = servers
    jobs = [{"n": n, "key": f"customer-{n % 20}", "sleep": 0.05} for n in range(100)]
    runs = drain(db, urls, spawn_worker, record_file, jobs, Limit(["api"], key_concurrency=1))
    per_key = {
        key: most_at_once([run for run in runs.values() if run["key"] == key])
        for key in {job["key"] for job in jobs}
    }
    assert set(per_key.values()) == {1}
    assert most_at_once(list(runs.values())) > 1  # keys do not hold one another back


@pytest.mark.parametrize(
    ("count", "seconds", "how_many"),
    [
        (3, 1.0, 15),  # the 30 per 10 s scaled down, on every server
        pytest.param(30, 10.0, 70, marks=pytest.mark.skipif(
            not REAL_COUCHDB, reason="the issue's own 30 per 10 s takes 20 s: on CouchDB only")),
    ],
)  # fmt: skip
def test_a_rate_limit_never_starts_one_more_in_any_window(
    servers: Any,
    spawn_worker: Callable[..., subprocess.Popen],
    record_file: Path,
    count: int,
    seconds: float,
    how_many: int,
) -> None:
    """No window of `seconds` holds `count` + 1 starts, and some hold `count`."""
    db, urls = servers
    jobs = [{"n": n} for n in range(how_many)]
    limit = Limit(["api"], rate=Rate(count, seconds))
    runs = drain(db, urls, spawn_worker, record_file, jobs, limit)
    starts = sorted(run["start"] for run in runs.values())
    busiest = max(sum(1 for t in starts if first <= t < first + seconds) for first in starts)
    print(f"\n{how_many} jobs at {count} per {seconds} s: at most {busiest} starts in a window")
    assert busiest == count


def test_a_fixed_window_rate_never_starts_one_more_in_an_aligned_window(
    servers: Any, spawn_worker: Callable[..., subprocess.Popen], record_file: Path
) -> None:
    """3 per fixed 1 s: no window [k, k + 1) s of epoch time holds 4 starts,
    and short jobs fill one; a token given back waits for the next window's
    start, not a window after its run (the sliding rule)."""
    db, urls = servers
    jobs = [{"n": n} for n in range(12)]
    rate = Rate(3, 1.0, "fixed")
    runs = drain(db, urls, spawn_worker, record_file, jobs, Limit(["api"], rate=rate))
    window_ms = int(rate.seconds * 1000)
    per_window = Counter(int(run["start"] * 1000) // window_ms for run in runs.values())
    starts = sorted(run["start"] for run in runs.values())
    across = max(sum(1 for t in starts if first <= t < first + rate.seconds) for first in starts)
    print(f"\n12 jobs at 3 per fixed 1 s: {sorted(per_window.values())} starts in aligned seconds,"
          f" at most {across} in any second")  # fmt: skip
    assert max(per_window.values()) == 3
    assert any(token["free_at"] % window_ms == 0 for token in tokens(db))


def test_a_killed_workers_token_comes_back_within_one_lease(
    servers: Any, spawn_worker: Callable[..., subprocess.Popen], record_file: Path
) -> None:
    db, urls = servers
    lease = 3
    set_limit(db, Limit(["api"], concurrency=1))
    queue = Queue("api", db)
    stuck = queue.create_job({"sleep": 600}, max_stalls=0)
    args = ("--concurrency", "2", "--poll-interval", "1", "--lease-seconds", str(lease))
    holder = spawn_worker(db.name, "api", *args, url=urls[0])

    def started(job_id: str) -> float | None:
        """the job's handler started"""
        at = [r["at"] for r in read_records(record_file) if r["id"] == job_id]
        return at[0] if at else None

    wait_until(lambda: started(stuck), timeout=60)
    quick = queue.create_jobs([{"n": n} for n in range(3)])
    holder.send_signal(signal.SIGKILL)
    killed_at = time.time()
    holder.wait()
    [token] = tokens(db)
    assert token["state"] == "active" and token["job"] == stuck
    assert token["lease_expires_at"] <= (killed_at + lease + 1) * 1000  # at most one lease on
    spawn_worker(db.name, "api", *args, url=urls[-1])
    for job_id in quick:
        wait_until(lambda job_id=job_id: started(job_id), timeout=60)
        # not before the dead holder's lease ran out: it was the token's until then
        assert started(job_id) * 1000 >= token["lease_expires_at"]
