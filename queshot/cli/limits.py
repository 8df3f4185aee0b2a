"""Limits from the command line: `queshot limit set|show|remove`. The work is
in `queshot.limits`; this parses and formats."""

from __future__ import annotations

import argparse
import re
from typing import Any

from .. import limits
from ..admin import parse_duration
from ..jobs import LIMIT_KINDS, RATE_WINDOWS, now_ms, queue_path
from . import common, output

_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\S+)\s*$")


def parse_rate(text: str, window: limits.Window = limits.SLIDING) -> limits.Rate:
    """`30/10s`, `100/1m`, `5/2` (seconds): starts per window, of the kind `window`."""
    match = _RATE.match(text)
    if not match:
        raise ValueError(f"not a rate: {text!r} (use starts/window, e.g. 30/10s, 100/1m)")
    length = match.group(2)
    seconds = parse_duration(length if not length[:1].isalpha() else "1" + length)
    return limits.Rate(int(match.group(1)), seconds, window)


def _rate_option(args: argparse.Namespace, kind: str) -> limits.Rate | None:
    """`--rate` (or `--key-rate`) with its `--rate-window`, if given."""
    text, window = getattr(args, kind), getattr(args, f"{kind}_window")
    flag = "--" + kind.replace("_", "-")
    if window is not None and not text:
        raise ValueError(f"{flag}-window needs {flag}: the window of which rate?")
    return parse_rate(text, window or limits.SLIDING) if text else None


def cmd_limit_set(args: argparse.Namespace) -> int:
    values: dict[str, Any] = {
        "concurrency": args.concurrency,
        "key_concurrency": args.key_concurrency,
        "rate": _rate_option(args, "rate"),
        "key_rate": _rate_option(args, "key_rate"),
    }
    if all(value is None for value in values.values()):
        raise ValueError("say what to limit: --concurrency 5, --key-rate 100/1m, ...")
    with common.open_couch(args) as couch:
        limit = limits.set_limit(
            common.database(args, couch),
            limits.Limit(queue_path(common.queue_name(args.queue)), **values),
        )
    print(f"queue {output.escape(limit.name)}: {describe(limit)}")
    return 0


def cmd_limit_show(args: argparse.Namespace) -> int:
    with common.open_couch(args) as couch:
        db = common.database(args, couch)
        found = limits.limits(db)
        in_use = limits.in_use(db, now_ms())
    rows = [
        limit.as_doc() | {"in_use": _in_use_of(limit, in_use, as_text=False)} for limit in found
    ]
    if output.json_or_nothing(args, rows, empty=not found, nothing="no limits"):
        return 0
    for limit in found:
        used = _in_use_of(limit, in_use, as_text=True)
        print(f"{output.escape(limit.name)}: {describe(limit)}; {used}")
    return 0


def cmd_limit_remove(args: argparse.Namespace) -> int:
    with common.open_couch(args) as couch:
        limits.remove_limit(common.database(args, couch), common.queue_name(args.queue))
    print(f"limit of {output.escape(args.queue)} removed")
    return 0


def describe(limit: limits.Limit) -> str:
    """One line: what a limit allows."""
    parts = []
    for kind in LIMIT_KINDS:
        value = getattr(limit, kind)
        if value is None:
            continue
        per_key = " per key" if kind in limits.KEYED_KINDS else ""
        if isinstance(value, limits.Rate):
            fixed = " (fixed windows)" if value.window == limits.FIXED else ""
            parts.append(f"{value.count} starts per {value.seconds:g} s{per_key}{fixed}")
        else:
            parts.append(f"{value} at once{per_key}")
    return ", ".join(parts)


def _in_use_of(
    limit: limits.Limit, in_use: dict[tuple[str, str, str | None], int], *, as_text: bool
) -> Any:
    counts = {
        kind: sum(n for (name, k, _), n in in_use.items() if name == limit.name and k == kind)
        for kind in LIMIT_KINDS
        if getattr(limit, kind) is not None
    }
    if not as_text:
        return counts
    return "tokens held: " + ", ".join(f"{kind} {n}" for kind, n in counts.items())


def add_commands(commands: Any) -> None:
    """limit set|show|remove."""
    parser = commands.add_parser("limit", help="limits across every worker: concurrency, rate")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    set_ = actions.add_parser("set", help="set (replace) a queue's limit")
    common.connection_options(set_)
    set_.add_argument("queue", help="queue name, or a path like api/partner (and those under it)")
    set_.add_argument("--concurrency", type=int, help="jobs running at once, all workers")
    set_.add_argument("--key-concurrency", type=int, help="the same per job limit_key")
    set_.add_argument("--rate", help="job starts per window, e.g. 30/10s, 100/1m")
    set_.add_argument("--key-rate", help="the same per job limit_key")
    for kind in ("rate", "key-rate"):
        set_.add_argument(
            f"--{kind}-window",
            choices=RATE_WINDOWS,
            help=f"how --{kind} counts: in any window of its length (sliding, the default)"
            " or in each one aligned on the clock (fixed: at most 2x across an edge)",
        )
    set_.set_defaults(func=cmd_limit_set)
    show = actions.add_parser("show", help="list the limits and their tokens in use")
    common.connection_options(show)
    show.add_argument("--json", action="store_true", help="JSON for scripts")
    show.set_defaults(func=cmd_limit_show)
    remove = actions.add_parser("remove", aliases=["rm"], help="remove a queue's limit")
    common.connection_options(remove)
    remove.add_argument("queue")
    remove.set_defaults(func=cmd_limit_remove)
