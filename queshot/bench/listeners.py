"""Listeners: what a process listening to the database costs the server per
job. Every worker holds a `_changes` feed, and CouchDB wakes every feed on
every change, whatever its queue (issue 21). The bench's drain (`Drainers`)
runs while idle `queshot worker` processes sit on other queues of the same
database, in each of the ways a user can run that many handler processes,
and once with the drain itself spread over `few` processes; each set against
the drain with nothing idle beside it, in the same run (measured first and
last: the better counts, so that the ratios do not flatter)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..couch import Database
from .growth import seeded
from .measures import Drainers, best_of, ratio
from .pool import IdleWorkers

log = logging.getLogger(__name__)

DRAINED_QUEUE = "bench-listeners"
# Every idle queue is under this one: pausing it reaches every idle worker.
IDLE_PARENT = "bench-idle"


@dataclass(frozen=True)
class Arrangement:
    """One way of running idle listeners beside the drain: `idle` holds each
    idle process's `queshot worker` options; `feeds`, how many changes
    feeds they hold by queshot's design; `drain_processes` spreads the
    drain itself."""

    name: str
    label: str
    idle: list[list[str]] = dataclasses.field(default_factory=list)
    feeds: int | None = None
    drain_processes: int | None = None


def _idle_queue(number: int) -> list[str]:
    return ["--queue", f"{IDLE_PARENT}/{number}"]


def arrangements(few: int, many: int, *, share_feed: bool) -> list[Arrangement]:
    """The rows after "none": `few` and `many` idle workers (a feed each),
    `many` handler processes as one worker (one feed), one worker on `many`
    queues (one feed), `many` workers sharing their host's feed (one feed,
    when the worker CLI takes --share-feed), and the drain by `few` processes."""
    separate = [_idle_queue(n) for n in range(many)]
    rows = [
        Arrangement("separate_few", f"{few} idle workers", separate[:few], few),
        Arrangement("separate_many", f"{many} idle workers", separate, many),
        Arrangement(
            "processes",
            f"1 idle worker --processes {many}",
            [[*_idle_queue(0), "--processes", str(many)]],
            1,
        ),
        Arrangement(
            "queues",
            f"1 idle worker on {many} queues",
            [[option for n in range(many) for option in _idle_queue(n)]],
            1,
        ),
    ]
    if share_feed:
        shared = [[*options, "--share-feed"] for options in separate]
        rows.append(Arrangement("share_feed", f"{many} idle workers --share-feed", shared, 1))
    rows.append(Arrangement("same_queue", f"the drain by {few} workers", drain_processes=few))
    return rows


def spread(drainers: Drainers, processes: int | None) -> Drainers:
    """The drain by `processes` workers, with as many job slots in all as
    far as they divide (at least one each), so that only the number of
    listening processes differs."""
    if processes is None:
        return drainers
    slots = drainers.workers * drainers.concurrency
    return dataclasses.replace(drainers, workers=processes, concurrency=max(1, slots // processes))


def measure_listeners(
    phase: Callable[..., Any],
    provision: Callable[[Database], None],
    drainers: Drainers,
    *,
    backlog: int,
    few: int,
    many: int,
    share_feed: bool,
) -> dict[str, Any]:
    """`drainers`' rate and server CPU per job over `backlog` waiting jobs,
    beside each of the `arrangements`, on a fresh database each; ratios to
    the drain with nothing idle (the better of a run first and one last);
    and, where the idle feeds are known, the server's CPU per job per feed."""

    def run(arrangement: Arrangement) -> dict[str, Any]:
        log.info("listeners: %s", arrangement.label)
        drain = spread(drainers, arrangement.drain_processes)
        with (
            seeded(phase, provision, DRAINED_QUEUE, backlog) as queue,
            IdleWorkers(drainers.urls, queue.db, IDLE_PARENT, arrangement.idle) as idle,
        ):
            idle_rss = idle.rss_mb()
            result = drain.rate(queue, backlog)
        return result | {
            "name": arrangement.name,
            "label": arrangement.label,
            "idle_processes": len(arrangement.idle),
            "idle_rss_mb": idle_rss,
            "feeds": arrangement.feeds,
            "drain": f"{drain.workers} x {drain.concurrency}",
        }

    none = Arrangement("none", "none")
    first = run(none)
    runs = [run(arrangement) for arrangement in arrangements(few, many, share_feed=share_feed)]
    last = run(none)
    base_rate, base_cpu = best_of([first, last])
    for run_ in runs:
        cpu = run_["server_cpu_ms_per_job"]
        run_["ratio"] = ratio(run_["per_s"], base_rate)
        run_["cpu_ratio"] = ratio(cpu, base_cpu)
        run_["cpu_ms_per_job_per_feed"] = (
            (cpu - base_cpu) / run_["feeds"]
            if run_["feeds"] and cpu is not None and base_cpu is not None
            else None
        )
    return {
        "few": few,
        "many": many,
        "backlog": backlog,
        "none": [first, last],
        "per_s": base_rate,
        "server_cpu_ms_per_job": base_cpu,
        "runs": runs,
        # What one more listening process costs: the issue's ~1 ms per job for a bare feed.
        "per_listener_cpu_ms": next(
            r["cpu_ms_per_job_per_feed"] for r in runs if r["name"] == "separate_many"
        ),
    }


def listener_rows(listeners: dict[str, Any]) -> list[tuple[str, str]]:
    """The table's rows: the drain alone, then each arrangement against it."""
    first, last = listeners["none"]
    base_cpu = listeners["server_cpu_ms_per_job"]
    rows = [
        (
            "listeners: none",
            f"{listeners['per_s']:,.0f} jobs/s (runs {first['per_s']:,.0f}, "
            f"{last['per_s']:,.0f}), drain {first['drain']}"
            + (
                f"; server CPU {base_cpu:.1f} ms/job (runs {first['server_cpu_ms_per_job']:.1f}"
                f", {last['server_cpu_ms_per_job']:.1f})"
                if base_cpu is not None
                else ""
            ),
        )
    ]
    for run_ in listeners["runs"]:
        text = f"{run_['per_s']:,.0f} jobs/s{_times(run_['ratio'])}"
        if run_["server_cpu_ms_per_job"] is not None:
            text += f"; server CPU {run_['server_cpu_ms_per_job']:.1f} ms/job"
            text += _times(run_["cpu_ratio"])
        if run_["cpu_ms_per_job_per_feed"] is not None and run_["feeds"] > 1:
            text += f", {run_['cpu_ms_per_job_per_feed']:.2f} ms/job per feed"
        if run_["idle_processes"]:
            text += f"; idle {run_['idle_rss_mb']:,.0f} MB"
        else:
            text += f" (drain {run_['drain']})"
        rows.append((run_["label"], text))
    if any(run_["ran_dry"] for run_ in [first, last, *listeners["runs"]]):
        rows[-1] = (rows[-1][0], rows[-1][1] + " (a backlog ran dry: raise --small-backlog)")
    return rows


def _times(value: float | None) -> str:
    """A ratio as the table shows it; nothing where it could not be measured
    (no job completed in the base's window)."""
    return f", {value:.2f} x" if value is not None else ""
