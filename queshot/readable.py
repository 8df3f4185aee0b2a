"""How stored values read to people, whatever a document holds: a queue as
"email/welcome" (by `jobs.queue_path`'s one rule), and a value that is not
what its field should hold as `<not a queue: 5>`. Shared by the CLI's
output, the admin reports and the Prometheus labels; no terminal escaping
here (that is `cli/output.py`'s)."""

from __future__ import annotations

import json
from typing import Any

from .jobs import QueueError, queue_path, worker_queue_paths

SHOWN_VALUE_CHARS = 60  # of a value shown as what it is not


def not_a(what: str, value: Any) -> str:
    """How a stored value that is not what its field should hold is shown:
    `<not a time: 1e+308>` (compact JSON, cut at SHOWN_VALUE_CHARS)."""
    try:
        shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        shown = type(value).__name__
    if len(shown) > SHOWN_VALUE_CHARS:
        shown = shown[:SHOWN_VALUE_CHARS] + "..."
    return f"<not {what}: {shown}>"


def path_or_none(queues: Any) -> list[str] | None:
    """A job's `queues` field as its path (`jobs.queue_path`'s rule), or None
    if it is not a queue at all (a number, an empty name, a list of lists)."""
    if not isinstance(queues, str | list):
        return None
    try:
        return queue_path(queues)
    except QueueError:
        return None


def queue_label(queues: Any) -> str:
    """A job's queue as people read it: "email/welcome"."""
    path = path_or_none(queues)
    return not_a("a queue", queues) if path is None else "/".join(path)


def worker_queues_label(queues: Any) -> str:
    """A worker's queues (`jobs.worker_queue_paths`) as people read them: "high, default"."""
    try:
        paths = worker_queue_paths(queues)
    except (QueueError, TypeError):
        return not_a("a queue", queues)
    return ", ".join("/".join(path) for path in paths)


def key_text(value: Any) -> str:
    """A JSON value as a key that tells values apart (sorted, compact)."""
    try:
        return json.dumps(value, sort_keys=True)
    except (TypeError, ValueError, RecursionError):
        return type(value).__name__
