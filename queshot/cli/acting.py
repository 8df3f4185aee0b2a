"""Acting on jobs from the command line: `queshot requeue`, `cancel`, `delete`
(by id, or `--queue Q --state S --all`) and `clean`. The work is in `bulk`;
this confirms a set, prints its progress, and reports the count and each
refusal's reason once, with how many jobs it stopped."""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable
from typing import Any

from .. import admin, bulk
from ..couch import Database
from ..jobs import SHOWN_STATES, now_ms
from . import common, output

DONE = {"requeue": "requeued", "cancel": "cancelled", "delete": "deleted"}


def _report(outcomes: list[bulk.Outcome], done: str, args: argparse.Namespace) -> int:
    """Print what a command did: the count, then each job not done (by id)
    or, for `--all`, each reason once with how many jobs it stopped. Exit
    status 1 if any job was not done."""
    failed = [o for o in outcomes if not o.ok]
    reasons = bulk.reasons(outcomes)
    if args.json:
        key = "reasons" if getattr(args, "all", False) else "not_" + done
        listed = [{"reason": r, "jobs": n} for r, n in reasons.most_common()]
        not_done: Any = listed if key == "reasons" else failed
        output.print_json({done: len(outcomes) - len(failed), key: not_done})
        return 1 if failed else 0
    print(f"{done} {output.counted(len(outcomes) - len(failed), 'job')}")
    if getattr(args, "all", False):
        for reason, count in reasons.most_common():
            print(f"  {count} not {done}: {output.text(reason)}")
    else:
        for outcome in failed:
            print(f"  {output.text(outcome.id)}: not {done}: {output.text(outcome.detail)}")
    return 1 if failed else 0


def _confirmed(args: argparse.Namespace, db: Database, action: str, now: int) -> bool:
    """`--yes`, or the matching count typed back on a terminal; without a
    terminal, a refusal (ValueError: one line, exit 1)."""
    if args.yes:
        return True
    queue = output.queue_text(common.queue_name(args.queue))
    if not sys.stdin.isatty():
        raise ValueError(
            f"{action} --all on {queue} asks for a typed confirmation and there is no "
            "terminal to type it: add --yes"
        )
    count = bulk.matching(db, common.queue_name(args.queue), args.state, now)
    jobs = output.counted(count, f"{args.state} job")
    answer = input(f"{action} all {jobs} of {queue}? type {count} to go on: ")
    if answer.strip() != str(count):
        print("nothing done", file=sys.stderr)
        return False
    return True


def _progress(action: str) -> Callable[[list[bulk.Outcome]], None]:
    def say(outcomes: list[bulk.Outcome]) -> None:
        done = sum(o.ok for o in outcomes)
        print(f"  {len(outcomes)} seen, {done} {DONE[action]}", file=sys.stderr, flush=True)

    return say


def _act(args: argparse.Namespace, action: str, by_ids: Callable[..., list[bulk.Outcome]]) -> int:
    if args.all == bool(args.ids):
        raise ValueError(f"give job ids, or --queue Q --state S --all ({action} every such job)")
    if args.all and not (args.queue and args.state):
        raise ValueError("--all needs --queue and --state: the jobs it acts on")
    if not args.all and (args.queue or args.state or args.yes):
        raise ValueError("--queue, --state and --yes go with --all")
    with common.open_couch(args) as couch:
        db = common.database(args, couch)
        if not args.all:
            return _report(by_ids(db, args.ids), DONE[action], args)
        now = now_ms()
        if not _confirmed(args, db, action, now):
            return 1
        outcomes = bulk.act_on_all(
            db,
            action,
            queue=common.queue_name(args.queue),
            state=args.state,
            now=now,
            progress=None if args.json else _progress(action),
        )
    return _report(outcomes, DONE[action], args)


def cmd_requeue(args: argparse.Namespace) -> int:
    if args.failed:
        if args.ids or args.all or args.state:
            raise ValueError("--failed goes alone (or with --queue)")
        with common.open_couch(args) as couch:
            queue = common.queue_name(args.queue) if args.queue else None
            outcomes = bulk.requeue_failed(common.database(args, couch), queue=queue)
        return _report(outcomes, "requeued", args)
    return _act(args, "requeue", bulk.requeue)


def cmd_cancel(args: argparse.Namespace) -> int:
    def by_ids(db: Database, ids: list[str]) -> list[bulk.Outcome]:
        outcomes = bulk.cancel(db, ids)
        if not args.json:
            for outcome in outcomes:
                if outcome.ok and outcome.detail:  # a running job, asked to stop
                    print(f"  {output.text(outcome.id)}: {output.text(outcome.detail)}")
        return outcomes

    return _act(args, "cancel", by_ids)


def cmd_delete(args: argparse.Namespace) -> int:
    return _act(args, "delete", bulk.delete)


def cmd_clean(args: argparse.Namespace) -> int:
    with common.open_couch(args) as couch:
        outcomes = bulk.clean(
            common.database(args, couch),
            state=args.state,
            older_than=admin.parse_duration(args.older_than),
            queue=common.queue_name(args.queue) if args.queue else None,
        )
    return _report(outcomes, "deleted", args)


def add_commands(commands: Any) -> None:
    """Acting on jobs: requeue, cancel, delete, clean."""

    command = functools.partial(common.command, commands)

    def selection(parser: Any) -> None:
        parser.add_argument("ids", nargs="*", metavar="ID", help="job ids")
        parser.add_argument("--queue", help="with --all: the queue (exactly that path)")
        parser.add_argument(
            "--state", type=common.state, help=f"with --all: {', '.join(SHOWN_STATES)}"
        )
        parser.add_argument("--all", action="store_true", help="every job of --queue in --state")
        parser.add_argument("--yes", action="store_true", help="with --all: do not ask")

    for name, what in (
        ("requeue", "put failed, complete or cancelled jobs back to waiting"),
        ("cancel", "cancel jobs: waiting ones at once, running ones asked to stop"),
        ("delete", "delete jobs (the rules decide: waiting or running ones, admins only)"),
    ):
        funcs = {"requeue": cmd_requeue, "cancel": cmd_cancel, "delete": cmd_delete}
        parser = command(name, what, funcs[name])
        selection(parser)
        if name == "requeue":
            parser.add_argument("--failed", action="store_true", help="every failed job")

    clean = command("clean", "delete finished jobs older than a given age", cmd_clean)
    clean.add_argument("--state", choices=("complete", "failed"), default="complete")
    clean.add_argument("--older-than", required=True, help="age, e.g. 7d, 12h, 30m")
    clean.add_argument("--queue", help="only this queue")
