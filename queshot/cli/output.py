"""Output for people: ages, times, tables; JSON for scripts."""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from typing import Any

from ..jobs import now_ms


def bar(done: int, total: int, width: int = 20) -> str:
    filled = width * done // total if total else width
    return "#" * filled + "." * (width - filled)


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=lambda o: o.__dict__))


def age(ms: float) -> str:
    """A duration for humans: 45s, 12m 5s, 3h 20m, 2d 4h."""
    seconds = int(max(0, ms) // 1000)
    for big, big_size, small, small_size in (
        ("d", 86400, "h", 3600),
        ("h", 3600, "m", 60),
        ("m", 60, "s", 1),
    ):
        if seconds >= big_size:
            rest = seconds % big_size // small_size
            return f"{seconds // big_size}{big}" + (f" {rest}{small}" if rest else "")
    return f"{seconds}s"


def when(ms: Any) -> str:
    if not isinstance(ms, int | float):
        return "-"
    stamp = datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S")
    delta = ms - now_ms()
    return f"{stamp} (in {age(delta)})" if delta > 0 else f"{stamp} ({age(-delta)} ago)"


def queue_text(queues: Any) -> str:
    """A queue name or path ("email/welcome"), or a worker's several queues
    in order ("high, default": a list of paths, see `jobs.worker_queues`)."""
    if not isinstance(queues, list):
        return str(queues)
    if any(isinstance(q, list) for q in queues):
        return ", ".join(map(queue_text, queues))
    return "/".join(map(str, queues))


def json_or_nothing(args: argparse.Namespace, result: Any, *, empty: bool, nothing: str) -> bool:
    """Print `result` as JSON (--json), or `nothing` when there is nothing to
    list; whether it did, i.e. the command's output is complete."""
    if args.json:
        print_json(result)
    elif empty:
        print(nothing)
    else:
        return False
    return True


def table(headers: list[str], rows: list[list[Any]]) -> None:
    cells = [headers, *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def stalls_text(doc: dict[str, Any]) -> str:
    """How often the job was taken back from a worker that stopped renewing its lease."""
    limit = doc.get("max_stalls")
    return f"{doc.get('stalls') or 0}" + ("" if limit is None else f" of {limit} allowed")
