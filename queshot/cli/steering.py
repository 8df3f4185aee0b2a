"""Watching and steering jobs from the command line: `queshot stats`, `jobs`,
`show`, `wait`, `pause`, `resume`, `workers` (acting on jobs is `acting`). The
work is in `admin` (and `results`); this formats it."""

from __future__ import annotations

import argparse
import functools
import json
import sys
from typing import Any

from .. import admin, history, limits
from ..jobs import SHOWN_STATES, JobFailed, ResultTimeout, now_ms
from ..results import wait_for_job
from . import common, output, replicating, reports


def cmd_stats(args: argparse.Namespace) -> int:
    with common.open_couch(args) as couch:
        db = common.database(args, couch)
        result = admin.stats(db)
        if args.json:
            origins, replications = replicating.producers(couch, db)
            output.print_json(vars(result) | {"origins": origins, "replications": replications})
            return 0
        if not result.queues:
            print("no jobs")
            return 0
        producers = replicating.producer_lines(couch, db)
    print("\n".join(reports.stats_lines(result, now_ms()) + producers))
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    with common.open_couch(args) as couch:
        found = history.recent(common.database(args, couch))
    if output.json_or_nothing(args, found, empty=not found, nothing="no history yet"):
        return 0
    print("\n".join(reports.history_lines(found)))
    return 0


def cmd_jobs(args: argparse.Namespace) -> int:
    with common.open_couch(args) as couch:
        jobs = admin.list_jobs(
            common.database(args, couch),
            queue=common.queue_name(args.queue) if args.queue else None,
            state=args.state,
            limit=args.limit,
            newest_first=args.newest,
        )
    if output.json_or_nothing(args, jobs, empty=not jobs, nothing="no jobs"):
        return 0
    print("\n".join(reports.jobs_lines(jobs, now_ms())))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    with common.open_couch(args) as couch:
        db = common.database(args, couch)
        doc = admin.get_job(db, args.id)
        full = [] if args.json else limits.waits_on(db, doc, now_ms())
    if args.json:
        output.print_json(doc)
    else:
        lines = reports.job_lines(doc) + [f"waits on the limit {output.escape(f)}" for f in full]
        print("\n".join(lines))
    return 0


def cmd_wait(args: argparse.Namespace) -> int:
    """Exit 0 with the result when the job completes, 1 when it fails or is
    cancelled (its error on stderr), 2 when it is not finished in time."""
    if args.timeout is not None and args.timeout <= 0:
        raise ValueError(f"--timeout must be > 0 seconds (got {args.timeout:g})")
    with common.open_couch(args) as couch:
        db = common.database(args, couch)
        try:
            doc = wait_for_job(db, args.id, args.timeout)
        except ResultTimeout as exc:
            print(f"queshot: {output.escape(str(exc))}", file=sys.stderr)
            return 2
    if doc.get("state") != "complete":
        print(f"queshot: {output.escape(str(JobFailed(args.id, doc)))}", file=sys.stderr)
        if args.json:
            output.print_json({"id": args.id, "state": doc.get("state"), "error": doc.get("error")})
        return 1
    if args.json:
        output.print_json({"id": args.id, "state": "complete", "result": doc.get("result")})
    else:
        print(json.dumps(doc.get("result")))
    return 0


def cmd_pause(args: argparse.Namespace) -> int:
    paused = args.func is cmd_pause
    with common.open_couch(args) as couch:
        path = admin.set_paused(common.database(args, couch), common.queue_name(args.queue), paused)
    state = "paused" if paused else "resumed"
    if args.json:
        output.print_json({"queue": path, "paused": paused})
    else:
        print(f"queue {output.queue_text(path)} {state}")
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    return cmd_pause(args)


def cmd_workers(args: argparse.Namespace) -> int:
    with common.open_couch(args) as couch:
        found = admin.workers(common.database(args, couch))
    if output.json_or_nothing(args, found, empty=not found, nothing="no workers"):
        return 0
    print("\n".join(reports.workers_lines(found, now_ms())))
    return 0


def add_commands(commands: Any) -> None:
    """Watching and steering jobs: stats, jobs, show, wait, workers, pause, resume."""

    command = functools.partial(common.command, commands)

    command("stats", "jobs per queue and state, oldest waiting job", cmd_stats)
    command("history", "jobs completed and failed per queue: last hour, day, week", cmd_history)

    jobs = command("jobs", "list jobs by queue and/or state", cmd_jobs)
    jobs.add_argument("--queue", help="queue name, or a path like email/welcome")
    jobs.add_argument("--state", type=common.state, help=f"{', '.join(SHOWN_STATES)}")
    jobs.add_argument("--limit", type=int, default=20, help="at most this many (default 20)")
    jobs.add_argument("--newest", action="store_true", help="most recent first")

    show = command("show", "one job: its fields, data, log and last error", cmd_show)
    show.add_argument("id", help="job id")

    wait = command(
        "wait", "wait for a job: exit 0 complete, 1 failed/cancelled, 2 timeout", cmd_wait
    )
    wait.add_argument("id", help="job id")
    wait.add_argument("--timeout", type=float, help="seconds to wait at most (default: no limit)")

    command("workers", "workers' status documents (gone ones marked)", cmd_workers)

    for name, func, what in (
        ("pause", cmd_pause, "stop claiming a queue's jobs (and its sub-queues'), on every worker"),
        ("resume", cmd_resume, "let a paused queue's jobs be claimed again"),
    ):
        command(name, what, func).add_argument(
            "queue", help="queue name, or a path like email/welcome"
        )
