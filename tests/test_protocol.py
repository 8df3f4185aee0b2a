"""Where Python must do what the design docs do, the two are compared here,
without a server: the design doc's JavaScript runs in QuickJS. A field added
to `updates/complete.js` that the batched completion lacks fails here."""

from __future__ import annotations

import pytest
from designdoc_js import DesignDocJS

from queshot import protocol
from queshot.jobs import (
    QueueError,
    in_queue,
    is_due,
    is_job,
    now_ms,
    queue_path,
    winning_revision,
)


@pytest.fixture(scope="module")
def js() -> DesignDocJS:
    return DesignDocJS()


def running_job(**fields: object) -> dict[str, object]:
    doc: dict[str, object] = {
        "_id": "0001",
        "_rev": "2-abc",
        "queues": ["email", "welcome"],
        "state": "active",
        "worker_id": "w1",
        "priority": 3,
        "log": [{"at": 1, "msg": "hello"}],
        "data": {"to": "ada@example.org"},
        "created_at": 1,
        "attempts": 1,
        "max_attempts": 3,
        "progress": 40,
        "claimed_at": 2,
        "lease_expires_at": 60_002,
        "stalls": 1,
    }
    doc.update(fields)
    return doc


@pytest.mark.parametrize(
    "body",
    [{}, {"result": {"sent": True}}, {"result": None}, {"result": [1, "two"]}],
    ids=["no result", "a result", "a null result", "a list"],
)
def test_the_batched_completion_is_what_the_complete_handler_writes(
    js: DesignDocJS, body: dict[str, object]
) -> None:
    claimed = running_job()
    stored, answer = js.update("complete", claimed, {**body, "worker_id": "w1", "rev": "2-abc"})
    batched = protocol.completed(claimed, "2-abc", body)
    assert answer == {"json": {"ok": True}}
    assert abs(stored.pop("completed_at") - batched.pop("completed_at")) < 5_000
    assert batched == stored


def test_the_completed_document_keeps_attachments_and_drops_other_meta_fields() -> None:
    claimed = running_job(_attachments={"a.txt": {"stub": True}}, _conflicts=["2-def"])
    batched = protocol.completed(claimed, "2-abc", {})
    assert "_conflicts" not in batched
    assert batched["_attachments"] == {"a.txt": {"stub": True}}


QUEUE_CASES = [
    ("email", ["email"]),
    ("email", ["email", "welcome"]),
    (["email"], ["email"]),
    (["email", "welcome"], ["email"]),
    (["email", "welcome"], ["email", "welcome"]),
    (["email", "welcome"], ["email", "other"]),
    (["email"], ["email", "welcome"]),
    ("sms", ["email"]),
    ("", ["email"]),
    ([], ["email"]),
    (["email", ""], ["email"]),
    (["email", 3], ["email"]),
    (None, ["email"]),
    (42, ["email"]),
    ("email", []),
    ("email/welcome", ["email"]),
    ("email/welcome", ["email", "welcome"]),
    (["email", "welcome"], ["email/welcome"]),
    (["email/welcome"], ["email"]),
    ("email//welcome", ["email"]),
    ("/email", ["email"]),
    ("/".join(["q"] * 11), ["q"]),
    ("q" * 101, ["q" * 101]),
]


@pytest.mark.parametrize(("queues", "path"), QUEUE_CASES)
def test_queue_membership_is_the_design_docs(js: DesignDocJS, queues: object, path: list) -> None:
    assert in_queue(queues, path) is js.lib("inQueue", {"queues": queues}, path)


@pytest.mark.parametrize(
    "queues",
    [
        *(queues for queues, _ in QUEUE_CASES),
        "a/b/c",
        ["a", "b", "c"],
        "/".join(["q"] * 10),
        "q" * 100,
        ("a", "b"),
    ],
)
def test_queue_paths_are_the_design_docs(js: DesignDocJS, queues: object) -> None:
    """One rule: "a/b" and ["a", "b"] are one queue, in Python and in JavaScript."""
    try:
        path = queue_path(queues)
    except QueueError:
        path = None
    as_json = list(queues) if isinstance(queues, tuple) else queues
    assert path == js.lib("queuePath", as_json)


@pytest.mark.parametrize(
    "fields",
    [{}, {"run_at": None}, {"run_at": 1}, {"run_at": 10**15}, {"run_at": "soon"}],
    ids=["no run_at", "null", "past", "future", "not a number"],
)
def test_is_due_is_the_claim_handlers_rule(js: DesignDocJS, fields: dict[str, object]) -> None:
    now = now_ms()
    doc = {"created_at": 1, **fields}
    assert is_due(doc, now) is js.lib("isDue", doc, now)


@pytest.mark.parametrize(
    "doc",
    [
        {"_id": "j", "queues": "q", "state": "inactive"},
        {"_id": "j", "state": "inactive"},
        {"_id": "_design/queshot", "queues": "q", "state": "inactive"},
        {"_id": "queshot-worker:w", "type": "queshot_worker", "queues": "q"},
        {"_id": "j", "data": {}},
    ],
    ids=["a job", "state only", "a design doc", "a worker status", "neither queues nor state"],
)
def test_is_job_is_the_design_docs_rule(js: DesignDocJS, doc: dict[str, object]) -> None:
    assert is_job(doc) is js.lib("isJob", doc)


def test_winning_revision_is_couchdbs_rule() -> None:
    leaves = [
        {"_rev": "2-aaa", "worker_id": "a"},
        {"_rev": "2-fff", "worker_id": "b"},
        {"_rev": "3-000", "_deleted": True},
    ]
    assert winning_revision(leaves)["worker_id"] == "b"
    assert winning_revision([*leaves, {"_rev": "3-111", "worker_id": "c"}])["worker_id"] == "c"
    assert winning_revision([]) is None
