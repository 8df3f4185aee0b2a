"""Watching and steering jobs from the command line: `queshot stats`, `jobs`,
`show`, `wait`, `requeue`, `cancel`, `clean`, `workers`. The work is in
`admin` (and `results`); this formats it."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from .. import admin, limits
from ..jobs import STATES, JobFailed, ResultTimeout, now_ms
from ..results import wait_for_job
from . import common, output, replicating, reports


def cmd_stats(args: argparse.Namespace) -> int:
    with common.open_couch(args) as couch:
        db = common.database(args, couch)
        result = admin.stats(db)
        if output.json_or_nothing(args, result, empty=not result.queues, nothing="no jobs"):
            return 0
        producers = replicating.producer_lines(couch, db)
    print("\n".join(reports.stats_lines(result, now_ms()) + producers))
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


def _report(outcomes: list[admin.Outcome], done: str, args: argparse.Namespace) -> int:
    """Print what a bulk command did; exit status 1 if any job was not done."""
    failed = [o for o in outcomes if not o.ok]
    if args.json:
        output.print_json({done: sum(o.ok for o in outcomes), "not_" + done: failed})
    else:
        print(f"{done} {len(outcomes) - len(failed)} job(s)")
        for outcome in failed:
            print(f"  {output.text(outcome.id)}: not {done}: {output.text(outcome.detail)}")
    return 1 if failed else 0


def cmd_requeue(args: argparse.Namespace) -> int:
    if bool(args.ids) == args.failed:
        raise ValueError("give job ids, or --failed (optionally with --queue)")
    if args.queue and not args.failed:
        raise ValueError("--queue goes with --failed")
    with common.open_couch(args) as couch:
        db = common.database(args, couch)
        if args.failed:
            queue = common.queue_name(args.queue) if args.queue else None
            outcomes = admin.requeue_failed(db, queue=queue)
        else:
            outcomes = admin.requeue(db, args.ids)
    return _report(outcomes, "requeued", args)


def cmd_cancel(args: argparse.Namespace) -> int:
    with common.open_couch(args) as couch:
        outcomes = admin.cancel(common.database(args, couch), args.ids)
    code = _report(outcomes, "cancelled", args)
    if not args.json:
        for outcome in outcomes:
            if outcome.ok and outcome.detail:
                print(f"  {output.text(outcome.id)}: {output.text(outcome.detail)}")
    return code


def cmd_clean(args: argparse.Namespace) -> int:
    with common.open_couch(args) as couch:
        outcomes = admin.clean(
            common.database(args, couch),
            state=args.state,
            older_than=admin.parse_duration(args.older_than),
            queue=common.queue_name(args.queue) if args.queue else None,
        )
    return _report(outcomes, "deleted", args)


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
    """Watching and steering jobs: stats, jobs, show, requeue, clean, workers."""

    def command(name: str, help: str, func: Callable[[argparse.Namespace], int]) -> Any:
        parser = commands.add_parser(name, help=help)
        common.connection_options(parser)
        parser.add_argument("--json", action="store_true", help="JSON for scripts")
        parser.set_defaults(func=func)
        return parser

    command("stats", "jobs per queue and state, oldest waiting job", cmd_stats)

    jobs = command("jobs", "list jobs by queue and/or state", cmd_jobs)
    jobs.add_argument("--queue", help="queue name, or a path like email/welcome")
    jobs.add_argument(
        "--state", type=common.state, help=f"{', '.join(STATES)} (or waiting: inactive)"
    )
    jobs.add_argument("--limit", type=int, default=20, help="at most this many (default 20)")
    jobs.add_argument("--newest", action="store_true", help="most recent first")

    show = command("show", "one job: its fields, data, log and last error", cmd_show)
    show.add_argument("id", help="job id")

    wait = command(
        "wait", "wait for a job: exit 0 complete, 1 failed/cancelled, 2 timeout", cmd_wait
    )
    wait.add_argument("id", help="job id")
    wait.add_argument("--timeout", type=float, help="seconds to wait at most (default: no limit)")

    cancel = command("cancel", "cancel jobs: waiting ones at once, running ones asked", cmd_cancel)
    cancel.add_argument("ids", nargs="+", metavar="ID", help="job ids")

    requeue = command("requeue", "put failed (or complete) jobs back to waiting", cmd_requeue)
    requeue.add_argument("ids", nargs="*", metavar="ID", help="job ids")
    requeue.add_argument("--failed", action="store_true", help="every failed job")
    requeue.add_argument("--queue", help="with --failed: only this queue")

    clean = command("clean", "delete finished jobs older than a given age", cmd_clean)
    clean.add_argument("--state", choices=("complete", "failed"), default="complete")
    clean.add_argument("--older-than", required=True, help="age, e.g. 7d, 12h, 30m")
    clean.add_argument("--queue", help="only this queue")

    command("workers", "workers' status documents (gone ones marked)", cmd_workers)

    for name, func, what in (
        ("pause", cmd_pause, "stop claiming a queue's jobs (and its sub-queues'), on every worker"),
        ("resume", cmd_resume, "let a paused queue's jobs be claimed again"),
    ):
        command(name, what, func).add_argument(
            "queue", help="queue name, or a path like email/welcome"
        )
