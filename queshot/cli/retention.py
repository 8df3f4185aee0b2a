"""Retention rules from the command line: `queshot retention set|show|remove|
apply`. The work is in `queshot.retention`; this parses and formats."""

from __future__ import annotations

import argparse
from typing import Any

from .. import retention
from ..admin import parse_duration
from ..jobs import FINISHED_STATES
from . import common, output


def _keep(age: str | None, count: int | None) -> retention.Keep | None:
    if age is None and count is None:
        return None
    return retention.Keep(None if age is None else parse_duration(age), count)


def cmd_retention_set(args: argparse.Namespace) -> int:
    keep = {
        state: rule
        for state in FINISHED_STATES
        if (rule := _keep(getattr(args, f"{state}_age"), getattr(args, f"{state}_count")))
    }
    if not keep:
        raise ValueError("say what to keep: --complete-age 7d, --failed-count 1000, ...")
    with common.open_couch(args) as couch:
        rule = retention.set_rule(
            common.database(args, couch), common.queue_name(args.queue), **keep
        )
    print(f"queue {output.escape('/'.join(rule.queue))}: {_describe(rule)}")
    return 0


def cmd_retention_show(args: argparse.Namespace) -> int:
    with common.open_couch(args) as couch:
        found = retention.rules(common.database(args, couch))
    docs = [rule.as_doc() for rule in found]
    if output.json_or_nothing(
        args, docs, empty=not found, nothing="no retention rules: finished jobs are kept"
    ):
        return 0
    for rule in found:
        print(f"{output.escape('/'.join(rule.queue))}: {_describe(rule)}")
    return 0


def cmd_retention_remove(args: argparse.Namespace) -> int:
    with common.open_couch(args) as couch:
        retention.remove_rule(common.database(args, couch), common.queue_name(args.queue))
    print(f"retention rule of {output.escape(args.queue)} removed: its finished jobs are kept")
    return 0


def cmd_retention_apply(args: argparse.Namespace) -> int:
    with common.open_couch(args) as couch:
        done = retention.apply(common.database(args, couch), budget=args.budget, purge=args.purge)
    print(
        f"removed {done.removed} finished jobs" + (" (more left: run again)" if done.more else "")
    )
    for reason in done.refused:
        print(f"not removed: {output.escape(reason)}")
    return 1 if done.refused else 0


def _describe(rule: retention.Rule) -> str:
    parts = []
    for state in FINISHED_STATES:
        keep = rule.keep.get(state)
        if keep is None:
            parts.append(f"{state} kept")
            continue
        limits = ([f"for {output.age(keep.age * 1000)}"] if keep.age is not None else []) + (
            [f"the newest {keep.count:,}"] if keep.count is not None else []
        )
        parts.append(f"{state} kept {' and '.join(limits)}")
    return "; ".join(parts)


def add_commands(commands: Any) -> None:
    """retention set|show|remove|apply."""
    parser = commands.add_parser("retention", help="how long finished jobs of a queue are kept")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    set_ = actions.add_parser("set", help="set (replace) a queue's retention rule")
    common.connection_options(set_)
    set_.add_argument("queue", help="queue name, or a path like email/welcome (and those under it)")
    for state in FINISHED_STATES:
        set_.add_argument(
            f"--{state}-age", metavar="AGE", help=f"keep {state} jobs this long (90s, 12h, 7d)"
        )
        set_.add_argument(
            f"--{state}-count", metavar="N", type=int, help=f"keep the newest N {state} jobs"
        )
    set_.set_defaults(func=cmd_retention_set)
    show = actions.add_parser("show", help="list the retention rules")
    common.connection_options(show)
    show.add_argument("--json", action="store_true", help="JSON for scripts")
    show.set_defaults(func=cmd_retention_show)
    remove = actions.add_parser("remove", aliases=["rm"], help="remove a queue's rule (keep all)")
    common.connection_options(remove)
    remove.add_argument("queue")
    remove.set_defaults(func=cmd_retention_remove)
    apply = actions.add_parser("apply", help="remove now what the rules no longer keep")
    common.connection_options(apply)
    apply.add_argument("--budget", type=int, default=retention.BUDGET, help="jobs at most")
    apply.add_argument(
        "--purge",
        action="store_true",
        help="also _purge their tombstones (Apache CouchDB 3, a database admin)",
    )
    apply.set_defaults(func=cmd_retention_apply)
