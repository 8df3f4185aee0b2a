"""Who may do what: queshot_producer creates waiting jobs only, queshot_worker
moves jobs through their lifecycle, queshot_admin (and server or database
admins) edit and requeue; anyone else is refused.

The real thing - users in `_users` acting on the database - runs only against
Apache CouchDB (COUCHDB_BIN or COUCHDB_URL): pouchdb-server is an admin
party, and hangs or crashes on some anonymous requests once an admin
exists. So that the
rules are checked on every run, the rendered validate_doc_update is also run
directly in QuickJS (the engine CouchDB 3.4+ uses) with each role's userCtx."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import REAL_COUCHDB
from designdoc_js import DesignDocJS

from queshot import admin, designdocs
from queshot.couch import Couch, Database, Forbidden, Unauthorized, safe_url
from queshot.jobs import now_ms
from queshot.queue import Queue
from queshot.worker import Worker

real_couchdb = pytest.mark.skipif(
    not REAL_COUCHDB,
    reason="acts as users in _users on a members-only database: pouchdb-server runs as an "
    "admin party and hangs or crashes on some anonymous requests once an admin exists; "
    "set COUCHDB_BIN (or COUCHDB_URL) to run it on Apache CouchDB",
)

SECURITY = json.loads((designdocs.default_source() / designdocs.SECURITY_FILE).read_text())


def job(**fields: Any) -> dict[str, Any]:
    doc = {
        "_id": "j1",
        "queues": "email",
        "state": "inactive",
        "worker_id": None,
        "priority": 0,
        "log": [],
        "data": {},
        "created_at": 1,
        "attempts": 0,
        "max_attempts": 1,
    }
    doc.update(fields)
    return doc


ACTIVE = {"state": "active", "worker_id": "w1", "lease_expires_at": 2, "attempts": 1}
FAILED = {"state": "failed", "failed_at": 2, "attempts": 1, "error": {"message": "boom"}}
COMPLETE = {"state": "complete", "completed_at": 2, "attempts": 1}
STATUS = {"_id": "queshot-worker:w1", "type": "queshot_worker", "name": "w1", "last_seen": 1}
DELETED = {"_id": "j1", "_deleted": True}
NEEDS_ROLE = (
    "unauthorized",
    "queshot: writing to this queue needs the role queshot_producer, queshot_worker "
    "or queshot_admin",
)


# -- the rules, straight from the rendered validate_doc_update -------------------------


@pytest.fixture(scope="module")
def validate() -> Callable[..., tuple[str, str] | None]:
    """validate_doc_update(new, old, userCtx, secObj) as CouchDB would call it:
    None when allowed, else (error, reason)."""
    js = DesignDocJS()

    def call(
        new: dict, old: dict | None, roles: list[str], name: str | None = "u", sec: Any = None
    ) -> tuple[str, str] | None:
        user = {"db": "queue", "name": name, "roles": roles}
        return js.validate(new, old, user, SECURITY if sec is None else sec)

    return call


@pytest.mark.parametrize(
    ("role", "new", "old", "expected"),
    [
        # producers: create waiting jobs, nothing else
        ("queshot_producer", job(), None, None),
        ("queshot_producer", job(**FAILED), None, "a new job must be 'inactive'"),
        ("queshot_producer", job(data={"x": 1}), job(), "producers may create jobs but not"),
        ("queshot_producer", DELETED, job(), "only workers and queue admins may delete jobs"),
        ("queshot_producer", STATUS, None, "only workers may write worker status documents"),
        # workers: the lifecycle (what the update handlers write)
        ("queshot_worker", job(), None, None),
        ("queshot_worker", job(**ACTIVE), job(), None),
        ("queshot_worker", job(**COMPLETE), job(**ACTIVE), None),
        ("queshot_worker", job(**FAILED), job(**ACTIVE), None),
        ("queshot_worker", job(**ACTIVE, progress=50), job(**ACTIVE), None),
        ("queshot_worker", STATUS, None, None),
        ("queshot_worker", DELETED, job(**COMPLETE), None),
        ("queshot_worker", job(), job(**FAILED), "only a queue admin may move a job from 'failed'"),
        (
            "queshot_worker",
            job(**FAILED),
            job(),
            "only a queue admin may move a job from 'inactive'",
        ),
        ("queshot_worker", job(priority=5), job(), "only a queue admin may change 'priority'"),
        ("queshot_worker", job(queues="sms"), job(), "only a queue admin may change 'queues'"),
        ("queshot_worker", job(data={"x": 1}), job(), "only a queue admin may change 'data'"),
        ("queshot_worker", DELETED, job(**FAILED), "only a queue admin may delete a job that is"),
        ("queshot_worker", job(**COMPLETE), None, "a new job must be 'inactive'"),
        (
            "queshot_worker",
            job(**{**ACTIVE, "worker_id": "w2"}),
            job(**ACTIVE),
            "a running job stays with the worker holding it (w1)",
        ),
        # queue admins: edit and requeue, but never an invalid job
        ("queshot_admin", job(), job(**FAILED), None),
        ("queshot_admin", job(), job(**COMPLETE), None),
        ("queshot_admin", job(**FAILED), job(), None),
        ("queshot_admin", job(priority=5, data={"x": 2}), job(), None),
        ("queshot_admin", DELETED, job(**FAILED), None),
        ("queshot_admin", job(**COMPLETE), None, None),
        ("queshot_admin", job(priority="high"), job(), "invalid job: 'priority' must be"),
        ("queshot_admin", job(**ACTIVE), job(**COMPLETE), "a job cannot move from 'complete'"),
        # server admins count as queue admins
        ("_admin", job(), job(**FAILED), None),
        ("_admin", job(state="done"), job(**FAILED), "invalid job: 'state' must be one of"),
    ],
)
def test_role_rules(
    validate: Callable[..., Any], role: str, new: dict, old: dict | None, expected: str | None
) -> None:
    result = validate(new, old, [role])
    if expected is None:
        assert result is None
    else:
        assert result is not None and result[0] == "forbidden"
        assert result[1].startswith("queshot: ") and expected in result[1]


def test_database_admins_by_name_or_role_are_queue_admins(validate: Callable[..., Any]) -> None:
    by_name = {**SECURITY, "admins": {"names": ["alice"], "roles": []}}
    by_role = {**SECURITY, "admins": {"names": [], "roles": ["ops"]}}
    assert validate(job(), job(**FAILED), [], "alice", by_name) is None
    assert validate(job(), job(**FAILED), ["ops"], "bob", by_role) is None
    assert validate(job(), job(**FAILED), [], "bob", by_name) == NEEDS_ROLE


@pytest.mark.parametrize("roles", [[], ["reader"]])
@pytest.mark.parametrize("name", [None, "someone"])
def test_anyone_else_is_refused(
    validate: Callable[..., Any], roles: list[str], name: str | None
) -> None:
    assert validate(job(), None, roles, name) == NEEDS_ROLE


def test_security_admits_exactly_the_queue_roles() -> None:
    assert sorted(SECURITY["members"]["roles"]) == [
        "queshot_admin",
        "queshot_producer",
        "queshot_worker",
    ]


# -- as real users on Apache CouchDB -------------------------------------------------------


@pytest.fixture
def as_role(server_url: str, couch: Couch, db: Database) -> Iterator[Callable[..., Database]]:
    """`as_role("queshot_worker")`: the test database as a new user with that
    role (None: a user with no role), created in `_users` and removed after."""
    users = couch.database("_users")
    created: list[str] = []
    clients: list[Couch] = []

    def make(role: str | None) -> Database:
        name = f"queshot_test_{role or 'nobody'}_{uuid.uuid4().hex[:8]}"
        password = uuid.uuid4().hex
        user = {"_id": f"org.couchdb.user:{name}", "name": name, "type": "user"}
        users.save({**user, "roles": [role] if role else [], "password": password})
        created.append(user["_id"])
        client = Couch(safe_url(server_url), user=name, password=password)
        clients.append(client)
        return client.database(db.name)

    yield make
    for client in clients:
        client.close()
    for user_id in created:
        users.delete(user_id, users.get(user_id)["_rev"])


def refused(action: Callable[[], Any]) -> str:
    with pytest.raises(Forbidden) as caught:
        action()
    return caught.value.reason


@real_couchdb
def test_producer_creates_waiting_jobs_only(as_role: Callable[..., Database], db: Database) -> None:
    producer = as_role("queshot_producer")
    queue = Queue("email", producer)
    job_id = queue.create_job({"to": "a@example.org"})
    queue.create_jobs([{"n": 1}, {"n": 2}])
    assert db.get(job_id)["state"] == "inactive"

    assert "a new job must be 'inactive'" in refused(lambda: producer.save(job(_id="x", **FAILED)))
    doc = producer.get(job_id)
    doc["data"] = {"to": "b@example.org"}
    assert "producers may create jobs but not change them" in refused(lambda: producer.save(doc))
    assert "may delete jobs" in refused(lambda: producer.delete(job_id, doc["_rev"]))
    assert "producers may create jobs" in refused(lambda: queue.log_job(job_id, "hello"))
    status = {**STATUS, "last_seen": now_ms()}
    assert "only workers may write" in refused(lambda: producer.save(status))


@real_couchdb
def test_worker_runs_jobs_but_cannot_requeue_or_reprioritise(
    as_role: Callable[..., Database], db: Database
) -> None:
    worker_db = as_role("queshot_worker")
    queue = Queue("email", worker_db)
    ok_id = queue.create_job({"fail": False})
    bad_id = queue.create_job({"fail": True})

    def handler(job: Any) -> None:
        if job.data["fail"]:
            raise RuntimeError("boom")
        job.log("done")

    worker = Worker(queue, handler, poll_interval=0.2, feed_heartbeat=0.5)
    worker.start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            counts = queue.stats()
            if (counts["complete"], counts["failed"]) == (1, 1):
                break
            time.sleep(0.05)
    finally:
        worker.stop(grace=5)
    assert worker.fatal is None
    assert (db.get(ok_id)["state"], db.get(bad_id)["state"]) == ("complete", "failed")

    assert "only a queue admin may move a job from 'failed' to 'inactive'" in refused(
        lambda: queue.requeue(bad_id)
    )
    waiting = worker_db.get(queue.create_job({}))
    waiting["priority"] = 9
    assert "only a queue admin may change 'priority'" in refused(lambda: worker_db.save(waiting))
    failed = worker_db.get(bad_id)
    assert "only a queue admin may delete a job that is 'failed'" in refused(
        lambda: worker_db.delete(bad_id, failed["_rev"])
    )


@real_couchdb
def test_queue_admin_edits_requeues_and_cleans(
    as_role: Callable[..., Database], db: Database
) -> None:
    admin_db = as_role("queshot_admin")
    failed_id = "failed-job"
    db.save(job(_id=failed_id, created_at=now_ms(), **FAILED))
    db.save(job(_id="done-job", created_at=1, **COMPLETE))

    assert [o.ok for o in admin.requeue(admin_db, [failed_id])] == [True]
    assert db.get(failed_id)["attempts"] == 0
    doc = admin_db.get(failed_id)
    doc.update(priority=5, data={"edited": True})
    admin_db.save(doc)
    assert [o.ok for o in admin.clean(admin_db, state="complete", older_than=60)] == [True]
    assert db.get_or_none("done-job") is None

    doc["priority"] = "high"
    assert "invalid job: 'priority' must be an integer" in refused(lambda: admin_db.save(doc))
    with pytest.raises((Forbidden, Unauthorized)):  # design docs stay with db/server admins
        admin_db.save({"_id": "_design/mine", "views": {}})


@real_couchdb
def test_anyone_else_is_refused_by_couchdb(
    as_role: Callable[..., Database],
    server_url: str,
    db: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    nobody = as_role(None)
    with pytest.raises(Forbidden):  # not a member: CouchDB refuses before any rule runs
        nobody.save(job(_id="x", created_at=now_ms()))
    with pytest.raises(Forbidden):
        nobody.get("anything")
    monkeypatch.delenv("COUCHDB_USER", raising=False)
    monkeypatch.delenv("COUCHDB_PASSWORD", raising=False)
    with Couch(safe_url(server_url)) as anonymous, pytest.raises(Unauthorized):
        anonymous.database(db.name).save(job(_id="x", created_at=now_ms()))
