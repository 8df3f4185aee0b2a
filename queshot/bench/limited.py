"""The cost of a limit: throughput of a queue under a concurrency limit it
never reaches, against the same queue unlimited, in one run. The unlimited
queue is measured before and after (the better counts, so that the ratio
does not flatter the limited one); the limit is the largest the rules allow,
so every job takes and gives back a token and none waits for one."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from .. import protocol
from ..jobs import MAX_LIMIT
from ..queue import Queue
from .growth import seed_waiting
from .measures import Drainers

log = logging.getLogger(__name__)


def measure_limit_cost(
    phase: Callable[..., Any], drainers: Drainers, *, backlog: int
) -> dict[str, Any]:
    """Jobs per second of `backlog` waiting jobs, unlimited, limited, unlimited."""

    def run(limited: bool) -> dict[str, Any]:
        with phase() as db:
            queue = Queue("bench-limited", db)
            if limited:
                queue.set_limit(concurrency=MAX_LIMIT)
            seed_waiting(db, queue, backlog)
            protocol.warm_up(db, queue.view)
            return drainers.rate(queue, backlog)

    first = run(False)
    limited = run(True)
    last = run(False)
    unlimited = max(first["per_s"], last["per_s"])
    log.info("limit cost: %.0f jobs/s limited, %.0f unlimited", limited["per_s"], unlimited)
    return {
        "unlimited": [first, last],
        "limited": limited,
        "ratio": limited["per_s"] / unlimited if unlimited else None,
    }


def limit_rows(cost: dict[str, Any]) -> list[tuple[str, str]]:
    """The bench table's line."""
    dry = any(r["ran_dry"] for r in [*cost["unlimited"], cost["limited"]])
    return [
        (
            "limit never reached",
            f"{cost['limited']['per_s']:,.0f} jobs/s against "
            + " and ".join(f"{r['per_s']:,.0f}" for r in cost["unlimited"])
            + f" unlimited: {cost['ratio']:.2f} x"
            + (" (queue ran dry: raise --small-backlog)" if dry else ""),
        )
    ]
