"""Who may make which write: the one list that the README's Roles table is
rendered from and that tests/test_roles.py runs, as each role, through the
rendered design doc in QuickJS and (with COUCHDB_BIN) on Apache CouchDB, so
that the two cannot drift.

A write is one or more scenarios, each a stored document (`old`, written by
a server admin first) and what the writer does to it: an update handler's
call, a PUT of a new revision, or a DELETE. Documents are built for the
writer's user name: "a job it holds" is a job claimed by that account."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from queshot import history
from queshot.jobs import CREATION_FIELDS, MAX_DEPTH, MAX_LAST_SEEN_AHEAD_MS, now_ms

ROLES = ("producer", "worker", "queue admin", "database admin", "server admin")
ROLE_TEXT = {  # the README's column heads
    "producer": "`queshot_producer`",
    "worker": "`queshot_worker`",
    "queue admin": "`queshot_admin`",
    "database admin": "database admin",
    "server admin": "server admin",
}
ADMINS = ("queue admin", "database admin", "server admin")
WORKERS = ("worker", *ADMINS)
EVERYONE = ("producer", *WORKERS)
OTHER = "someone-else"  # another account, holding jobs and writing status documents
NOW = now_ms()  # every scenario's documents are built alike: an old and a new one differ
# only where the write changes them

Doc = dict[str, Any]


@dataclass(frozen=True)
class Scenario:
    """One write: on `old` (None: nothing stored), call `handler` with `body`,
    PUT `new` (the stored revision's _rev added), or DELETE (`delete`)."""

    old: Callable[[str], Doc | None]
    new: Callable[[str], Doc] | None = None
    handler: str | None = None
    body: Callable[[str], Doc] | None = None
    delete: bool = False
    on: str | None = None  # the handler's document, when it is not `old` (a design doc)


@dataclass(frozen=True)
class Write:
    what: str  # the README's words
    allowed: tuple[str, ...]
    scenarios: tuple[Scenario, ...]
    note: str = ""
    by_couchdb: bool = False  # decided by CouchDB before any rule (design documents)


def job(**fields: Any) -> Doc:
    doc: Doc = {
        "_id": "j1",
        "queues": "email",
        "state": "inactive",
        "worker_id": None,
        "priority": 0,
        "log": [],
        "data": {"to": "ada@example.org"},
        "created_at": NOW - 60_000,
        "attempts": 0,
        "max_attempts": 3,
        "progress": 0,
    }
    doc.update(fields)
    return doc


def held(by: str, **fields: Any) -> Doc:
    claim = {"worker_id": f"w-{by}", "worker_user": by, "claimed_at": NOW, "attempts": 1}
    return job(**{"state": "active", "lease_expires_at": NOW + 3_600_000, **claim, **fields})


def overdue(by: str) -> Doc:
    return held(by, claimed_at=1, lease_expires_at=2)


def skewed(**fields: Any) -> Doc:
    """A waiting job from a producer whose clock is a day behind the server's."""
    return job(created_at=NOW - 86_400_000, **fields)


def blocked() -> Doc:
    return job(state="blocked", depends_on=["d1", "d2"], waiting_for=["d1", "d2"])


def finished(state: str) -> Doc:
    return job(state=state, attempts=1, **{f"{state}_at": NOW - 1000})


def status(user: str | None, **fields: Any) -> Doc:
    doc = {"_id": "queshot-worker:w", "type": "queshot_worker", "name": "w", "user": user}
    return {**doc, "queues": "email", "last_seen": NOW, **fields}


def schedule() -> Doc:
    return {
        "_id": "queshot-schedule:nightly",
        "type": "queshot_schedule",
        "queue": "email",
        "every": 3600,
    }


def retention_rule() -> Doc:
    return {
        "_id": "queshot-retention:email",
        "type": "queshot_retention",
        "queue": "email",
        "complete": {"age": 86400, "count": 1000},
    }


def limit_rule() -> Doc:
    return {
        "_id": "queshot-limit:email",
        "type": "queshot_limit",
        "queue": "email",
        "concurrency": 3,
    }


def token(by: str, **fields: Any) -> Doc:
    """Slot 0 of queue email's concurrency limit, held by account `by` on a running lease."""
    doc = {
        "_id": 'queshot-token:["email","concurrency",null,0]',
        "type": "queshot_token",
        "limit": "email",
        "kind": "concurrency",
        "key": None,
        "slot": 0,
        "state": "active",
        "worker_id": f"w-{by}",
        "user": by,
        "job": "j1",
        "taken_at": NOW,
        "lease_expires_at": NOW + 3_600_000,
    }
    return doc | fields


HOUR = history.hour_of(NOW)
PAST_KEEPING = HOUR - (history.HISTORY_KEEP_HOURS + 1) * history.HOUR_MS


def counters(user: str | None, hour: int = HOUR, done: int = 3, **fields: Any) -> Doc:
    """A worker's history document of an hour (queshot.history)."""
    doc = history.new_doc(hour, f"w-{user}", user)
    doc["counts"] = {"5": {"email": [done, 1]}}
    return {**doc, **fields}


def changed(doc: Doc, **fields: Any) -> Doc:
    return {**doc, **fields}


def put(old: Callable[[str], Doc | None], new: Callable[[str], Doc]) -> Scenario:
    return Scenario(old=old, new=new)


def call(old: Callable[[str], Doc], handler: str, body: Callable[[str], Doc]) -> Scenario:
    return Scenario(old=old, handler=handler, body=body)


def deleting(old: Callable[[str], Doc]) -> Scenario:
    return Scenario(old=old, delete=True)


def nothing(_: str) -> None:
    return None


def mine(name: str) -> Doc:
    return held(name)


def theirs(_: str) -> Doc:
    return held(OTHER)


def deep(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


SLOT = 1764588900000  # 2025-12-01T11:35:00Z
SLOT_JOB = job(
    _id="queshot-slot:nightly:20251201T113500Z",
    created_at=SLOT,
    schedule="queshot-schedule:nightly",
    slot=SLOT,
)
RUN_NOW_JOB = {**SLOT_JOB, "_id": f"queshot-slot:nightly:now-{SLOT}"}
# a valid value, unlike job()'s, for each field a job is created with (but the
# slot marks, which its id is made of)
EDITS: dict[str, Any] = {
    "queues": "sms",
    "priority": 5,
    "created_at": 5,
    "data": {"x": 1},
    "task": "t",
    "args": [1],
    "kwargs": {"a": 1},
    "max_attempts": 9,
    "max_stalls": 9,
    "timeout": 9,
    "lease_seconds": 9,
    "backoff_seconds": 9,
    "depends_on": ["d9"],
    "on_dependency_failure": "run",
    "limit_key": "customer-9",
    "origin": "someone",
}
assert set(EDITS) == set(CREATION_FIELDS) - {"schedule", "slot"}
HOLDER_MOVES = (
    ("heartbeat", lambda n: {"worker_id": f"w-{n}", "lease_seconds": 60}),
    ("log", lambda n: {"worker_id": f"w-{n}", "msg": "half way"}),
    ("progress", lambda n: {"worker_id": f"w-{n}", "progress": 50}),
    ("complete", lambda n: {"worker_id": f"w-{n}", "result": {"sent": True}}),
    ("fail", lambda n: {"worker_id": f"w-{n}", "error": {"type": "E", "message": "boom"}}),
    ("release", lambda n: {"worker_id": f"w-{n}"}),
)
OTHERS_MOVES = tuple((name, lambda _n, b=body: b(OTHER)) for name, body in HOLDER_MOVES)

WRITES: tuple[Write, ...] = (
    Write(
        "create a waiting or blocked job (`create_job`, `enqueue`, `_bulk_docs`)",
        EVERYONE,
        (
            put(nothing, lambda n: job()),
            put(nothing, lambda n: blocked()),
        ),
    ),
    Write(
        "create a job that is not waiting, or that carries what only the server writes "
        "(`attempts` > 0, `result`, `error(s)`, `worker_id`, lease, cancel, log lines...)",
        ADMINS,
        (
            put(nothing, lambda n: finished("complete")),
            put(nothing, lambda n: job(attempts=5)),
            put(nothing, lambda n: job(result={"forged": True})),
            put(nothing, lambda n: job(worker_id="w1")),
            put(nothing, lambda n: job(cancel_requested_at=1)),
            put(nothing, lambda n: job(log=[{"at": 1, "msg": "claimed by w1"}])),
            put(nothing, lambda n: job(arrived_at=NOW)),
        ),
    ),
    Write(
        "create a job whose `origin` is its own account",
        EVERYONE,
        (put(nothing, lambda n: job(origin=n)),),
        "a producer's pull replication selects its jobs by `origin`",
    ),
    Write(
        "create a job whose `origin` is another account",
        ADMINS,
        (put(nothing, lambda n: job(origin=OTHER)),),
        "enqueuing on a producer's behalf",
    ),
    Write(
        "create a schedule's slot job (`queshot-slot:<schedule>:<slot>`)",
        WORKERS,
        (put(nothing, lambda n: SLOT_JOB), put(nothing, lambda n: RUN_NOW_JOB)),
        "the scheduler's; its id must match its marks (`now-<slot>`: a run-now request's)",
    ),
    Write(
        "claim a waiting job (`claim`)",
        WORKERS,
        (call(lambda n: job(), "claim", lambda n: {"worker_id": f"w-{n}"}),),
        "binds the job to the claiming account (`worker_user`)",
    ),
    Write(
        "heartbeat, log, progress, complete, fail or release a job it holds",
        WORKERS,
        tuple(call(mine, name, body) for name, body in HOLDER_MOVES),
    ),
    Write(
        "the same moves of a job another account holds, or any other change of it",
        ADMINS,
        (
            *(call(theirs, name, body) for name, body in OTHERS_MOVES),
            put(theirs, lambda n: changed(held(OTHER), progress=99)),
        ),
        "processes sharing one account are one party",
    ),
    Write(
        "take back a running job whose lease or timeout has run out (`expire`)",
        WORKERS,
        (call(lambda n: overdue(OTHER), "expire", lambda n: {}),),
        "by the server's clock",
    ),
    Write(
        "take a running job back before its deadline, by writing what `expire` would",
        ADMINS,
        (
            put(
                theirs,
                lambda n: changed(
                    held(OTHER), state="inactive", worker_id=None, lease_expires_at=None, attempts=0
                ),
            ),
        ),
    ),
    Write(
        "place a new job in line by its arrival, its `created_at` being more than 5 minutes "
        "off the server's clock (`arrive`)",
        WORKERS,
        (call(lambda n: skewed(), "arrive", lambda n: {}),),
        "`arrived_at`: the server's time, once, before the job first runs",
    ),
    Write(
        "move a waiting job in line: an `arrived_at` not the server's now, or on a job "
        "whose `created_at` is its place",
        ADMINS,
        (
            put(lambda n: skewed(), lambda n: skewed(arrived_at=NOW - 86_400_000)),
            put(lambda n: job(), lambda n: job(arrived_at=NOW)),
        ),
    ),
    Write(
        "fail a waiting job that cannot be claimed as stored (`unclaimable`)",
        WORKERS,
        (call(lambda n: job(), "unclaimable", lambda n: {"worker_id": "w", "reason": "x"}),),
    ),
    Write(
        "tell a blocked job that a job it waits for finished (`resolve`)",
        WORKERS,
        (
            call(
                lambda n: blocked(),
                "resolve",
                lambda n: {"dependency": "d1", "state": "complete", "result": 7},
            ),
            call(lambda n: blocked(), "resolve", lambda n: {"dependency": "d1", "state": "failed"}),
        ),
        "the rule cannot read that job: see below",
    ),
    Write(
        "write results for jobs a blocked job does not wait for, or change it otherwise",
        ADMINS,
        (
            put(
                lambda n: blocked(),
                lambda n: changed(
                    blocked(), waiting_for=["d2"], dependency_results={"d1": 1, "x": 2}
                ),
            ),
            put(
                lambda n: blocked(),
                lambda n: changed(
                    blocked(), waiting_for=[], state="inactive", dependency_results={"d1": 1}
                ),
            ),
        ),
    ),
    Write(
        "cancel a job (`cancel`)",
        ADMINS,
        (
            call(lambda n: job(), "cancel", lambda n: {}),
            call(mine, "cancel", lambda n: {"by": "dashboard"}),
        ),
        "its log line names the account and `by`",
    ),
    Write(
        "requeue a failed, complete or cancelled job (`requeue`)",
        ADMINS,
        (
            call(lambda n: finished("failed"), "requeue", lambda n: {}),
            call(lambda n: finished("complete"), "requeue", lambda n: {"by": "cli"}),
        ),
        "its log line names the account and `by`",
    ),
    Write(
        "change a job's " + ", ".join(f"`{f}`" for f in EDITS),
        ADMINS,
        tuple(
            put(lambda n: job(), lambda n, f=field: changed(job(), **{f: EDITS[f]}))
            for field in EDITS
        ),
        "a slot job's `schedule` and `slot` make its id: nobody changes them",
    ),
    Write(
        "change `attempts` or `stalls` of a job it holds, other than a claim or release does",
        ADMINS,
        (
            put(mine, lambda n: changed(held(n), attempts=0)),
            put(mine, lambda n: changed(held(n), stalls=3)),
        ),
    ),
    Write(
        "change a waiting job in any other way (log, lease, timeouts...)",
        ADMINS,
        (put(lambda n: job(), lambda n: changed(job(), log=[{"at": 1, "msg": "hi"}])),),
    ),
    Write(
        "write a job outside the bounds (below) or the schema",
        (),
        (
            put(nothing, lambda n: job(lease_seconds=1e306)),
            put(nothing, lambda n: job(data=deep(MAX_DEPTH))),
            put(nothing, lambda n: job(queues="a/" * 20 + "b")),
            put(nothing, lambda n: job(priority="high")),
            put(lambda n: job(), lambda n: changed(job(), lease_seconds=0.05)),
        ),
        "every role, admins too",
    ),
    Write(
        "delete a finished (complete, failed or cancelled) job",
        WORKERS,
        (
            deleting(lambda n: finished("complete")),
            deleting(lambda n: finished("failed")),
            deleting(lambda n: finished("cancelled")),
        ),
        "autoremove, retention rules",
    ),
    Write(
        "delete a claim branch its own account made",
        WORKERS,
        (deleting(mine),),
        "the loser of a contested claim",
    ),
    Write(
        "delete a job another account holds, or a waiting or blocked job",
        ADMINS,
        (
            deleting(theirs),
            deleting(lambda n: job()),
            deleting(lambda n: blocked()),
        ),
    ),
    Write(
        "write or delete its own worker status document (`user` = its account)",
        WORKERS,
        (
            put(nothing, lambda n: status(n)),
            put(lambda n: status(n), lambda n: status(n, queues=["email", "welcome"])),
            deleting(lambda n: status(n)),
        ),
    ),
    Write(
        "write or delete another account's status document",
        ADMINS,
        (
            put(nothing, lambda n: status(OTHER)),
            put(lambda n: status(OTHER), lambda n: status(OTHER, last_seen=NOW + 1)),
            deleting(lambda n: status(OTHER)),
        ),
    ),
    Write(
        "a status document whose `last_seen` is more than "
        f"{MAX_LAST_SEEN_AHEAD_MS // 60_000} minutes ahead of the server's clock",
        (),
        (put(nothing, lambda n: status(n, last_seen=10**15)),),
    ),
    Write(
        "write its own history counters (`user` = its account), counts only growing",
        WORKERS,
        (
            put(nothing, lambda n: counters(n)),
            put(lambda n: counters(n), lambda n: counters(n, done=4)),
            deleting(lambda n: counters(n)),
        ),
        "`queshot.history`",
    ),
    Write(
        "write or delete another account's history counters, or lower a count",
        ADMINS,
        (
            put(nothing, lambda n: counters(OTHER)),
            put(lambda n: counters(n), lambda n: counters(n, done=2)),
            deleting(lambda n: counters(OTHER)),
        ),
    ),
    Write(
        f"delete anyone's history counters older than {history.HISTORY_KEEP_HOURS} hours",
        WORKERS,
        (deleting(lambda n: counters(OTHER, hour=PAST_KEEPING)),),
    ),
    Write(
        "history counters of another shape (id, hour, minute, queue, counts)",
        (),
        (
            put(nothing, lambda n: counters(n, _id="queshot-history:x")),
            put(nothing, lambda n: counters(n, hour=HOUR + 1)),
            put(nothing, lambda n: counters(n, counts={"60": {"email": [1, 0]}})),
            put(nothing, lambda n: counters(n, counts={"1": {"a//b": [1, 0]}})),
            put(nothing, lambda n: counters(n, counts={"1": {"email": [-1, 0]}})),
            put(nothing, lambda n: counters(n, counts={"1": {"email": [1]}})),
        ),
        "every role, admins too",
    ),
    Write(
        "write or remove a schedule",
        ADMINS,
        (
            put(nothing, lambda n: schedule()),
            deleting(lambda n: schedule()),
        ),
    ),
    Write(
        "ask a schedule to run now (`run_requested_at`, `run_requested_by`)",
        ADMINS,
        (
            put(
                lambda n: schedule(),
                lambda n: {**schedule(), "run_requested_at": NOW, "run_requested_by": n},
            ),
        ),
        "`queshot schedule run`, the dashboard: a schedule edit",
    ),
    Write(
        "write or remove a queue's retention rule",
        ADMINS,
        (
            put(nothing, lambda n: retention_rule()),
            deleting(lambda n: retention_rule()),
        ),
    ),
    Write(
        "write or remove a queue's limit",
        ADMINS,
        (put(nothing, lambda n: limit_rule()), deleting(lambda n: limit_rule())),
    ),
    Write(
        "take a free limit token, renew or give back its own, take one whose lease ran out",
        WORKERS,
        (
            put(nothing, token),
            put(token, lambda n: token(n, lease_expires_at=NOW + 7_200_000)),
            put(token, lambda n: token(n, state="free", free_at=NOW)),
            put(lambda n: token(OTHER, lease_expires_at=NOW - 1), token),
            put(lambda n: token(OTHER, state="free", free_at=NOW - 1), token),
        ),
        "before claiming a limited job",
    ),
    Write(
        "take a limit token another account holds, or before its `free_at`",
        ADMINS,
        (
            put(lambda n: token(OTHER), token),
            put(lambda n: token(OTHER, state="free", free_at=NOW + 3_600_000), token),
        ),
        "exactness rests on it",
    ),
    Write(
        "pause or resume a queue (`pause`), push design docs, set `_security`",
        ("database admin", "server admin"),
        (
            Scenario(
                old=nothing,
                handler="pause",
                on="_design/queshot",
                body=lambda n: {"queue": ["email"], "paused": True},
            ),
        ),
        "they write `_design/queshot`: CouchDB lets only these",
        by_couchdb=True,
    ),
)


def render() -> str:
    """The README's Roles table."""
    head = "| write | " + " | ".join(ROLE_TEXT[r] for r in ROLES) + " | note |"
    lines = [head, "|---|" + "---|" * len(ROLES) + "---|"]
    for write in WRITES:
        cells = ["yes" if role in write.allowed else "-" for role in ROLES]
        lines.append(f"| {write.what} | " + " | ".join(cells) + f" | {write.note} |")
    return "\n".join(lines) + "\n"
