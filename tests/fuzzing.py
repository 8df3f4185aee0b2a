"""What the fuzzer writes, and what it may never see stored: generated
documents and edits as a producer, a worker account or an admin would send
them (random JSON shapes, extreme numbers, deep nesting, huge strings, wrong
types in every field, odd ids), and the invariants a stored document keeps
whoever wrote it. Used by tests/test_fuzz.py against a server and against
the rendered validate_doc_update in QuickJS."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

from queshot import jobs
from queshot.jobs import DEFAULTS, STATES

MAX_JOB_CHARS: int = DEFAULTS["max_job_chars"]
MAX_DEPTH: int = DEFAULTS["max_depth"]

# Fields that only the queue's handlers (or a queue admin) may put on a job.
SERVER_OWNED = (
    "result",
    "error",
    "errors",
    "completed_at",
    "failed_at",
    "cancelled_at",
    "claimed_at",
    "lease_expires_at",
    "cancel_requested_at",
    "dependency_results",
    "worker_user",
    "arrived_at",
)
# What nobody but a queue admin may change on a job, once it exists.
PROTECTED = ("queues", "priority", "created_at", "data", "task", "args", "kwargs")
JOB_FIELDS = (
    *PROTECTED,
    *SERVER_OWNED,
    "state",
    "worker_id",
    "log",
    "progress",
    "attempts",
    "max_attempts",
    "run_at",
    "lease_seconds",
    "timeout",
    "backoff_seconds",
    "stalls",
    "max_stalls",
    "depends_on",
    "waiting_for",
    "on_dependency_failure",
    "schedule",
    "slot",
    "type",
)
OTHER_FIELDS = ("name", "last_seen", "queue", "cron", "every", "jobs", "enabled", "timezone")
HANDLERS = (
    "claim",
    "heartbeat",
    "log",
    "progress",
    "complete",
    "fail",
    "release",
    "expire",
    "requeue",
    "cancel",
    "resolve",
    "unclaimable",
    "arrive",
    "pause",
)
# Handlers a worker account may legitimately call on any waiting job: the
# fuzzer keeps them off the normal jobs, whose exactly-once run it counts.
TAKES_A_JOB = ("claim", "unclaimable")

ODD_NUMBERS = (
    0,
    -1,
    1,
    0.05,
    0.5,
    1.5,
    99,
    2**31,
    2**53 + 1,
    -(2**63),
    1e15,
    1e306,
    -1e306,
    1e308,
    -1e308,
    253402300800000,
    -0.0,
)
ODD_TEXTS = (
    "",
    " ",
    "a/b",
    "/",
    "//",
    "\x1b[2J\x1b[H",
    "\x1b]0;title\x07",
    "\r\n",
    "\u202e",
    "\x00",
    "💥",
    "_design/x",
    "inactive",
    "active",
    "complete",
    "queshot-worker:x",
    "queshot-schedule:x",
    "0001",
    "null",
    "NaN",
)
ODD_IDS = (
    "_security",
    "_local/x",
    "_design",
    "_x",
    "a/b",
    "a?b",
    "a#b",
    "a b",
    "ü🦆",
    "queshot-slot:nightly:1700000000000",
    "queshot-slot:x",
    "queshot-worker:ghost",
    "queshot-schedule:evil",
    "queshot-schedule:Bad Name",
    "%2F",
    "..",
    ".",
)


def _nested(depth: int) -> Any:
    value: Any = "bottom"
    for level in range(depth):
        value = [value] if level % 2 else {"d": value}
    return value


texts = st.text(max_size=20) | st.sampled_from(ODD_TEXTS)
numbers = (
    st.sampled_from(ODD_NUMBERS) | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
)
scalars = st.none() | st.booleans() | numbers | texts
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=12,
)
deep_values = st.sampled_from((MAX_DEPTH - 2, MAX_DEPTH, MAX_DEPTH + 1, 300, 900)).map(_nested)
# Rare, because each costs the server a megabyte or two to read and refuse.
huge_strings = st.sampled_from((20_000, MAX_JOB_CHARS // 2 + 10, MAX_JOB_CHARS + 10)).map(
    lambda n: "x" * n
)
shaped = st.sampled_from(
    (
        ["work"],
        "work",
        "a/b",
        ["a", "b"],
        [["a"], 5],
        [""],
        ["x"] * 2000,
        "q" * 100_000,
        {"$gt": None},
        [{"at": 1, "msg": "\x1b[2J"}],
        [{"at": 1e308, "msg": 5}],
        {"message": "boom", "traceback": 5, "type": None},
    )
)
# Values the rules accept but readers may not expect: the edges of each range.
_edges = st.sampled_from
edge_values = {
    "priority": _edges((jobs.MAX_PRIORITY, -jobs.MAX_PRIORITY, 0)),
    "created_at": _edges((0, 1, jobs.MAX_EPOCH_MS)),
    "run_at": _edges((0, jobs.MAX_EPOCH_MS, 1.5)),
    "lease_seconds": _edges((jobs.MIN_LEASE_SECONDS, jobs.MAX_LEASE_SECONDS, 1.25)),
    "timeout": _edges((0.001, jobs.MAX_TIMEOUT_SECONDS)),
    "max_attempts": _edges((1, jobs.MAX_ATTEMPTS_BOUND)),
    "max_stalls": _edges((0, jobs.MAX_STALLS_BOUND)),
    "backoff_seconds": _edges((0, jobs.MAX_BACKOFF_SECONDS_BOUND)),
    "progress": _edges((0, 100, 33.333)),
    "queues": _edges(
        (
            ["q" * jobs.MAX_QUEUE_PART_CHARS] * jobs.MAX_QUEUE_PARTS,
            "\x1b[2J/\u202e/💥",
            "a b/c",
        )
    ),
    "data": st.one_of(
        _edges((_nested(jobs.MAX_DEPTH - 2), "x" * (jobs.MAX_NEW_JOB_CHARS - 1000), None, 5)),
        json_values,
    ),
    "log": _edges((["\x1b[2J\x1b[Hcleared", "\r\x07"], [], ["x" * 5000])),
    "task": _edges(("\x1b[31mred", "a" * 2000, "pkg.mod:fn")),
    "args": st.lists(json_values, max_size=3),
    "kwargs": st.dictionaries(texts, json_values, max_size=3),
    "depends_on": st.lists(texts.filter(bool), max_size=3),
    "last_seen": _edges((0, 1, 1e12)),
    "name": texts,
    "jobs": json_values,
}
field_values = st.one_of(
    scalars,
    scalars,
    json_values,
    json_values,
    shaped,
    shaped,
    st.sampled_from(STATES),
    deep_values,
    huge_strings,
)
ids = st.none() | st.sampled_from(ODD_IDS) | texts.filter(lambda s: not s.startswith("_design"))
queues = st.sampled_from(("work", "work", "other", "a/b", ["a", "b"], ["work", "sub"]))


def base_job(now: int, queue: Any) -> dict[str, Any]:
    """The seed's createJob document: what a producer normally writes."""
    return {
        "queues": queue,
        "state": "inactive",
        "worker_id": None,
        "priority": 0,
        "log": [],
        "data": {},
        "created_at": now,
    }


@st.composite
def documents(draw: Any, now: int) -> dict[str, Any]:
    """A document any role might store: mostly a job with a few fields set to
    odd values, else a status document, a schedule, a slot job or any dict."""
    kinds = ("edge", "edge", "job", "job", "job", "status", "schedule", "slot", "any")
    kind = draw(st.sampled_from(kinds))
    if kind == "edge":  # likely stored: only values at the edges of what the rules accept
        doc = base_job(now, draw(queues))
        for field in draw(st.lists(st.sampled_from(sorted(edge_values)), max_size=3)):
            doc[field] = draw(edge_values[field])
        return doc
    if kind == "job":
        doc = base_job(now, draw(queues))
    elif kind == "status":
        doc = {
            "_id": "queshot-worker:" + draw(texts),
            "type": DEFAULTS["worker_type"],
            "name": "ghost",
            "last_seen": now,
            "queues": draw(queues),
        }
    elif kind == "schedule":
        doc = {
            "_id": "queshot-schedule:" + draw(texts),
            "type": DEFAULTS["schedule_type"],
            "every": 3600,
            "queue": "elsewhere",
            "enabled": False,
        }
    elif kind == "slot":
        doc = {
            **base_job(now, "elsewhere"),
            "_id": "queshot-slot:nightly:1700000000000",
            "schedule": "queshot-schedule:nightly",
            "slot": 1700000000000,
        }
    else:
        doc = draw(st.dictionaries(texts, json_values, max_size=5))
    fields = st.sampled_from(JOB_FIELDS + OTHER_FIELDS) | texts
    for field in draw(st.lists(fields, max_size=4)):
        doc[field] = draw(value_for(field))
    doc_id = draw(ids)
    if doc_id is not None and "_id" not in doc:
        doc["_id"] = doc_id
    return doc


def value_for(field: str) -> st.SearchStrategy[Any]:
    """An odd value for `field`: half the time one its rule accepts, at an edge."""
    edge = edge_values.get(field)
    return field_values if edge is None else st.one_of(edge, field_values)


edit_specs = st.lists(
    st.sampled_from(JOB_FIELDS + OTHER_FIELDS).flatmap(
        lambda field: st.tuples(st.just(field), st.booleans(), value_for(field))
    ),
    min_size=1,
    max_size=3,
)


def edited(doc: dict[str, Any], spec: list[tuple[str, bool, Any]]) -> dict[str, Any]:
    """`doc` with the fields of an `edit_specs` draw set to odd values, or dropped."""
    new = json.loads(json.dumps(doc))
    for field, keep, value in spec:
        if keep:
            new[field] = value
        else:
            new.pop(field, None)
    return new


handler_bodies = st.fixed_dictionaries(
    {},
    optional={
        "worker_id": texts,
        "rev": texts,
        "result": json_values,
        "error": json_values,
        "msg": texts | json_values,
        "progress": numbers | texts,
        "dependency": texts,
        "state": st.sampled_from(STATES) | texts,
        "queue": queues | json_values,
        "paused": st.booleans() | json_values,
        "lease_seconds": numbers,
        "reason": texts,
    },
)


def depth(value: Any) -> int:
    """How deeply `value` nests (a scalar: 0), without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        if isinstance(node, dict):
            stack.extend((child, level + 1) for child in node.values())
        elif isinstance(node, list):
            stack.extend((child, level + 1) for child in node)
    return deepest


def stored_problem(doc: dict[str, Any]) -> str | None:
    """What no stored queue document may be, whoever wrote it."""
    if doc.get("_id", "").startswith("_design/"):
        return None
    size = len(json.dumps(doc, ensure_ascii=False))
    if size > MAX_JOB_CHARS:
        return f"{size} characters stored, over {MAX_JOB_CHARS}"
    if depth(doc) > MAX_DEPTH:
        return f"nested {depth(doc)} deep, over {MAX_DEPTH}"
    return None


def created_problem(doc: dict[str, Any]) -> str | None:
    """What a producer's (or worker account's) new job may never carry."""
    if doc.get("type") in (DEFAULTS["worker_type"], DEFAULTS["schedule_type"]):
        return None
    if doc.get("state") not in ("inactive", "blocked"):
        return f"created in state {doc.get('state')!r}"
    for field in SERVER_OWNED:
        if doc.get(field) not in (None, [], {}):
            return f"created with server-owned {field!r}"
    if doc.get("worker_id") is not None:
        return "created with a worker_id"
    if isinstance(doc.get("attempts"), (int, float)) and doc["attempts"] > 0:
        return "created with attempts > 0"
    if doc.get("log"):
        return "created with log lines"
    return None


def edited_problem(old: dict[str, Any], new: dict[str, Any], user: str, now: float) -> str | None:
    """What a worker account's write of an existing job may never do, `now`
    (epoch ms) being when it was sent: change what only admins change, move
    a job another account holds before its deadline, hold a job for another."""
    if old.get("type") is not None or new.get("type") is not None:
        return None
    changed = [f for f in PROTECTED if json.dumps(old.get(f)) != json.dumps(new.get(f))]
    if changed:
        return f"changed {changed}"
    holder = old.get("worker_user")
    if old.get("state") == "active" and holder not in (None, user):
        ends = [old.get("lease_expires_at")]
        if isinstance(old.get("timeout"), (int, float)) and old.get("claimed_at"):
            ends.append(old["claimed_at"] + old["timeout"] * 1000)
        deadline = min((e for e in ends if isinstance(e, (int, float))), default=0)
        if deadline > now + 1000:
            return f"wrote a job {holder!r} holds, {deadline - now:.0f} ms before its deadline"
    if new.get("state") == "active" and new.get("worker_user") != user:
        return f"holds a job for {new.get('worker_user')!r}"
    return None
