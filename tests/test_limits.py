"""Limits that hold across every worker (queshot/limits.py,
worker/limiting.py, designdocs/queshot/lib/limits.js): the rules in QuickJS,
then workers in this process; test_limits_race.py races worker processes."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from conftest import running, wait_until
from designdoc_js import DesignDocJS
from prometheus_client import CollectorRegistry, generate_latest

from queshot import Queue, Worker, protocol
from queshot.cli import main
from queshot.jobs import QueueError, is_job, now_ms
from queshot.limits import (
    Group,
    Limit,
    Rate,
    limits,
    remove_limit,
    set_limit,
    token_id,
    tokens,
)
from queshot.metrics import ClaimCollector, database_registry
from queshot.worker.tokens import SLOT_TRIES, own_slot, slots_to_try

ADMIN = {"name": None, "roles": ["_admin"]}
WORKER = {"name": "w1", "roles": ["queshot_worker"]}
PRODUCER = {"name": "p1", "roles": ["queshot_producer"]}
SEC: dict[str, Any] = {}


@pytest.fixture(scope="module")
def js() -> DesignDocJS:
    return DesignDocJS()


def token(slot: int = 0, **fields: Any) -> dict[str, Any]:
    doc = {
        "_id": token_id("api", "concurrency", None, slot),
        "type": "queshot_token",
        "limit": "api",
        "kind": "concurrency",
        "key": None,
        "slot": slot,
        "state": "active",
        "worker_id": "worker-a",
        "user": "w1",
        "job": "job-1",
        "taken_at": now_ms(),
        "lease_expires_at": now_ms() + 60_000,
    }
    return doc | fields


def test_a_limit_is_a_queue_admins_and_its_schema_is_checked(js: DesignDocJS) -> None:
    limit = Limit(["api"], concurrency=3, key_rate=Rate(30, 10)).as_doc()
    assert js.validate(limit, None, ADMIN, SEC) is None
    assert "only a queue admin" in js.validate(limit, None, WORKER, SEC)[1]
    assert "only a queue admin" in js.validate({**limit, "_deleted": True}, limit, WORKER, SEC)[1]
    for wrong, reason in [
        ({"concurrency": 0}, "'concurrency' must be a whole number from 1"),
        ({"concurrency": 2.5}, "'concurrency' must be a whole number from 1"),
        ({"rate": {"count": 3}}, "'rate' is {\"count\": jobs"),
        ({"rate": {"count": 3, "seconds": 0}}, "'rate.seconds' must be a number above 0"),
        ({"burst": 3}, "not 'burst'"),
        ({"_id": "queshot-limit:other"}, "a limit's id is"),
    ]:
        assert reason in js.validate({**limit, **wrong}, None, ADMIN, SEC)[1], wrong
    bare = {"_id": "queshot-limit:api", "type": "queshot_limit", "queue": "api"}
    assert "at least one of" in js.validate(bare, None, ADMIN, SEC)[1]


def test_a_rates_window_is_sliding_unless_it_says_fixed(js: DesignDocJS) -> None:
    limit = Limit(["api"], rate=Rate(3, 1), key_rate=Rate(30, 10, "fixed"))
    doc = limit.as_doc()
    assert doc["rate"] == {"count": 3, "seconds": 1}  # as stored before windows had a choice
    assert doc["key_rate"] == {"count": 30, "seconds": 10, "window": "fixed"}
    assert Limit.from_doc(doc) == limit
    for rate in [{"count": 3, "seconds": 1}, {"count": 3, "seconds": 1, "window": "sliding"}]:
        assert js.validate({**doc, "rate": rate}, None, ADMIN, SEC) is None
        assert Limit.from_doc({**doc, "rate": rate}).rate == Rate(3, 1, "sliding")
    assert js.validate(doc, None, ADMIN, SEC) is None
    for window in ["calendar", "Fixed", None, 1]:
        wrong = {**doc, "key_rate": {**doc["key_rate"], "window": window}}
        reason = js.validate(wrong, None, ADMIN, SEC)[1]
        assert '\'key_rate.window\' must be "sliding" or "fixed"' in reason, window
        with pytest.raises(QueueError, match="key_rate's window must be 'sliding' or 'fixed'"):
            Limit.from_doc(wrong)
    extra = {**doc, "rate": {"count": 3, "seconds": 1, "burst": 2}}
    assert 'optionally "window"' in js.validate(extra, None, ADMIN, SEC)[1]


def test_a_fixed_rate_token_is_free_at_the_next_aligned_window() -> None:
    """Given back at `now` after its run: sliding a window on, fixed at the
    start of the window after the one the run ended in (ARCHITECTURE.md)."""
    sliding = Limit(["api"], rate=Rate(3, 10)).groups(None)[0]
    fixed = Limit(["api"], rate=Rate(3, 10, "fixed")).groups(None)[0]
    assert sliding.free_after_run(123_456) == 133_456
    assert fixed.free_after_run(123_456) == 130_000
    assert fixed.free_after_run(129_999) == 130_000
    assert fixed.free_after_run(130_000) == 140_000  # a window's first ms is in it
    assert Group("api", "concurrency", None, 3).free_after_run(123_456) == 123_456
    assert Limit(["api"], rate=Rate(2, 1.5, "fixed")).groups(None)[0].free_after_run(1) == 1500


def test_a_dead_holders_rate_token_comes_back_as_if_its_run_ended_with_its_lease() -> None:
    """Its job may have started: a rate counts that start, so the slot is
    spent as a finished run's would be; a concurrency slot is free at once."""
    dead = {"state": "active", "lease_expires_at": 123_456}
    concurrency = Group("api", "concurrency", None, 3)
    sliding = Limit(["api"], rate=Rate(3, 10)).groups(None)[0]
    fixed = Limit(["api"], rate=Rate(3, 10, "fixed")).groups(None)[0]
    assert [g.free_again_at(dead) for g in (concurrency, sliding, fixed)] == [
        123_456,
        133_456,
        130_000,
    ]
    assert concurrency.is_free(dead, 123_456) and not fixed.is_free(dead, 129_999)
    assert fixed.is_free(dead, 130_000) and not sliding.is_free(dead, 130_000)
    given_back = {"state": "free", "free_at": 125_000}
    assert fixed.free_again_at(given_back) == 125_000  # the giver worked it out
    assert fixed.free_again_at({"state": "active"}) == float("inf")  # not one the rules let by


def test_a_held_token_is_its_holders_until_its_lease_ends(js: DesignDocJS) -> None:
    held = token()
    # it has a `state`, yet no view, reaper or reader takes it for a running job
    assert js.lib("isJob", held) is False and not is_job(held)
    assert js.validate(held, None, WORKER, SEC) is None
    assert "only workers" in js.validate(held, None, PRODUCER, SEC)[1]
    assert "names the account" in js.validate({**held, "user": "w2"}, None, WORKER, SEC)[1]
    rival = {**held, "worker_id": "worker-b", "job": "job-2"}
    assert "held by worker-a" in js.validate(rival, held, WORKER, SEC)[1]
    expired = {**held, "lease_expires_at": now_ms() - 1}
    assert js.validate(rival, expired, WORKER, SEC) is None  # a dead holder's lease ran out
    renewed = {**held, "lease_expires_at": now_ms() + 90_000}
    assert js.validate(renewed, held, WORKER, SEC) is None
    given_back = {**held, "state": "free", "free_at": now_ms() + 10_000}  # a rate's window
    assert js.validate(given_back, held, WORKER, SEC) is None
    assert "free again only at" in js.validate(rival, given_back, WORKER, SEC)[1]
    assert js.validate(rival, {**given_back, "free_at": now_ms() - 1}, WORKER, SEC) is None
    forever = {**held, "lease_expires_at": now_ms() + 2 * 86_400_000}
    assert "lease ends at most" in js.validate(forever, None, WORKER, SEC)[1]
    assert "a token's id is" in js.validate({**held, "slot": 1}, None, WORKER, SEC)[1]
    keyed = {**held, "kind": "key_concurrency"}
    assert "'key' must be the job's limit_key" in js.validate(keyed, None, WORKER, SEC)[1]


def test_a_jobs_limit_key_is_bounded_and_set_on_create_only(js: DesignDocJS, db) -> None:
    queue = Queue("api", db)
    doc = queue.new_job_doc({}, limit_key="customer-7")
    assert doc["limit_key"] == "customer-7"
    assert js.validate(doc, None, PRODUCER, SEC) is None
    assert "'limit_key' must be" in js.validate({**doc, "limit_key": ""}, None, ADMIN, SEC)[1]
    assert "'limit_key' must be" in js.validate({**doc, "limit_key": 5}, None, ADMIN, SEC)[1]
    with pytest.raises(QueueError, match="limit_key"):
        queue.new_job_doc({}, limit_key="x" * 201)
    claimed = {**doc, "_rev": "1-a", "limit_key": "customer-8"}
    assert "only a queue admin" in js.validate(claimed, doc, WORKER, SEC)[1]


def test_limits_are_set_shown_and_removed(db) -> None:
    set_limit(db, Limit(["api", "v1"], concurrency=2, rate=Rate(5, 1.5)))
    assert limits(db) == [Limit(["api", "v1"], concurrency=2, rate=Rate(5, 1.5))]
    with pytest.raises(QueueError, match="at least one of"):
        set_limit(db, Limit(["api"]))
    remove_limit(db, "api/v1")
    assert limits(db) == []
    with pytest.raises(QueueError, match="no limit"):
        remove_limit(db, "api/v1")


class Intervals:
    """What handlers say of themselves: each run's start and end (monotonic)."""

    def __init__(self, sleep: float) -> None:
        self.sleep = sleep
        self.runs: list[tuple[float, float, str, Any]] = []
        self.lock = threading.Lock()

    def __call__(self, job) -> None:
        start = time.monotonic()
        time.sleep(self.sleep)
        with self.lock:
            self.runs.append((start, time.monotonic(), job.id, job.doc.get("limit_key")))

    def most_at_once(self, key: Any = ...) -> int:
        events = sorted(
            (at, step)
            for start, end, _, k in self.runs
            if key is ... or k == key
            for at, step in ((start, 1), (end, -1))
        )
        most = now = 0
        for _, step in events:
            now += step
            most = max(most, now)
        return most


def test_a_queue_limit_holds_across_workers_and_a_change_needs_no_restart(db) -> None:
    queue = Queue("api", db)
    set_limit(db, Limit(["api"], concurrency=2))
    handler = Intervals(0.05)
    ids = queue.create_jobs([{"n": n} for n in range(40)])
    workers = [Worker(queue, handler, concurrency=4, poll_interval=1) for _ in range(2)]
    with running(*workers):
        wait_until(lambda: len(handler.runs) >= 20, timeout=60)
        assert handler.most_at_once() <= 2
        set_limit(db, Limit(["api"], concurrency=3))
        wait_until(lambda: len(handler.runs) == 40, timeout=60)
    assert sorted(run[2] for run in handler.runs) == sorted(ids)
    assert handler.most_at_once() <= 3
    assert sum(w.stats.as_dict()["limited"] for w in workers) > 0
    assert all(t["state"] == "free" for t in tokens(db))


def test_an_unlimited_queue_pays_no_token(db) -> None:
    set_limit(db, Limit(["other"], concurrency=1))
    queue = Queue("api", db)
    handler = Intervals(0)
    queue.create_jobs([{"n": n} for n in range(10)])
    worker = Worker(queue, handler, concurrency=4, poll_interval=1)
    with running(worker):
        wait_until(lambda: len(handler.runs) == 10, timeout=60)
    assert tokens(db) == []
    assert not worker.limiter.applies(["api"])


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], server_url: str, db) -> Callable[..., tuple[int, str]]:
    """`queshot ...` on the test database: (exit status, what it printed)."""

    def run(*args: str) -> tuple[int, str]:
        status = main([*args, "--url", server_url, "--db", db.name])
        captured = capsys.readouterr()
        return status, captured.out + captured.err

    return run


def test_limit_set_show_remove_from_the_command_line(cli, db) -> None:
    assert cli("limit", "set", "api", "--concurrency", "3", "--key-rate", "30/10s") == (
        0,
        "queue api: 3 at once, 30 starts per 10 s per key\n",
    )
    status, out = cli("limit", "show", "--json")
    assert status == 0
    assert json.loads(out)[0]["in_use"] == {"concurrency": 0, "key_rate": 0}
    assert cli("limit", "show")[1] == (
        "api: 3 at once, 30 starts per 10 s per key; tokens held: concurrency 0, key_rate 0\n"
    )
    status, out = cli("limit", "set", "api", "--rate", "30 per minute")
    assert status != 0 and "not a rate" in out and "Traceback" not in out
    status, out = cli("limit", "set", "api", "--concurrency", "0")
    assert status != 0 and "from 1 to" in out
    assert cli("enqueue", "api", "{}", "--limit-key", "customer-1")[0] == 0
    rows = db.all_docs(include_docs=True)["rows"]
    assert [row["doc"]["limit_key"] for row in rows if "queues" in row["doc"]] == ["customer-1"]
    assert cli("limit", "remove", "api")[0] == 0
    assert cli("limit", "show")[1] == "no limits\n"


def test_a_fixed_window_rate_from_the_command_line(cli, db) -> None:
    said = cli("limit", "set", "api", "--rate", "100/1m", "--rate-window", "fixed",
               "--key-rate", "5/1s", "--key-rate-window", "sliding")  # fmt: skip
    assert said == (0, "queue api: 100 starts per 60 s (fixed windows), 5 starts per 1 s per key\n")
    assert limits(db) == [Limit(["api"], rate=Rate(100, 60, "fixed"), key_rate=Rate(5, 1))]
    status, out = cli("limit", "show", "--json")
    assert json.loads(out)[0]["rate"] == {"count": 100, "seconds": 60, "window": "fixed"}
    assert cli("limit", "show")[1].startswith("api: 100 starts per 60 s (fixed windows), 5 ")
    status, out = cli("limit", "set", "api", "--concurrency", "2", "--key-rate-window", "fixed")
    assert status != 0 and "--key-rate-window needs --key-rate" in out and "Traceback" not in out


def test_a_queue_sets_its_own_limit(db) -> None:
    queue = Queue("api/partner", db)
    queue.set_limit(concurrency=5, rate=Rate(100, 60))
    assert limits(db) == [Limit(["api", "partner"], concurrency=5, rate=Rate(100, 60))]
    remove_limit(db, queue.path)
    assert limits(db) == []


def test_show_and_metrics_tell_of_a_job_held_back_by_a_full_limit(
    capsys: pytest.CaptureFixture[str], server_url: str, db
) -> None:
    queue = Queue("api", db)
    queue.set_limit(concurrency=1)
    release = threading.Event()
    first = queue.create_job({"n": 1})
    second = queue.create_job({"n": 2})
    worker = Worker(queue, lambda job: release.wait(30), concurrency=2, poll_interval=1)
    with running(worker):
        wait_until(lambda: worker.limiter.describe() == {"tokens_held": 1, "jobs_held_back": 1})
        held = first if worker.running_jobs == [first] else second
        waiting = second if held == first else first
        assert main(["show", waiting, "--url", server_url, "--db", db.name]) == 0
        assert "waits on the limit api: concurrency 1, 1 taken" in capsys.readouterr().out
        assert main(["show", held, "--url", server_url, "--db", db.name]) == 0
        assert "waits on the limit" not in capsys.readouterr().out
        scraped = generate_latest(database_registry(db)).decode()
        assert 'queshot_limit_tokens_in_use{key="",kind="concurrency",limit="api"} 1.0' in scraped
        assert 'queshot_limit_waiting_jobs{limit="api"} 1.0' in scraped
        registry = CollectorRegistry()
        registry.register(ClaimCollector(worker))
        mine = generate_latest(registry).decode()
        assert 'queshot_jobs_held_back{queue="api"} 1.0' in mine
        worker._status.write()  # as its loop does, once a lease
        status = db.get(protocol.status_id(worker.id))
        assert status["limits"] == {"tokens_held": 1, "jobs_held_back": 1}  # for the dashboard
        release.set()
        wait_until(lambda: queue.stats()["complete"] == 2)


def test_a_take_tries_free_stored_tokens_first_and_few_slots_of_a_large_limit() -> None:
    now = now_ms()
    held, free = (
        {"state": "active", "lease_expires_at": now + 1000},
        {"state": "free", "free_at": 0},
    )
    large, small = (Group("api", "concurrency", None, size) for size in (10_000, 3))
    tried = slots_to_try(large, {0: held, 1: free, 2: held}, now)
    assert tried[0] == 1 and len(tried) == 1 + SLOT_TRIES and not {0, 2} & set(tried)
    assert slots_to_try(small, {0: held, 1: held, 2: held}, now) == []
    assert slots_to_try(small, {0: held, 2: held, 7: free}, now) == [1]


def test_a_job_tries_its_own_slot_first_the_same_on_every_worker() -> None:
    slots = [own_slot(10_000, f"job-{n}") for n in range(1000)]
    assert slots == [own_slot(10_000, f"job-{n}") for n in range(1000)]
    assert len(set(slots)) > 900  # spread: racing takers of different jobs rarely meet
    assert all(0 <= own_slot(3, f"job-{n}") < 3 for n in range(100))
