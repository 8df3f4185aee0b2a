"""The job's JSON Schema (`queshot.schema`, the design doc's job.schema.json)
against validate_doc_update: on generated documents, the schema accepts
exactly what a producer account may create. Run in QuickJS, no server
needed; jsonschema is the validator any other language would use."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from designdoc_js import DesignDocJS
from fuzzing import base_job
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from queshot.couch import Database
from queshot.jobs import DEFAULTS
from queshot.schema import ATTACHMENT, job_schema

PRODUCER = {"name": "producer-a", "roles": ["queshot_producer"]}
ABSENT = object()

BMP_TEXT = st.text(st.characters(max_codepoint=0xFFFF, exclude_categories=("Cs",)), max_size=4)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.floats(-2, 2) | BMP_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(BMP_TEXT, inner, max_size=3),
    max_leaves=6,
)


def around(low: float, high: float, whole: bool) -> tuple[Any, Any]:
    """(values in range, values at and past its bounds and of other types)."""
    inside = st.sampled_from([low, high, 0 if low <= 0 <= high else low])
    if not whole:
        inside |= st.floats(low, high)
    edges = [low - 1, high + 1, low + 0.5 if whole else high * 2 + 1]
    return inside | st.none(), st.sampled_from(edges) | JSON


TIMESTAMP = around(0, DEFAULTS["max_epoch_ms"], False)
NUMBERS = {
    "priority": around(-DEFAULTS["max_priority"], DEFAULTS["max_priority"], True),
    "progress": around(0, 100, False),
    "attempts": around(0, DEFAULTS["max_attempts_bound"], True),
    "max_attempts": around(1, DEFAULTS["max_attempts_bound"], True),
    "stalls": around(0, DEFAULTS["max_stalls_bound"] + 1, True),
    "max_stalls": around(0, DEFAULTS["max_stalls_bound"], True),
    "timeout": (
        st.sampled_from([5e-324, 1e-9, DEFAULTS["max_timeout_seconds"]]) | st.none(),
        st.sampled_from([0, -1, DEFAULTS["max_timeout_seconds"] + 1]) | JSON,
    ),
    "lease_seconds": around(DEFAULTS["min_lease_seconds"], DEFAULTS["max_lease_seconds"], False),
    "backoff_seconds": around(0, DEFAULTS["max_backoff_seconds_bound"], False),
    **{
        field: TIMESTAMP
        for field in ("run_at", "created_at", "claimed_at", "lease_expires_at", "completed_at")
        + ("failed_at", "cancelled_at", "cancel_requested_at", "enabled_at", "last_seen")
    },
}
NAME = st.text(st.characters(codec="ascii", exclude_characters="/"), min_size=1, max_size=3)
LONGEST = "a" * DEFAULTS["max_queue_part_chars"]
PART = (
    BMP_TEXT
    | st.sampled_from(["a/b", "", "\n", LONGEST + "\n"])
    | st.builds(lambda n, c: c * n, st.integers(98, 101), st.sampled_from(["a", "\n", "é"]))
)
IDS = st.lists(st.sampled_from(["job-1", "job-2"]), min_size=1, max_size=3)
# Each field: (values a producer may write, values it may not or that are near the edge).
FIELDS: dict[str, tuple[Any, Any]] = {
    **NUMBERS,
    "_id": (
        st.sampled_from(["job-1", "x" + DEFAULTS["slot_job_prefix"]]),
        st.sampled_from(["_odd", DEFAULTS["slot_job_prefix"] + "x"]),
    ),
    "queues": (
        st.lists(NAME, min_size=1, max_size=10).map("/".join) | st.lists(NAME, min_size=1),
        st.sampled_from([LONGEST + "\n", LONGEST + "a", "a/" * DEFAULTS["max_queue_parts"] + "a"])
        | st.lists(PART, max_size=12).map("/".join)
        | st.lists(PART, max_size=12)
        | JSON,
    ),
    "state": (st.just("inactive"), st.sampled_from([*DEFAULTS["states"], "waiting"]) | JSON),
    "data": (JSON, JSON),
    "task": (st.just("send") | st.none(), st.just("") | JSON),
    "args": (st.lists(JSON, max_size=2) | st.none(), JSON),
    "kwargs": (st.dictionaries(BMP_TEXT, JSON, max_size=2) | st.none(), JSON),
    "log": (st.sampled_from([[], None]), st.sampled_from([["line"], {}]) | JSON),
    "errors": (st.sampled_from([[], None]), st.sampled_from([[{"message": "x"}], {}]) | JSON),
    "depends_on": (IDS | st.none(), st.lists(st.just("") | JSON, max_size=2) | JSON),
    "waiting_for": (st.sampled_from([[], None]), IDS | st.lists(JSON, max_size=2) | JSON),
    "on_dependency_failure": (st.sampled_from(["fail", "run", None]), st.just("later") | JSON),
    DEFAULTS["origin_field"]: (st.just(PRODUCER["name"]), st.just("") | JSON),
    "type": (
        st.sampled_from(["job", None]),
        st.sampled_from(
            [DEFAULTS["worker_type"], DEFAULTS["schedule_type"], DEFAULTS["retention_type"]]
        )
        | JSON,
    ),
    "schedule": (st.nothing(), st.just(DEFAULTS["schedule_doc_prefix"] + "s") | JSON),
    "slot": (st.nothing(), TIMESTAMP[0] | TIMESTAMP[1]),
    **{
        field: (st.none(), JSON)
        for field in DEFAULTS["server_owned_fields"]
        if field not in NUMBERS
    },
}
NEEDED = ("queues", "state", "created_at")


@st.composite
def new_jobs(draw: st.DrawFn) -> dict[str, Any]:
    """A job a producer may create, with a few fields then made odd: left
    out, or given a value at or past an edge of the rules."""
    doc: dict[str, Any] = {field: draw(FIELDS[field][0]) for field in NEEDED}
    for field in draw(st.lists(st.sampled_from(sorted(FIELDS)), max_size=4, unique=True)):
        if FIELDS[field][0] is not st.nothing():
            doc[field] = draw(FIELDS[field][0])
    for field in draw(st.lists(st.sampled_from(sorted(FIELDS)), max_size=2, unique=True)):
        if draw(st.booleans()) and field in doc:
            del doc[field]
        else:
            doc[field] = draw(FIELDS[field][1])
    if doc.get("state") == "blocked" and draw(st.booleans()):
        doc["waiting_for"] = draw(IDS)
    return doc


@pytest.fixture(scope="module")
def js() -> DesignDocJS:
    return DesignDocJS()


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = job_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def created_by_producer(js: DesignDocJS, doc: dict[str, Any]) -> tuple[str, str] | None:
    """validate_doc_update's verdict on `doc` created by a producer account
    (the id CouchDB would make on POST, if it has none)."""
    # JSON both ways: what reaches the server, e.g. 1.0 as JSON
    stored = json.loads(json.dumps({"_id": "job-made-by-couchdb", **doc}))
    return js.validate(stored, None, PRODUCER, {})


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=new_jobs())
def test_the_schema_accepts_what_a_producer_may_create_and_nothing_else(
    js: DesignDocJS, validator: jsonschema.Draft202012Validator, doc: dict[str, Any]
) -> None:
    refusal = created_by_producer(js, doc)
    errors = [e.message for e in validator.iter_errors(doc)]
    assert (refusal is None) == (not errors), (refusal, errors[:3])


@pytest.mark.parametrize(
    "doc",
    [
        {"queues": "email/welcome", "state": "inactive", "created_at": 1},
        {"queues": ["a"] * 10, "state": "inactive", "created_at": 0, "priority": -3, "data": {}},
        {"queues": "a", "state": "blocked", "created_at": 1, "waiting_for": ["j"], "log": []},
        {"queues": "a", "state": "inactive", "created_at": 1, "origin": "producer-a"},
        base_job(1_700_000_000_000, "email"),  # the seed's createJob
        base_job(1_700_000_000_000, ["email", "welcome"]),
    ],
)
def test_examples_a_producer_may_create_pass_both(
    js: DesignDocJS, validator: jsonschema.Draft202012Validator, doc: dict[str, Any]
) -> None:
    assert created_by_producer(js, doc) is None
    assert validator.is_valid(doc)


def test_a_producer_cannot_write_another_producers_origin(js: DesignDocJS) -> None:
    """The one rule the schema cannot state (it names the writer): what
    makes a pull replication's selector on `origin` mean "my jobs"."""
    doc = {"queues": "a", "state": "inactive", "created_at": 1, "origin": "producer-b"}
    refusal = created_by_producer(js, doc)
    assert refusal is not None and "origin" in refusal[1]
    admin = {"name": "boss", "roles": ["_admin"]}
    assert js.validate({"_id": "j", **doc}, None, admin, {}) is None


def test_the_design_doc_serves_the_schema(db: Database) -> None:
    assert json.loads(db.attachment("_design/queshot", ATTACHMENT)) == job_schema()
