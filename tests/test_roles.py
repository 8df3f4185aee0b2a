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
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import role_table
from conftest import REAL_COUCHDB
from designdoc_js import DesignDocJS

from queshot import bulk as acting
from queshot import designdocs, protocol
from queshot.couch import Couch, CouchError, Database, Forbidden, Unauthorized, safe_url
from queshot.jobs import now_ms
from queshot.protocol import DDOC
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
    return role_table.job(**{"_id": "j1", "created_at": 1, **fields})


FAILED = {"state": "failed", "failed_at": 2, "attempts": 1, "error": {"message": "boom"}}
COMPLETE = {"state": "complete", "completed_at": 2, "attempts": 1}
STATUS = {"_id": "queshot-worker:w1", "type": "queshot_worker", "name": "w1", "last_seen": 1}
NEEDS_ROLE = (
    "unauthorized",
    "queshot: writing to this queue needs the role queshot_producer, queshot_worker "
    "or queshot_admin",
)
# Each role's userCtx, and the database's _security it is judged with.
DBA_SECURITY = {**SECURITY, "admins": {"names": ["dba"], "roles": []}}
USERS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "producer": ({"name": "ingest", "roles": ["queshot_producer"]}, SECURITY),
    "worker": ({"name": "runner", "roles": ["queshot_worker"]}, SECURITY),
    "queue admin": ({"name": "ops", "roles": ["queshot_admin"]}, SECURITY),
    "database admin": ({"name": "dba", "roles": []}, DBA_SECURITY),
    "server admin": ({"name": "root", "roles": ["_admin"]}, SECURITY),
}


# -- the rules, straight from the rendered validate_doc_update -------------------------


@pytest.fixture(scope="module")
def js() -> DesignDocJS:
    return DesignDocJS()


@pytest.fixture(scope="module")
def validate(js: DesignDocJS) -> Callable[..., tuple[str, str] | None]:
    """validate_doc_update(new, old, userCtx, secObj) as CouchDB would call it:
    None when allowed, else (error, reason)."""

    def call(
        new: dict, old: dict | None, roles: list[str], name: str | None = "u", sec: Any = None
    ) -> tuple[str, str] | None:
        user = {"db": "queue", "name": name, "roles": roles}
        return js.validate(new, old, user, SECURITY if sec is None else sec)

    return call


def quickjs_outcome(js: DesignDocJS, role: str, scenario: role_table.Scenario) -> str | None:
    """None when `role` may make the write of `scenario`, else why not."""
    user, security = USERS[role]
    stored = scenario.old(user["name"])
    old = None if stored is None else {**stored, "_rev": "1-a"}
    if scenario.handler is not None:
        assert old is not None and scenario.body is not None
        new, answer = js.update(scenario.handler, old, scenario.body(user["name"]), user)
        if new is None:
            return f"the handler answered {answer}"
    elif scenario.delete:
        assert old is not None
        new = {"_id": old["_id"], "_rev": "1-a", "_deleted": True}
    else:
        assert scenario.new is not None
        new = {**scenario.new(user["name"]), **({"_rev": "1-a"} if old else {})}
    refused = js.validate(new, old, user, security)
    if refused is not None:
        assert refused[1].startswith("queshot: "), refused
        return refused[1]
    return None


def test_the_readme_roles_table_is_the_role_table() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    assert role_table.render() in readme


@pytest.mark.parametrize(
    "write", [w for w in role_table.WRITES if not w.by_couchdb], ids=lambda w: w.what[:60]
)
def test_each_role_may_make_exactly_the_writes_of_the_role_table(
    js: DesignDocJS, write: role_table.Write
) -> None:
    for scenario in write.scenarios:
        for role in role_table.ROLES:
            why = quickjs_outcome(js, role, scenario)
            if role in write.allowed:
                assert why is None, (role, scenario, why)
            else:
                assert why is not None, (role, scenario)


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
def as_role(
    server_url: str, db: Database, new_user: Callable[..., tuple[str, str]]
) -> Iterator[Callable[..., Database]]:
    """`as_role("queshot_worker")`: the test database as a new user with that
    role (None: a user with no role), created in `_users` and removed after."""
    clients: list[Couch] = []

    def make(role: str | None) -> Database:
        name, password = new_user(role)
        client = Couch(safe_url(server_url), user=name, password=password)
        clients.append(client)
        return client.database(db.name)

    yield make
    for client in clients:
        client.close()


def couchdb_outcome(
    actor: Database, admin_db: Database, name: str, scenario: role_table.Scenario, bulk: bool
) -> str | None:
    """As quickjs_outcome, on Apache CouchDB: `old` stored (or removed) by a
    server admin, then the write made by `actor`, whose user name is `name`;
    PUTs through `_bulk_docs` when `bulk`."""
    stored = scenario.old(name)
    doc_id = scenario.on or (stored or scenario.new(name))["_id"]  # type: ignore[misc]
    current = admin_db.get_or_none(doc_id)
    if current is not None and scenario.on is None:
        admin_db.delete(doc_id, current["_rev"])
    rev = admin_db.save(dict(stored)) if stored is not None else None
    try:
        if scenario.handler is not None:
            assert scenario.body is not None
            answer = actor.update(DDOC, scenario.handler, doc_id, scenario.body(name))
            return None if answer.status < 300 else f"the handler answered {answer.status}"
        if scenario.delete:
            actor.delete(doc_id, rev)  # type: ignore[arg-type]
            return None
        assert scenario.new is not None
        new = {**scenario.new(name), **({"_rev": rev} if rev else {})}
        if not bulk:
            actor.save(new)
            return None
        [result] = actor.bulk_docs([new])
        return result.get("reason") if "error" in result else None
    except CouchError as exc:
        return f"{type(exc).__name__}: {exc}"


@real_couchdb
def test_each_role_may_make_exactly_the_writes_of_the_role_table_on_couchdb(
    as_role: Callable[..., Database], db: Database
) -> None:
    """Every write of the role table, as real users: PUT, _bulk_docs, DELETE,
    each handler; a database admin is a user named in `_security`'s admins."""
    actors = {
        "producer": as_role("queshot_producer"),
        "worker": as_role("queshot_worker"),
        "queue admin": as_role("queshot_admin"),
        "database admin": as_role(None),
        "server admin": db,
    }
    names = {role: actor.couch.user for role, actor in actors.items()}
    security = db.security()
    security["admins"] = {"names": [names["database admin"]], "roles": []}
    db.set_security(security)
    wrong = []
    for write in role_table.WRITES:
        for scenario in write.scenarios:
            ways = [False, True] if scenario.new is not None else [False]
            for role, bulk in ((r, b) for r in role_table.ROLES for b in ways):
                why = couchdb_outcome(actors[role], db, names[role], scenario, bulk)
                if (why is None) != (role in write.allowed):
                    wrong.append((write.what, role, "bulk" if bulk else "", why))
                if scenario.on is not None:  # leave the queue unpaused for the next
                    protocol.pause(db, ["email"], False)
    assert not wrong


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
    assert "only a queue admin may edit a job that is 'inactive'" in refused(
        lambda: worker_db.save(waiting)
    )
    assert "only a queue admin may delete a job that is 'inactive'" in refused(
        lambda: worker_db.delete(waiting["_id"], worker_db.get(waiting["_id"])["_rev"])
    )
    # a finished one it may delete: workers apply the queues' retention rules
    worker_db.delete(bad_id, worker_db.get(bad_id)["_rev"])


@real_couchdb
def test_queue_admin_edits_requeues_and_cleans(
    as_role: Callable[..., Database], db: Database
) -> None:
    admin_db = as_role("queshot_admin")
    failed_id = "failed-job"
    db.save(job(_id=failed_id, created_at=now_ms(), **FAILED))
    db.save(job(_id="done-job", created_at=1, **COMPLETE))

    assert [o.ok for o in acting.requeue(admin_db, [failed_id])] == [True]
    assert db.get(failed_id)["attempts"] == 0
    doc = admin_db.get(failed_id)
    doc.update(priority=5, data={"edited": True})
    admin_db.save(doc)
    assert [o.ok for o in acting.clean(admin_db, state="complete", older_than=60)] == [True]
    assert db.get_or_none("done-job") is None

    doc["priority"] = "high"
    assert "invalid job: 'priority' must be a whole number" in refused(lambda: admin_db.save(doc))
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
