"""No document stops the queue. As each role - a producer, a worker account,
a queue admin and a server admin - generated documents and edits (tests/
fuzzing.py) are written while `queshot worker` processes run a stream of
normal jobs. Then: every normal job ran exactly once, no worker process
exited or stopped claiming, every write a role should not make was refused
with a reason, nothing stored breaks the bounds, and every stored document
renders in `queshot show`, `jobs`, `stats`, `workers`, `schedules`,
/metrics and the dashboard.

Roles need real users, so on pouchdb-server (an admin party) the server is
fuzzed as an admin only, and the other roles' rules are fuzzed straight
through the rendered validate_doc_update in QuickJS, which runs everywhere.
A summary (documents tried and stored per role, every problem) is written to
test-artifacts/fuzz-summary.json."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import fuzzing
import pytest
from conftest import REAL_COUCHDB, wait_until
from designdoc_js import DesignDocJS
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from recording import count_events
from test_dashboard import open_dashboard, page, tab  # noqa: F401 - `page`: a fixture

from queshot import Queue, designdocs
from queshot.cli import main as cli
from queshot.couch import Couch, CouchError, Database, ServerUnreachable, doc_path, safe_url
from queshot.jobs import DEFAULTS, STATES, now_ms

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
SECURITY = json.loads((designdocs.default_source() / designdocs.SECURITY_FILE).read_text())
# Writes per role: QUESHOT_FUZZ_WRITES for a longer run; CI's pouchdb-server run is short.
WRITES_PER_ROLE = int(os.environ.get("QUESHOT_FUZZ_WRITES", 700 if REAL_COUCHDB else 300))
RULE_CHECKS_PER_ROLE = 1500
NORMAL_BATCHES, NORMAL_BATCH = 12, 10
ACTIONS = ("create", "create", "edit", "delete", "bulk", "handler")


def _summary(name: str, data: dict[str, Any]) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / "fuzz-summary.json"
    summary = json.loads(path.read_text()) if path.exists() else {}
    summary[name] = data
    path.write_text(json.dumps(summary, indent=2, default=str))


# -- the rules alone, for every role, in QuickJS -------------------------------------------


OLD_DOCS = {
    "none": None,
    "waiting": {**fuzzing.base_job(1, "work"), "_id": "j"},
    "held by another": {
        **fuzzing.base_job(1, "work"),
        "_id": "j",
        "state": "active",
        "worker_id": "w-other",
        "worker_user": "other",
        "claimed_at": 2,
        "lease_expires_at": 9e12,
        "attempts": 1,
    },
    "complete": {
        **fuzzing.base_job(1, "work"),
        "_id": "j",
        "state": "complete",
        "completed_at": 2,
        "attempts": 1,
        "result": {"ok": 1},
    },
    "another's status": {
        "_id": "queshot-worker:w-other",
        "type": DEFAULTS["worker_type"],
        "name": "w-other",
        "user": "other",
        "last_seen": 1,
    },
}


@pytest.mark.parametrize("role", ["queshot_producer", "queshot_worker"])
def test_the_rules_refuse_what_a_role_may_not_store(role: str) -> None:
    js = DesignDocJS()
    user = {"db": "queue", "name": "me", "roles": [role]}
    counts: Counter[str] = Counter()
    problems: list[str] = []

    @settings(
        max_examples=RULE_CHECKS_PER_ROLE,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(
        old_kind=st.sampled_from(sorted(OLD_DOCS)),
        doc=fuzzing.documents(now_ms()),
        spec=fuzzing.edit_specs,
    )
    def check(old_kind: str, doc: dict[str, Any], spec: list[Any]) -> None:
        old = OLD_DOCS[old_kind]
        new = doc if old is None else fuzzing.edited(old, spec)
        if old is not None:
            new["_id"] = old["_id"]
        new.setdefault("_id", uuid.uuid4().hex)
        counts["tried"] += 1
        refusal = js.validate(new, old, user, SECURITY)
        if refusal is not None:
            error, reason = refusal
            if error not in ("forbidden", "unauthorized") or not reason.startswith("queshot: "):
                problems.append(f"refusal without a reason: {refusal}")
            if "unexpectedly" in reason:
                problems.append(f"the validator broke on {old_kind}: {reason}")
            return
        counts["allowed"] += 1
        problem = fuzzing.stored_problem(new)
        if old is None:
            problem = problem or fuzzing.created_problem(new)
        elif role == "queshot_producer":
            problem = f"a producer changed a {old_kind} document"
        else:
            problem = problem or fuzzing.edited_problem(old, new, "me", now_ms())
        if problem:
            problems.append(f"{role} on {old_kind}: {problem}: {json.dumps(new)[:300]}")

    check()
    _summary(f"rules as {role}", {**counts, "problems": problems[:50]})
    assert counts["tried"] >= RULE_CHECKS_PER_ROLE
    assert not problems, "\n".join(problems[:20])


# -- a real server, real workers ----------------------------------------------------------


def _with_user(url: str, name: str, password: str) -> str:
    parts = urlsplit(safe_url(url))
    netloc = f"{quote(name, safe='')}:{quote(password, safe='')}@{parts.netloc}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


@pytest.fixture
def accounts(
    server_url: str, db: Database, new_user: Callable[..., tuple[str, str]]
) -> Iterator[dict[str, tuple[str, Database]]]:
    """role -> (user name, the test database as that user). On pouchdb-server
    (an admin party) only the server admin, as the test itself connects."""
    made: dict[str, tuple[str, Database]] = {"_admin": ("admin", db)}
    clients: list[Couch] = []
    roles = (
        ("queshot_producer", "queshot_worker", "queshot_admin", "runner") if REAL_COUCHDB else ()
    )
    for role in roles:
        grant = "queshot_worker" if role == "runner" else role
        name, password = new_user(grant, prefix=f"fuzz_{role}")
        url = _with_user(server_url, name, password)
        client = Couch(url)
        clients.append(client)
        made[role] = (name, client.database(db.name))
        made[role + ":url"] = (url, client.database(db.name))
    yield made
    for client in clients:
        client.close()


ADMINS = ("_admin", "queshot_admin")


@dataclass
class Write:
    """One generated write; every part is drawn whatever the action, so that
    what hypothesis draws never depends on what the server holds."""

    role: str
    action: str
    doc: dict[str, Any]
    docs: list[dict[str, Any]]
    spec: list[Any]
    pick: int
    handler: str
    body: dict[str, Any]


def writes(roles: list[str]) -> st.SearchStrategy[Write]:
    now = now_ms()
    return st.builds(
        Write,
        role=st.sampled_from(roles),
        action=st.sampled_from(ACTIONS),
        doc=fuzzing.documents(now),
        docs=st.lists(fuzzing.documents(now), min_size=1, max_size=3),
        spec=fuzzing.edit_specs,
        pick=st.integers(min_value=0, max_value=2**31),
        handler=st.sampled_from(fuzzing.HANDLERS),
        body=fuzzing.handler_bodies,
    )


class Fuzzer:
    """Sends generated writes as each role and judges each answer."""

    def __init__(self, accounts: dict[str, tuple[str, Database]], admin_db: Database) -> None:
        self.roles = {r: a for r, a in accounts.items() if ":" not in r and r != "runner"}
        self.admin_db = admin_db
        self.normal: set[str] = set()
        self.known: list[str] = []
        self.counts: dict[str, Counter[str]] = {r: Counter() for r in self.roles}
        self.problems: list[str] = []

    def problem(self, role: str, what: str) -> None:
        self.problems.append(f"{role}: {what}")

    def send(self, role: str, method: str, path: str, body: Any = None) -> Any:
        """The answer's JSON and headers, or None after a refusal (judged here)."""
        _, db = self.roles[role]
        try:
            response = db.couch.request(method, f"{db.name}/{path}", body=body)
        except ServerUnreachable as exc:
            self.problem(role, f"{method} {path[:80]}: server unreachable: {exc}")
            return None
        except CouchError as exc:
            self.counts[role]["refused"] += 1
            if path == "_security" and exc.reason == "no_majority":
                return None  # CouchDB 3.5's own answer to a member's write of _security
            if exc.error == "doc_validation":
                return None  # a "_" field: CouchDB answers 400, pouchdb-server 500
            if exc.status is None or exc.status >= 500:
                self.problem(role, f"{method} {path[:80]}: server error {exc}"[:400])
            elif not exc.reason:
                self.problem(role, f"{method} {path[:80]}: refused without a reason ({exc.status})")
            return None
        return response

    def target(self, write: Write) -> str | None:
        """The existing document the write acts on: never a normal job for
        the admins, who may rightly cancel or delete it."""
        pool = self.known + ([] if write.role in ADMINS else sorted(self.normal))
        return pool[write.pick % len(pool)] if pool else None

    def step(self, write: Write) -> None:
        self.counts[write.role]["tried"] += 1
        getattr(self, write.action)(write)

    def create(self, write: Write) -> None:
        doc = write.doc
        if write.role in ADMINS and doc.get("_id") == "_security":
            return  # an admin's raw PUT of _security is CouchDB's right; the CLI's --id is ours
        if isinstance(doc.get("_id"), str):
            response = self.send(write.role, "PUT", doc_path(doc["_id"]), doc)
        else:
            response = self.send(write.role, "POST", "", doc)
        if response is not None:
            self.stored(write.role, response.json()["id"], doc)

    def bulk(self, write: Write) -> None:
        response = self.send(write.role, "POST", "_bulk_docs", {"docs": write.docs})
        if response is None:
            return
        answers = {a.get("id"): a for a in response.json()}
        for doc in write.docs:
            answer = answers.get(doc.get("_id")) if "_id" in doc else None
            if answer is None:
                continue
            if "error" in answer:
                self.counts[write.role]["refused"] += 1
                if not answer.get("reason"):
                    self.problem(write.role, f"_bulk_docs refused {answer} without a reason")
            else:
                self.stored(write.role, answer["id"], doc)

    def stored(self, role: str, doc_id: str, doc: dict[str, Any]) -> None:
        self.counts[role]["stored"] += 1
        if doc_id.startswith("_local/"):
            return  # never validated, replicated, listed or fed: CouchDB's, not the queue's
        self.known.append(doc_id)
        problem = fuzzing.stored_problem(doc)
        if role in ("queshot_producer", "queshot_worker"):
            problem = problem or fuzzing.created_problem(doc)
        if problem:
            self.problem(role, f"created {doc_id!r}: {problem}: {json.dumps(doc)[:300]}")

    def edit(self, write: Write) -> None:
        role, doc_id = write.role, self.target(write)
        old = self.admin_db.get_or_none(doc_id) if doc_id else None
        if old is None:
            return
        new = fuzzing.edited(old, write.spec)
        sent_at = now_ms()
        if self.send(role, "PUT", doc_path(doc_id), new) is None:
            return
        self.counts[role]["stored"] += 1
        problem = fuzzing.stored_problem(new)
        if role == "queshot_producer":
            problem = "a producer changed a document"
        elif role == "queshot_worker":
            problem = problem or fuzzing.edited_problem(old, new, self.roles[role][0], sent_at)
        if problem:
            self.problem(role, f"edited {doc_id!r}: {problem}: {json.dumps(new)[:300]}")

    def delete(self, write: Write) -> None:
        role, doc_id = write.role, self.target(write)
        old = self.admin_db.get_or_none(doc_id) if doc_id else None
        if old is None:
            return
        if self.send(role, "DELETE", f"{doc_path(doc_id)}?rev={old['_rev']}") is None:
            return
        self.counts[role]["deleted"] += 1
        user = self.roles[role][0]
        mine = old.get("worker_user") == user or old.get("user") == user
        if role == "queshot_producer" or (
            role == "queshot_worker" and old.get("state") != "complete" and not mine
        ):
            self.problem(role, f"deleted {doc_id!r}: {json.dumps(old)[:300]}")

    def handler(self, write: Write) -> None:
        role, doc_id, name = write.role, self.target(write), write.handler
        if doc_id is None or (doc_id in self.normal and name in fuzzing.TAKES_A_JOB):
            return
        if not REAL_COUCHDB and not doc_id.isascii():
            return  # pouchdb-server never answers a handler on such an id (ARCHITECTURE.md)
        path = f"_design/queshot/_update/{name}/{doc_path(doc_id)}"
        response = self.send(role, "POST", path, write.body)
        if response is None or not response.headers.get("X-Couch-Update-NewRev"):
            return
        self.counts[role]["stored"] += 1
        if role == "queshot_producer" or (
            role == "queshot_worker" and doc_id in self.normal and name not in ("expire", "resolve")
        ):
            self.problem(role, f"{name} on {doc_id!r} wrote it: {write.body}"[:400])


def _readers_problems(url: str, db: Database, capsys: pytest.CaptureFixture[str]) -> list[str]:
    """Every CLI reader over every stored document: a problem for each
    traceback (raised here, in process) or an answer that is not one line."""
    problems: list[str] = []
    ids = [r["id"] for r in db.all_docs()["rows"] if not r["id"].startswith("_design/")]
    where = ["--url", url, "--db", db.name]
    commands = [["show", "--", i] for i in ids]  # '--': an id may start with '-'
    commands += [["jobs", "--state", s, "--limit", "200"] for s in STATES]
    commands += [["stats"], ["workers"], ["schedules"], ["stats", "--json"], ["jobs", "--json"]]
    for command in commands:
        try:
            status = cli([command[0], *where, *command[1:]])
        except BaseException as exc:  # noqa: BLE001 - any escape is the finding
            problems.append(f"queshot {' '.join(command)[:80]}: {type(exc).__name__}: {exc}"[:300])
            continue
        err = capsys.readouterr().err
        if status != 0 and (err.count("\n") != 1 or "Traceback" in err):
            problems.append(f"queshot {' '.join(command)[:80]} -> {status}: {err[:300]}")
    return problems


def _metrics_problem(db: Database) -> str | None:
    from prometheus_client import CollectorRegistry, generate_latest

    from queshot.metrics import DatabaseCollector

    registry = CollectorRegistry()
    registry.register(DatabaseCollector(db))
    try:
        generate_latest(registry)
    except Exception as exc:  # noqa: BLE001
        return f"/metrics: {type(exc).__name__}: {exc}"[:300]
    return None


def _dashboard_problems(browser: Any, url: str, db: Database) -> list[str]:
    """Every tab of the dashboard, with whatever is stored; its JavaScript
    errors fail the test when the page closes (the `page` fixture)."""
    problems = []
    open_dashboard(browser, url, db)
    names = browser.locator("#tabs button[data-tab]").evaluate_all(
        "buttons => buttons.map(b => b.dataset.tab)"
    )
    for name in names:
        try:
            tab(browser, name)
        except Exception as exc:  # noqa: BLE001 - a tab that never shows is the finding
            problems.append(f"dashboard tab {name}: {exc}"[:300])
    for panel in ("#counts", "#workers", "#chart"):
        if not browser.locator(panel).inner_html().strip():
            problems.append(f"dashboard: {panel} is blank")
    ARTIFACTS.mkdir(exist_ok=True)
    browser.screenshot(path=str(ARTIFACTS / "fuzz-dashboard.png"), full_page=True)
    return problems


def test_no_document_stops_the_queue(
    server_url: str,
    db: Database,
    accounts: dict[str, tuple[str, Database]],
    spawn_worker: Callable[..., subprocess.Popen],
    record_file: Path,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    page: Any,  # noqa: F811 - the fixture imported above
) -> None:
    runner_url = accounts["runner:url"][0] if REAL_COUCHDB else server_url
    logs_of_workers = [(tmp_path / f"worker{i}.log").open("w") for i in range(2)]
    workers = [
        spawn_worker(
            db.name,
            "work",
            "--concurrency",
            "3",
            "--poll-interval",
            "0.5",
            url=runner_url,
            stderr=logs_of_workers[0],
        ),
        spawn_worker(
            db.name,
            "work",
            "--concurrency",
            "2",
            "--poll-interval",
            "0.5",
            stderr=logs_of_workers[1],
        ),
    ]
    queue = Queue("work", db)
    fuzzer = Fuzzer(accounts, db)
    total = WRITES_PER_ROLE * len(fuzzer.roles)
    every = max(1, total // NORMAL_BATCHES)
    steps = Counter[str]()

    @settings(
        max_examples=total,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(one=writes(sorted(fuzzer.roles)))
    def write(one: Write) -> None:
        steps["n"] += 1
        if steps["n"] % every == 1:
            batch = [{"normal": steps["n"] + i} for i in range(NORMAL_BATCH)]
            fuzzer.normal.update(queue.create_jobs(batch))
        fuzzer.step(one)

    started = time.monotonic()
    write()
    fuzz_seconds = time.monotonic() - started
    # Still claiming after all of it: a last batch, then every normal job done.
    fuzzer.normal.update(queue.create_jobs([{"last": i} for i in range(NORMAL_BATCH)]))

    def normal_done() -> bool:
        """every normal job complete"""
        rows = db.all_docs(keys=sorted(fuzzer.normal), include_docs=True)["rows"]
        return all((r.get("doc") or {}).get("state") == "complete" for r in rows)

    try:
        wait_until(normal_done, timeout=180, every=0.5)
    except BaseException:
        rows = db.all_docs(keys=sorted(fuzzer.normal), include_docs=True)["rows"]
        left = [r.get("doc") for r in rows if (r.get("doc") or {}).get("state") != "complete"]
        logs = [Path(f.name).read_text()[-3000:] for f in logs_of_workers]
        pytest.fail(f"normal jobs not done: {json.dumps(left[:3])[:3000]}\n" + "\n".join(logs))
    runs = count_events(record_file, "start")
    twice = {i: n for i, n in runs.items() if i in fuzzer.normal and n != 1}
    exited = [w.args for w in workers if w.poll() is not None]

    problems = list(fuzzer.problems)
    docs = [r["doc"] for r in db.all_docs(include_docs=True)["rows"]]
    problems += [f"stored {d['_id']!r}: {p}" for d in docs if (p := fuzzing.stored_problem(d))]
    if db.security() != SECURITY:
        problems.append(f"_security changed: {db.security()}")
    problems += _readers_problems(server_url, db, capsys)
    problems += _dashboard_problems(page, server_url, db)
    if (metrics := _metrics_problem(db)) is not None:
        problems.append(metrics)
    _summary(
        "server" if not REAL_COUCHDB else "couchdb",
        {
            "writes": total,
            "seconds": round(fuzz_seconds, 1),
            "per role": {r: dict(c) for r, c in fuzzer.counts.items()},
            "documents stored at the end": len(docs),
            "normal jobs": len(fuzzer.normal),
            "problems": problems[:100],
        },
    )
    assert not exited, f"worker processes exited: {exited}"
    assert not twice, f"normal jobs not run exactly once: {twice}"
    assert not problems, "\n".join(problems[:30])
