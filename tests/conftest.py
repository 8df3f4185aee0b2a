"""The test server, by the first of these that is set:

- `COUCHDB_URL`: that Apache CouchDB (never stopped or restarted by a test);
- `COUCHDB_BIN`: a throwaway Apache CouchDB node started from that release's
  `bin/couchdb` on a free loopback port (tests marked `cluster` also start a
  3-node cluster from it);
- else the pinned pouchdb-server on a free loopback port in a temp folder.

A fresh database per test."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from queshot import Queue, Worker, designdocs, sync
from queshot.couch import Couch, Database
from queshot.devserver import DevServer
from queshot.jobs import in_queue
from queshot.localcouch import LocalCluster

COUCHDB_URL = os.environ.get("COUCHDB_URL")
COUCHDB_BIN = None if COUCHDB_URL else os.environ.get("COUCHDB_BIN")
REAL_COUCHDB = bool(COUCHDB_URL or COUCHDB_BIN)
NEEDS_COUCHDB_BIN = (
    "starts a 3-node Apache CouchDB cluster: set COUCHDB_BIN to a CouchDB 3.x bin/couchdb"
)

# CI gates main with the same generated inputs every run (.ci/run sets
# QUESHOT_CI): a landing is never refused for a draw nobody has seen. Every
# other run draws afresh and keeps exploring.
settings.register_profile("ci", derandomize=True)
if os.environ.get("QUESHOT_CI"):
    settings.load_profile("ci")


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    if COUCHDB_URL:
        yield COUCHDB_URL
    elif COUCHDB_BIN:
        with LocalCluster(COUCHDB_BIN) as node:
            yield node.url
    else:
        with DevServer() as server:
            yield server.url


@pytest.fixture(scope="session")
def couch_cluster() -> Iterator[LocalCluster]:
    """Three Apache CouchDB nodes from COUCHDB_BIN, joined into one cluster
    (n=3), for the whole session; a test that stops a node starts it again."""
    if not COUCHDB_BIN:
        pytest.skip(NEEDS_COUCHDB_BIN)
    with LocalCluster(COUCHDB_BIN, size=3) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def couch(server_url: str) -> Iterator[Couch]:
    with Couch(server_url) as client:
        yield client


@pytest.fixture
def db_name(couch: Couch) -> Iterator[str]:
    """A fresh database name; the database is dropped after the test if it exists."""
    name = f"queshot_test_{uuid.uuid4().hex[:12]}"
    yield name
    db = couch.database(name)
    if db.exists():
        db.drop()


def queue_database(couch: Couch, name: str) -> Database:
    """Database `name` with queshot's design docs and security pushed."""
    sync.push(couch, [name], designdocs.load())
    return couch.database(name)


@pytest.fixture
def db(couch: Couch, db_name: str) -> Database:
    """A fresh database with queshot's design docs and security pushed."""
    return queue_database(couch, db_name)


@pytest.fixture
def new_user(couch: Couch) -> Iterator[Callable[..., tuple[str, str]]]:
    """`new_user("queshot_producer")`: (name, password) of a new account in
    `_users` with that role (None: no role), removed after the test. Apache
    CouchDB only: pouchdb-server is an admin party."""
    users = couch.database("_users")
    made: list[str] = []

    def make(role: str | None, prefix: str | None = None) -> tuple[str, str]:
        prefix = prefix or f"queshot_test_{role or 'nobody'}"
        name, password = f"{prefix}_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
        user_id = f"org.couchdb.user:{name}"
        users.save(
            {"_id": user_id, "name": name, "type": "user", "roles": [role] if role else []}
            | {"password": password}
        )
        made.append(user_id)
        return name, password

    yield make
    for user_id in made:
        users.delete(user_id, users.get(user_id)["_rev"])


@pytest.fixture
def disk_server(tmp_path: Path) -> Iterator[Any]:
    """A server of the test's own that keeps its data on disk, so that the
    test may stop (`stop(keep_workdir=True)`), start or restart it: a CouchDB
    node with COUCHDB_BIN, else a pouchdb-server. Skipped with COUCHDB_URL:
    the tests do not stop someone's CouchDB."""
    if COUCHDB_URL:
        pytest.skip("stops the server, so it needs a server of its own; COUCHDB_URL is set")
    if COUCHDB_BIN:
        with LocalCluster(COUCHDB_BIN) as cluster:
            yield cluster.nodes[0]
        return
    with DevServer(data_dir=tmp_path / "data") as server:
        yield server


TESTS_DIR = Path(__file__).resolve().parent


@pytest.fixture
def record_file(tmp_path: Path) -> Path:
    """Where worker subprocesses running tests/recording.py log executions."""
    return tmp_path / "executions.jsonl"


@pytest.fixture
def spawn_worker(server_url: str, record_file: Path) -> Iterator[Callable[..., subprocess.Popen]]:
    """Start `queshot worker` subprocesses (handler from tests/recording.py by
    default); any still running at the end are killed."""
    processes: list[subprocess.Popen] = []

    def spawn(
        db_name: str,
        queue: str,
        *args: str,
        handler: str = "recording:handle",
        stderr: Any = subprocess.PIPE,
        pythonpath: tuple[Path, ...] = (),
        url: str | None = None,
    ) -> subprocess.Popen:
        path = os.pathsep.join(str(p) for p in (*pythonpath, TESTS_DIR))
        env = dict(os.environ, PYTHONPATH=path, QUESHOT_TEST_RECORD=str(record_file))
        command = [
            sys.executable,
            "-m",
            "queshot.cli",
            "worker",
            handler,
            "--queue",
            queue,
            "--url",
            url or server_url,
            "--db",
            db_name,
            *args,
        ]
        process = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=stderr, text=True
        )
        processes.append(process)
        return process

    yield spawn
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()


def wait_until(predicate: Callable[[], Any], timeout: float = 30.0, every: float = 0.1) -> Any:
    """Poll until `predicate()` is truthy; fail the test with a clear message on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    pytest.fail(f"condition not met within {timeout} s: {predicate.__doc__ or predicate}")


@contextlib.contextmanager
def running(*workers: Worker, grace: float = 5.0) -> Iterator[None]:
    """Run in-process workers for the body of a `with`, then stop them."""
    for worker in workers:
        worker.start()
    try:
        yield
    finally:
        for worker in workers:
            worker.stop(grace=grace)


def settled(queue: Queue) -> bool:
    """Whether no job of `queue` (or of a queue under it) is waiting, blocked
    or running, read from the documents themselves in one snapshot: a view
    read while pouchdb-server is still indexing an earlier write can answer
    from before it (a retry would then look finished)."""
    rows = queue.db.all_docs(include_docs=True)["rows"]
    return not any(
        in_queue(doc.get("queues"), queue.path) and doc.get("state") in UNSETTLED
        for doc in (row.get("doc") or {} for row in rows)
    )


UNSETTLED = ("inactive", "blocked", "active")


def run_until_settled(queue: Queue, handler: Callable[..., Any], **options: Any) -> Worker:
    """Run a worker until no job of `queue` is waiting or running; returns it."""
    worker = queue.create_worker(handler, poll_interval=0.2, **options)
    with running(worker):
        wait_until(lambda: settled(queue), timeout=20)
    return worker


@pytest.fixture
def push_variant(couch: Couch, db_name: str, tmp_path: Path) -> Callable[..., Database]:
    """Push a modified copy of queshot's design docs to the test database:
    `edit(folder)` changes the copy of designdocs/queshot/ first."""

    def push(edit: Callable[[Path], None]) -> Database:
        source = tmp_path / "designdocs"
        shutil.copytree(designdocs.default_source(), source)
        edit(source / "queshot")
        sync.push(couch, [db_name], designdocs.load(source))
        return couch.database(db_name)

    return push


@pytest.fixture(scope="module")
def module_db(couch: Couch) -> Iterator[Database]:
    """One database with the design docs for a whole test module, for tests that
    each write their own documents (a fresh one per test costs ~0.2 s)."""
    name = f"queshot_test_{uuid.uuid4().hex[:12]}"
    sync.push(couch, [name], designdocs.load())
    yield couch.database(name)
    couch.database(name).drop()


@pytest.fixture
def meeting_place(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private runtime directory for `--share-feed` workers (QUESHOT_RUNTIME_DIR),
    the test's own, short enough for a Unix socket's path."""
    path = Path(tempfile.mkdtemp(prefix="qs-"))
    monkeypatch.setenv("QUESHOT_RUNTIME_DIR", str(path))
    yield path
    shutil.rmtree(path, ignore_errors=True)
