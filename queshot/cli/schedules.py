"""Periodic jobs from the command line: `queshot schedules`, `queshot schedule
add|remove|pause|resume|run`, and `queshot scheduler`. The work is in `schedule_admin`
and `scheduler`; this parses and formats."""

from __future__ import annotations

import argparse
from typing import Any

from .. import schedule_admin
from ..jobs import now_ms
from ..schedules import schedule_id
from . import common, output, reports


def cmd_schedules(args: argparse.Namespace) -> int:
    with common.open_couch(args) as couch:
        found = schedule_admin.schedules(common.database(args, couch))
    if output.json_or_nothing(args, found, empty=not found, nothing="no schedules"):
        return 0
    print("\n".join(reports.schedules_lines(found)))
    return 0


def cmd_schedule_add(args: argparse.Namespace) -> int:
    if (args.cron is None) == (args.every is None):
        raise ValueError("give --cron 'EXPR' or --every SECONDS")
    doc: dict[str, Any] = {"_id": schedule_id(args.name), "queue": common.queue_name(args.queue)}
    doc.update({"cron": args.cron} if args.cron is not None else {"every": args.every})
    if args.timezone:
        doc["timezone"] = args.timezone
    if args.task:
        doc["task"] = args.task
        doc["args"] = common.json_option(args.args, "--args", list) or []
        doc["kwargs"] = common.json_option(args.kwargs, "--kwargs", dict) or {}
    elif args.args or args.kwargs:
        raise ValueError("--args and --kwargs go with --task")
    if args.data is not None:
        doc["data"] = common.json_option(args.data, "--data")
    for name in ("catch_up", "priority", "max_attempts", "timeout"):
        if getattr(args, name) is not None:
            doc[name] = getattr(args, name)
    doc["enabled"] = not args.paused
    with common.open_couch(args) as couch:
        schedule = schedule_admin.add_schedule(
            common.database(args, couch), doc, replace=args.replace
        )
    state = (
        "paused"
        if args.paused
        else f"next run {output.zoned_when(schedule.next_slot(now_ms()), schedule.timezone)}"
    )
    print(f"schedule {schedule.name}: {schedule.describe()}, {state}")
    return 0


def cmd_schedule_remove(args: argparse.Namespace) -> int:
    with common.open_couch(args) as couch:
        schedule_admin.remove_schedule(common.database(args, couch), args.name)
    print(f"schedule {args.name} removed (the jobs it made stay)")
    return 0


def cmd_schedule_pause(args: argparse.Namespace) -> int:
    return _set_enabled(args, False)


def cmd_schedule_resume(args: argparse.Namespace) -> int:
    return _set_enabled(args, True)


def _set_enabled(args: argparse.Namespace, enabled: bool) -> int:
    with common.open_couch(args) as couch:
        changed = schedule_admin.set_schedule_enabled(
            common.database(args, couch), args.name, enabled
        )
    word = "resumed" if enabled else "paused"
    print(f"schedule {args.name} {word}" if changed else f"schedule {args.name} was already {word}")
    return 0


def cmd_schedule_run(args: argparse.Namespace) -> int:
    with common.open_couch(args) as couch:
        job_id = schedule_admin.request_run(common.database(args, couch), args.name)
    print(job_id)
    return 0


def cmd_scheduler(args: argparse.Namespace) -> int:
    from ..scheduler import Scheduler

    with common.open_couch(args) as couch:
        Scheduler(common.database(args, couch), name=args.name).run()
    return 0


def add_commands(commands: Any) -> None:
    """schedules, schedule add|remove|pause|resume|run, scheduler."""
    listing = commands.add_parser("schedules", help="list the schedules with their next run")
    common.connection_options(listing)
    listing.add_argument("--json", action="store_true", help="JSON for scripts")
    listing.set_defaults(func=cmd_schedules)

    schedule = commands.add_parser("schedule", help="add, remove, pause, resume or run a schedule")
    actions = schedule.add_subparsers(dest="action", required=True, metavar="ACTION")

    add = actions.add_parser("add", help="add a schedule (periodic job)")
    common.connection_options(add)
    add.add_argument("name", help="the schedule's name (letters, digits, . _ -)")
    add.add_argument("--queue", required=True, help="queue name, or a path like email/welcome")
    when = add.add_mutually_exclusive_group()
    when.add_argument("--cron", help="cron expression, e.g. '*/5 * * * *'")
    when.add_argument("--every", type=int, help="seconds between slots (from the Unix epoch)")
    add.add_argument("--timezone", help="IANA time zone the cron expression is read in (UTC)")
    add.add_argument("--task", help="task name of the jobs (with --args, --kwargs)")
    add.add_argument("--args", help="the task's positional arguments, a JSON array")
    add.add_argument("--kwargs", help="the task's keyword arguments, a JSON object")
    add.add_argument("--data", help="the jobs' data, JSON")
    add.add_argument("--catch-up", type=int, help="missed slots to enqueue after a pause (1)")
    add.add_argument("--priority", type=int, help="the jobs' priority")
    add.add_argument("--max-attempts", type=int, help="the jobs' attempts before failing")
    add.add_argument("--timeout", type=float, help="seconds a job may run")
    add.add_argument("--paused", action="store_true", help="add it paused")
    add.add_argument("--replace", action="store_true", help="overwrite a schedule of that name")
    add.set_defaults(func=cmd_schedule_add)

    for action, aliases, func, text in (
        ("remove", ["rm"], cmd_schedule_remove, "delete a schedule (its jobs stay)"),
        ("pause", ["disable"], cmd_schedule_pause, "stop a schedule from firing"),
        ("resume", ["enable"], cmd_schedule_resume, "let a paused schedule fire again"),
        ("run", [], cmd_schedule_run, "run a schedule once now (prints the job's id)"),
    ):
        sub = actions.add_parser(action, aliases=aliases, help=text)
        common.connection_options(sub)
        sub.add_argument("name")
        sub.set_defaults(func=func)

    scheduler = commands.add_parser(
        "scheduler", help="enqueue the schedules' jobs, each slot once (any number may run)"
    )
    common.connection_options(scheduler)
    scheduler.add_argument("--name", help="scheduler name in logs (default host-pid)")
    scheduler.set_defaults(func=cmd_scheduler)
