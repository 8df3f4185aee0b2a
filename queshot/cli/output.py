"""Output for people: ages, times, tables; JSON for scripts.

Everything printed for people goes through `text`, which turns any value
into one safe line: a stored document may hold anything (documents written
before the design docs' rules, or by hand), so a value that is not what the
field should hold is shown as such (`<not a time: 1e+308>`), and a character
a terminal would act on (escape sequences, carriage returns, bidi overrides)
is shown escaped. `--json` output is exact JSON (its escaping is JSON's own).
"""

from __future__ import annotations

import argparse
import json
import math
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .. import readable
from ..jobs import now_ms

# A table cell longer than this is cut (a queue name may be 100,000 characters).
MAX_CELL_CHARS = 120


def bar(done: int, total: int, width: int = 20) -> str:
    filled = width * done // total if total else width
    return "#" * filled + "." * (width - filled)


def counted(n: int, noun: str) -> str:
    """A count with its noun: "1 job", "3 jobs" (the dashboard's `counted` too)."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=lambda o: o.__dict__))


def escape(text: str) -> str:
    """`text` with every character a terminal could act on or hide behind
    (what Python's str.isprintable refuses: C0/C1 controls, DEL, bidi
    overrides and other format characters, line separators, lone surrogates)
    written as a Python escape; a space stays."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c == " " else _escaped(c) for c in text)


def escape_lines(text: str) -> str:
    """`escape` line by line, keeping the line breaks (a multi-line message)."""
    return "\n".join(escape(line) for line in text.split("\n"))


def _escaped(char: str) -> str:
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def text(value: Any) -> str:
    """Any value as one safe line: a string as it is (escaped), a number as
    Python writes it, anything else as compact JSON."""
    if isinstance(value, str):
        return escape(value)
    if is_number(value):
        return str(value)
    return escape(_json(value))


def _json(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        return f"<{type(value).__name__} that JSON cannot show>"


def not_a(what: str, value: Any) -> str:
    """How a value that is not what its field should hold is shown:
    `<not a time: 1e+308>` (`readable.not_a`), escaped."""
    return escape(readable.not_a(what, value))


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def age(ms: Any) -> str:
    """A duration for humans: 45s, 12m 5s, 3h 20m, 2d 4h ("?" if not a number)."""
    if not is_number(ms) or math.isnan(ms) or math.isinf(ms):
        return "?"
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


def local_time(ms: Any, form: str = "%Y-%m-%d %H:%M:%S") -> str | None:
    """An epoch-ms time in local time, or None if it is not one Python can show."""
    if not is_number(ms):
        return None
    try:
        return datetime.fromtimestamp(ms / 1000).strftime(form)
    except (OverflowError, OSError, ValueError):
        return None


def when(ms: Any) -> str:
    """A time and how far it is: "2030-01-31 09:00:00 (in 2d 4h)"; "-" if unset."""
    if ms is None:
        return "-"
    stamp = local_time(ms)
    if stamp is None:
        return not_a("a time", ms)
    delta = ms - now_ms()
    return f"{stamp} (in {age(delta)})" if delta > 0 else f"{stamp} ({age(-delta)} ago)"


def zoned_when(ms: Any, zone: str) -> str:
    """A time in a named zone, labelled, and how far it is:
    "2030-01-31 09:00 Europe/Riga (in 2d 4h)"; "-" if unset."""
    if ms is None:
        return "-"
    try:
        stamp = datetime.fromtimestamp(ms / 1000, ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M:%S")
    except (TypeError, OverflowError, OSError, ValueError, ZoneInfoNotFoundError):
        return when(ms)  # the zone is checked before: only a time Python cannot show
    delta = ms - now_ms()
    return f"{stamp} {zone} " + (f"(in {age(delta)})" if delta > 0 else f"({age(-delta)} ago)")


def ago(ms: Any, now: int) -> str:
    """How long ago an epoch-ms time was: "12m 5s ago"."""
    if local_time(ms) is None:
        return not_a("a time", ms)
    return f"{age(now - ms)} ago"


def queue_text(queues: Any) -> str:
    """A job's queue as people read it ("email/welcome")."""
    return escape(readable.queue_label(queues))


def worker_queues_text(queues: Any) -> str:
    """A worker's queue, or its several queues in order ("high, default")."""
    return escape(readable.worker_queues_label(queues))


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


def cell(value: Any) -> str:
    """A table cell: `text`, cut at MAX_CELL_CHARS (saying how long it was)."""
    shown = text(value)
    if len(shown) <= MAX_CELL_CHARS:
        return shown
    return f"{shown[:MAX_CELL_CHARS]}... ({len(shown)} chars)"


def table_lines(headers: list[str], rows: list[list[Any]]) -> list[str]:
    """Aligned columns of `cell`s (escaping what is escaped already changes nothing)."""
    cells = [headers, *[[cell(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]


def table(headers: list[str], rows: list[list[Any]]) -> None:
    print("\n".join(table_lines(headers, rows)))


def stalls_text(doc: dict[str, Any]) -> str:
    """How often the job was taken back from a worker that stopped renewing its lease."""
    limit = doc.get("max_stalls")
    return text(doc.get("stalls") or 0) + ("" if limit is None else f" of {text(limit)} allowed")
