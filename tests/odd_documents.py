"""Documents no reader expects: every field a reader touches (`queshot show`,
`jobs`, `stats`, `workers`, `schedules`, `limit show`, `/metrics`, the
dashboard, a worker's limits) holding the wrong type, a huge or tiny number,
null, unicode, control characters.

Two forms of one generator: `odd_jobs()` / `odd_workers()` /
`odd_schedules()` / `odd_limits()` / `odd_tokens()` list documents to
store on a server (each field in turn given each odd value, on an otherwise
sound document), and the hypothesis
strategies (`odd_job`, ...) draw any mix of them for the pure rendering
functions. Written to a database before `queshot push` installs the rules,
which would refuse most of them: readers must survive what was stored before.
"""

from __future__ import annotations

import copy
import sys
from typing import Any

from hypothesis import strategies as st

from queshot.jobs import LIMIT_DOC_PREFIX, LIMIT_TYPE, TOKEN_TYPE, now_ms
from queshot.limits import token_id

NOW = now_ms()
TERMINAL_TRICKS = [
    "\x1b[2J\x1b[H",  # clear the screen, cursor home
    "\x1b]0;owned\x07",  # set the window title
    "line\rover",
    "bell\x07",
    "\x9b31m",  # C1 CSI
    "\u202eevil\u202c",  # bidi override
    "\u2066isolate\u2069",
    "\x00nul",
    "a\u2028b",
]
ODD_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    5,
    2**53 + 1,
    10**30,
    1e308,
    -1e308,
    5e-324,
    0.5,
    "",
    "x",
    "日本語 ✓",
    *TERMINAL_TRICKS,
    [],
    [5],
    [["a"], 5],
    ["a", ""],
    [None],
    {},
    {"a": {"b": [1, {"c": None}]}},
    {"message": 5, "type": [], "traceback": 5, "attempt": "x"},
    [{"at": 1e308, "msg": "\x1b[2J"}, {"at": "x"}, 5, None, {"msg": {}}],
]

HUGE_QUEUE_JOB = "odd-job-huge-queue"
DEEP_JOB = "odd-job-deep"
TRICKS_JOB = "odd-job-tricks"
JOB_FIELDS = (
    "queues",
    "state",
    "priority",
    "attempts",
    "max_attempts",
    "progress",
    "worker_id",
    "lease_expires_at",
    "lease_seconds",
    "run_at",
    "created_at",
    "claimed_at",
    "completed_at",
    "failed_at",
    "cancelled_at",
    "cancel_requested_at",
    "stalls",
    "max_stalls",
    "timeout",
    "task",
    "args",
    "kwargs",
    "data",
    "result",
    "depends_on",
    "waiting_for",
    "log",
    "error",
    "errors",
)
WORKER_FIELDS = (
    "worker_id",
    "name",
    "host",
    "pid",
    "queues",
    "concurrency",
    "jobs",
    "paused",
    "last_seen",
    "lease_seconds",
    "user",
)
SCHEDULE_FIELDS = (
    "cron",
    "every",
    "timezone",
    "queue",
    "task",
    "args",
    "kwargs",
    "data",
    "enabled",
    "enabled_at",
    "catch_up",
    "priority",
)

LIMIT_FIELDS = ("queue", "concurrency", "key_concurrency", "rate", "key_rate")
LIMITED_PARENT = "odd-limits"  # each odd limit is on a queue of its own under it
TOKEN_FIELDS = (
    "limit",
    "kind",
    "key",
    "slot",
    "state",
    "worker_id",
    "job",
    "taken_at",
    "lease_expires_at",
    "free_at",
)


def sound_job(number: int, state: str = "failed") -> dict[str, Any]:
    return {
        "_id": f"odd-job-{number:04d}",
        "queues": "odd",
        "state": state,
        "worker_id": None,
        "priority": 0,
        "log": [{"at": NOW, "msg": "started"}],
        "data": {"n": number},
        "created_at": NOW - 60_000,
        "failed_at": NOW - 1_000,
        "attempts": 1,
        "max_attempts": 1,
        "progress": 0,
        "error": {"type": "RuntimeError", "message": "boom", "traceback": "Trace\n  line"},
    }


def _each_field_odd(fields: tuple[str, ...], base: Any, start: int = 0) -> list[dict[str, Any]]:
    docs = []
    number = start
    for name in fields:
        for value in ODD_VALUES:
            doc = base(number)
            doc[name] = copy.deepcopy(value)
            docs.append(doc)
            number += 1
    return docs


def odd_jobs() -> list[dict[str, Any]]:
    """One job per (field, odd value); then a few that are odd everywhere:
    a 100,000-character queue name, data nested 1,200 deep, a log line and
    an error message made of terminal escape sequences."""
    docs = _each_field_odd(JOB_FIELDS, sound_job)
    for state in ("inactive", "active", "complete", "blocked", "cancelled"):
        docs.append(sound_job(len(docs), state))
    huge_queue = {**sound_job(0, "inactive"), "_id": HUGE_QUEUE_JOB, "queues": "q" * 100_000}
    deep = {**sound_job(0, "inactive"), "_id": DEEP_JOB, "data": nested(1_200)}
    tricks = {**sound_job(0), "_id": TRICKS_JOB}
    tricks["log"] = [{"at": NOW, "msg": trick} for trick in TERMINAL_TRICKS]
    tricks["error"] = dict(tricks["error"])
    tricks["error"]["message"] = "".join(TERMINAL_TRICKS)
    tricks["error"]["traceback"] = "\n".join(TERMINAL_TRICKS)
    tricks["queues"] = ["odd", "\x1b[31mred\u202e"]
    nothing = {"_id": "odd-job-nothing", "state": None}
    return [*docs, huge_queue, deep, tricks, nothing]


def nested(depth: int) -> Any:
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


def sound_worker(number: int) -> dict[str, Any]:
    return {
        "_id": f"queshot-worker:odd-{number:04d}",
        "type": "queshot_worker",
        "worker_id": f"odd-{number:04d}",
        "name": f"odd-{number:04d}",
        "host": "h",
        "pid": 1,
        "queues": "odd",
        "concurrency": 1,
        "jobs": [],
        "last_seen": NOW,
        "lease_seconds": 60,
    }


def odd_workers() -> list[dict[str, Any]]:
    return _each_field_odd(WORKER_FIELDS, sound_worker)


def sound_schedule(number: int) -> dict[str, Any]:
    return {
        "_id": f"queshot-schedule:odd-{number:04d}",
        "type": "queshot_schedule",
        "queue": "odd",
        "every": 300,
        "enabled": True,
        "enabled_at": NOW,
    }


def odd_schedules() -> list[dict[str, Any]]:
    return _each_field_odd(SCHEDULE_FIELDS, sound_schedule)


def sound_limit(number: int) -> dict[str, Any]:
    queue = [LIMITED_PARENT, f"{number:04d}"]
    return {
        "_id": LIMIT_DOC_PREFIX + "/".join(queue),
        "type": LIMIT_TYPE,
        "queue": queue,
        "concurrency": 2,
        "rate": {"count": 100, "seconds": 1},
    }


def odd_limits() -> list[dict[str, Any]]:
    return _each_field_odd(LIMIT_FIELDS, sound_limit)


def sound_token(number: int) -> dict[str, Any]:
    """A token of a limit no job runs under (held ones would hold jobs back)."""
    return {
        "_id": token_id("odd-tokens", "concurrency", None, number),
        "type": TOKEN_TYPE,
        "limit": "odd-tokens",
        "kind": "concurrency",
        "key": None,
        "slot": number,
        "state": "active",
        "worker_id": "odd-worker",
        "job": "odd-job",
        "taken_at": NOW,
        "lease_expires_at": NOW + 3_600_000,
    }


def odd_tokens() -> list[dict[str, Any]]:
    return _each_field_odd(TOKEN_FIELDS, sound_token)


ODD_PAUSES = [5, None, {"queue": 5}, {"queue": [["a"]]}, {"queue": "odd"}, {"queue": ["odd"]}]


# -- the same, drawn by hypothesis ------------------------------------------------------

odd_text = st.text(
    alphabet=st.characters(codec=None, exclude_categories=()), max_size=30
) | st.sampled_from(TERMINAL_TRICKS)
odd_number = st.integers(min_value=-(2**70), max_value=2**70) | st.floats(
    allow_nan=False, allow_infinity=False
)
odd_scalar = st.none() | st.booleans() | odd_number | odd_text
odd_value = st.recursive(
    odd_scalar,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(odd_text, inner, max_size=4),
    max_leaves=12,
)


def _odd_doc(fields: tuple[str, ...], sound: dict[str, Any]) -> st.SearchStrategy[dict]:
    return st.fixed_dictionaries({}, optional={name: odd_value for name in fields}).map(
        lambda odd: {**sound, **odd}
    )


odd_job = _odd_doc(JOB_FIELDS, sound_job(0))
odd_worker = _odd_doc(WORKER_FIELDS, sound_worker(0))
odd_schedule = _odd_doc(SCHEDULE_FIELDS, sound_schedule(0))


def odd_job_id(field: str, value: Any) -> str:
    """The id `odd_jobs()` gives the job whose `field` holds `value`."""
    return f"odd-job-{JOB_FIELDS.index(field) * len(ODD_VALUES) + ODD_VALUES.index(value):04d}"


def odd_worker_name(field: str, value: Any) -> str:
    return f"odd-{WORKER_FIELDS.index(field) * len(ODD_VALUES) + ODD_VALUES.index(value):04d}"


def store_before_rules(db: Any) -> list[dict[str, Any]]:
    """Write every odd document (and odd pauses in a bare `_design/queshot`)
    into `db`, which has no rules yet; returns the jobs."""
    jobs = odd_jobs()
    docs = [*jobs, *odd_workers(), *odd_schedules(), *odd_limits(), *odd_tokens()]
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(5_000)  # to write what Python then cannot read back
    try:
        for start in range(0, len(docs), 200):
            results = db.bulk_docs(docs[start : start + 200])
            assert not [r for r in results if "error" in r], results
    finally:
        sys.setrecursionlimit(limit)
    db.save({"_id": "_design/queshot", "paused_queues": ODD_PAUSES})
    return jobs
