"""The bounds every queshot document keeps (designdocs/context.json, the same
numbers as queshot.jobs), run in QuickJS: what validate_doc_update refuses
for every role, admins included; what it still lets through for a job
stored before the bounds; and that the handlers never write out of bounds
themselves. Issue 20: one document must not stop the queue."""

from __future__ import annotations

import json
from typing import Any

import pytest
from designdoc_js import DesignDocJS

from queshot import jobs
from queshot.queue import Queue

PRODUCER = {"name": "ingest", "roles": ["queshot_producer"]}
WORKER = {"name": "runner", "roles": ["queshot_worker"]}
ADMIN = {"name": "root", "roles": ["_admin"]}
INVALID = "queshot: invalid job: "


@pytest.fixture(scope="module")
def js() -> DesignDocJS:
    return DesignDocJS()


def seed_job(**fields: Any) -> dict[str, Any]:
    """What the seed's createJob writes."""
    doc = {"queues": "q", "state": "inactive", "worker_id": None, "priority": 0, "log": []}
    return {"_id": "j1", **doc, "data": {"n": 1}, "created_at": 1_700_000_000_000, **fields}


def nested(levels: int) -> Any:
    value: Any = "x"
    for _ in range(levels):
        value = [value]
    return value


def refusal(js: DesignDocJS, new: dict, old: dict | None = None, user: dict = PRODUCER) -> str:
    result = js.validate(new, old, user, {})
    assert result is not None, new
    return result[1]


def test_what_our_producers_and_the_seed_write_is_accepted(js: DesignDocJS) -> None:
    assert js.validate(seed_job(), None, PRODUCER, {}) is None
    queue = Queue("mail/welcome", None, max_attempts=3, timeout=60, backoff_seconds=5)  # type: ignore[arg-type]
    doc = queue.new_job_doc({"to": "a"}, task="send", args=[1], kwargs={"k": 2}, delay=5)
    assert js.validate(doc, None, PRODUCER, {}) is None


@pytest.mark.parametrize(
    ("field", "good", "bad"),
    [
        ("lease_seconds", jobs.MAX_LEASE_SECONDS, 1e306),
        ("lease_seconds", jobs.MIN_LEASE_SECONDS, 0.05),
        ("timeout", jobs.MAX_TIMEOUT_SECONDS, jobs.MAX_TIMEOUT_SECONDS + 1),
        ("priority", -jobs.MAX_PRIORITY, -jobs.MAX_PRIORITY - 1),
        ("priority", jobs.MAX_PRIORITY, 1e308),
        ("max_attempts", jobs.MAX_ATTEMPTS_BOUND, jobs.MAX_ATTEMPTS_BOUND + 1),
        ("max_stalls", jobs.MAX_STALLS_BOUND, jobs.MAX_STALLS_BOUND + 1),
        ("backoff_seconds", jobs.MAX_BACKOFF_SECONDS_BOUND, -1),
        ("progress", 100, 100.5),
        ("run_at", jobs.MAX_EPOCH_MS, jobs.MAX_EPOCH_MS + 1),
        ("created_at", 0, -1e308),
    ],
)
def test_every_number_has_a_range_the_python_side_knows(
    js: DesignDocJS, field: str, good: float, bad: float
) -> None:
    assert js.validate(seed_job(**{field: good}), None, PRODUCER, {}) is None
    reason = refusal(js, seed_job(**{field: bad}), user=ADMIN)  # admins too
    assert reason.startswith(f"{INVALID}'{field}' must be"), reason


def test_timestamps_in_log_lines_and_errors_are_bounded_too(js: DesignDocJS) -> None:
    stored = seed_job(_rev="1-a")
    lines = seed_job(log=[{"at": 1e308, "msg": "x"}], _rev="1-a")
    assert refusal(js, lines, stored, ADMIN).startswith(INVALID + "every 'log' entry")
    error = {"message": "m", "at": -5}
    assert refusal(js, seed_job(error=error), None, ADMIN).startswith(INVALID + "'error' must be")


def test_nesting_deeper_than_the_bound_is_refused_anywhere(js: DesignDocJS) -> None:
    assert js.validate(seed_job(data=nested(jobs.MAX_DEPTH - 2)), None, PRODUCER, {}) is None
    for field in ("data", "kwargs", "result", "anything"):
        reason = refusal(js, seed_job(**{field: nested(900)}), user=ADMIN)
        assert reason == f"{INVALID}'{field}' nests deeper than {jobs.MAX_DEPTH} levels " + (
            "(the document is the first)"
        )


def test_size_is_bounded_for_new_jobs_and_for_every_write(js: DesignDocJS) -> None:
    big = "x" * jobs.MAX_NEW_JOB_CHARS
    assert "for a new job" in refusal(js, seed_job(data=big), user=ADMIN)
    stored = seed_job(
        _rev="1-a", state="failed", failed_at=2, data="x" * (jobs.MAX_JOB_CHARS - 500)
    )
    grown = {**stored, "data": stored["data"] + "y" * 1000}
    assert "more than the 2000000 allowed" in refusal(js, grown, stored, ADMIN)
    smaller = {**stored, "data": "small"}
    assert js.validate(smaller, stored, ADMIN, {}) is None  # shrinking an old one is fine
    status = {"_id": "queshot-worker:w", "type": "queshot_worker", "name": "w", "user": "runner"}
    huge = {**status, "last_seen": 1, "junk": "x" * jobs.MAX_JOB_CHARS}
    assert refusal(js, huge, None, WORKER).startswith(
        "queshot: invalid worker status document: the document has"
    )


@pytest.mark.parametrize(
    "queues",
    ["/".join("q" * (jobs.MAX_QUEUE_PARTS + 1)), "q" * (jobs.MAX_QUEUE_PART_CHARS + 1), ["a/b"]],
)
def test_queue_paths_are_bounded(js: DesignDocJS, queues: Any) -> None:
    assert refusal(js, seed_job(queues=queues), user=ADMIN).startswith(INVALID + "'queues': ")


def test_ids_starting_with_an_underscore_are_not_jobs(js: DesignDocJS) -> None:
    reason = refusal(js, seed_job(_id="_security"), user=ADMIN)
    assert reason == INVALID + "an id starting with '_' is CouchDB's, not a job's"


@pytest.mark.parametrize(
    "fields",
    [
        {"attempts": 99},
        {"stalls": 1},
        {"result": 1},
        {"error": {"message": "m"}},
        {"errors": [{"message": "m"}]},
        {"completed_at": 5},
        {"failed_at": 5},
        {"claimed_at": 5},
        {"lease_expires_at": 5},
        {"worker_id": "w1"},
        {"worker_user": "runner"},
        {"cancel_requested_at": 5},
        {"dependency_results": {}},
        {"log": [{"at": 5, "msg": "claimed by w1"}]},
    ],
)
def test_a_new_job_carries_nothing_only_the_server_writes(
    js: DesignDocJS, fields: dict[str, Any]
) -> None:
    for user in (PRODUCER, WORKER):
        reason = refusal(js, seed_job(**fields), user=user)
        assert reason.startswith(INVALID + "a new job cannot carry what only the server writes")
    assert (
        js.validate(seed_job(**fields), None, {"name": "ops", "roles": ["queshot_admin"]}, {})
        is None
    )


# -- the handlers write within the bounds ---------------------------------------------


def test_a_stored_huge_lease_is_clamped_by_claim(js: DesignDocJS) -> None:
    stored = seed_job(_rev="1-a", lease_seconds=1e306)  # stored before the bounds
    claimed, _ = js.update("claim", stored, {"worker_id": "w1"}, WORKER)
    assert claimed["lease_expires_at"] - claimed["claimed_at"] == jobs.MAX_LEASE_SECONDS * 1000
    assert js.validate(claimed, stored, WORKER, {}) is None  # the field it did not change


def test_log_lines_errors_and_tracebacks_are_cut_to_their_bounds(js: DesignDocJS) -> None:
    held = seed_job(
        _rev="2-a",
        state="active",
        worker_id="w1",
        worker_user="runner",
        lease_expires_at=10**13,
        claimed_at=1,
        attempts=1,
    )
    logged, _ = js.update("log", held, {"worker_id": "w1", "msg": "x" * 10_000}, WORKER)
    assert len(logged["log"][-1]["msg"]) == jobs.MAX_LOG_MSG_CHARS
    assert logged["log"][-1]["msg"].endswith("characters cut)")
    error = {"type": "E", "message": "m" * 10**5, "traceback": "t" * 10**6}
    failed, _ = js.update("fail", held, {"worker_id": "w1", "error": error}, WORKER)
    assert len(failed["error"]["message"]) == jobs.MAX_ERROR_MESSAGE_CHARS
    assert len(failed["error"]["traceback"]) == jobs.MAX_TRACEBACK_CHARS
    assert js.validate(failed, held, WORKER, {}) is None


# -- unclaimable -------------------------------------------------------------------------


def test_unclaimable_fails_a_waiting_job_with_the_reason_and_never_echoes_it(
    js: DesignDocJS,
) -> None:
    stored = seed_job(_rev="1-a", attempts=0)
    reason = "queshot: invalid job: 'lease_seconds' must be ..." + "r" * 5000
    failed, answer = js.update("unclaimable", stored, {"worker_id": "w1", "reason": reason}, WORKER)
    assert answer == {"json": {"ok": True, "state": "failed"}}
    assert failed["state"] == "failed" and failed["failed_at"] > 0
    error = failed["error"]
    assert (error["type"], error["attempt"], error["worker_id"]) == ("Unclaimable", 0, "w1")
    assert len(error["message"]) == jobs.MAX_ERROR_MESSAGE_CHARS and failed["errors"] == [error]
    assert failed["log"][-1]["msg"].startswith("worker w1 found it unclaimable: queshot: invalid")
    assert js.validate(failed, stored, WORKER, {}) is None
    _, refused = js.update("unclaimable", {**stored, "state": "active"}, {"worker_id": "w1"})
    assert refused["code"] == 409 and json.dumps(stored["data"]) not in json.dumps(refused)


def test_a_job_stored_before_the_bounds_can_still_be_failed_as_unclaimable(
    js: DesignDocJS,
) -> None:
    stored = seed_job(
        _rev="1-a",
        lease_seconds=1e306,
        data=nested(900),
        log=["x" * 5000],
        queues="q",
        junk="j" * jobs.MAX_JOB_CHARS,
    )
    failed, _ = js.update("unclaimable", stored, {"worker_id": "w1", "reason": "too deep"}, WORKER)
    assert js.validate(failed, stored, WORKER, {}) is None
    other_move = {**failed, "error": {**failed["error"], "type": "Whatever"}}
    assert refusal(js, other_move, stored, WORKER) == (
        "queshot: only a queue admin may move a job from 'inactive' to 'failed'"
    )
