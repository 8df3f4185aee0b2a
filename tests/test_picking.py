"""Picking from pending rows, without a server: which rows are due, and how
candidates spread over a page while higher priorities still go first."""

from __future__ import annotations

import random

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
    orders = {tuple(job for _, job in spread(due)) for _ in range(5)}
    assert len(orders) > 1, "not shuffled"
    for order in orders:
        assert all(job.startswith("high") for job in order[:20])
        assert sorted(order[:20]) == sorted(job for _, job in due[:20])
