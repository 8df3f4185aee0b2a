"""Picking from pending rows, without a server: which rows are due, and how
candidates spread over a page while higher priorities still go first."""

from __future__ import annotations

import random
from collections import Counter

from queshot.jobs import WORKER_DOC_PREFIX, now_ms
from queshot.worker.peers import Peers
from queshot.worker.picking import due_rows, spread


def row(job_id: str, priority: int, run_at: int | None = None) -> dict[str, object]:
    return {"id": job_id, "key": [["q"], -priority, run_at or 0], "value": run_at}


def test_due_rows_stop_at_the_first_row_not_due() -> None:
    rows = [row("a", 5), row("b", 5, run_at=90), row("c", 5, run_at=200), row("d", 1)]
    due, not_due = due_rows(rows, now=100)
    assert due == [(-5, "a"), (-5, "b")]
    assert not_due == (200, -5)


def test_due_rows_of_a_page_that_is_all_due() -> None:
    assert due_rows([row("a", 0), row("b", 0, run_at=5)], now=10) == ([(0, "a"), (0, "b")], None)
    assert due_rows([], now=10) == ([], None)


def test_spread_shuffles_within_a_priority_only() -> None:
    random.seed(7)
    due = [(-9, f"high{n}") for n in range(20)] + [(0, f"low{n}") for n in range(20)]
    orders = {tuple(job for _, job in spread(due, lambda job: 0)) for _ in range(5)}
    assert len(orders) > 1, "not shuffled"
    for order in orders:
        assert all(job.startswith("high") for job in order[:20])
        assert sorted(order[:20]) == sorted(job for _, job in due[:20])


def test_spread_puts_a_workers_first_choices_first_within_a_priority() -> None:
    due = [(-9, "h1"), (-9, "h2"), (0, "l1"), (0, "l2"), (0, "l3")]
    firsts = {"h2", "l3"}
    order = [job for _, job in spread(due, lambda job: 0 if job in firsts else 1)]
    assert order[:2] == ["h2", "h1"] and order[2] == "l3"


def test_rivals_agree_on_each_jobs_first_choice() -> None:
    """Every live worker computes the same order of preference, so exactly one
    of them is each job's first choice, and the jobs spread over all of them."""
    workers = [f"w{n}" for n in range(4)]
    peers = {w: Peers(w, ["q"]) for w in workers}
    for me, mine in peers.items():
        for other in workers:
            if other != me:
                status = {"type": "queshot_worker", "queues": "q", "last_seen": now_ms()}
                mine.heard(WORKER_DOC_PREFIX + other, {**status, "worker_id": other})
    jobs = [f"job{n}" for n in range(400)]
    firsts = {job: [w for w in workers if peers[w].place(job) == 0] for job in jobs}
    assert all(len(first) == 1 for first in firsts.values())
    shares = Counter(first[0] for first in firsts.values())
    assert set(shares) == set(workers) and min(shares.values()) > 60


def test_a_worker_on_another_queue_or_gone_is_no_rival() -> None:
    peers = Peers("me", ["email"])
    peers.heard(
        WORKER_DOC_PREFIX + "sms",
        {"type": "queshot_worker", "queues": "sms", "last_seen": now_ms()},
    )
    peers.heard(
        WORKER_DOC_PREFIX + "old", {"type": "queshot_worker", "queues": "email", "last_seen": 1}
    )
    peers.heard(
        WORKER_DOC_PREFIX + "top",
        {"type": "queshot_worker", "queues": "email", "last_seen": now_ms()},
    )
    assert sorted(peers.live()) == ["me", "top"]
    peers.heard(WORKER_DOC_PREFIX + "top", {"_deleted": True})
    assert peers.live() == ["me"]
