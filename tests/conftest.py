"""The test server: Apache CouchDB at COUCHDB_URL when set, else the pinned
pouchdb-server on a free loopback port in a temp folder. A fresh database per test."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from queshot import designdocs
from queshot.couch import Couch, Database
from queshot.devserver import DevServer

REAL_COUCHDB = bool(os.environ.get("COUCHDB_URL"))


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    if REAL_COUCHDB:
        yield os.environ["COUCHDB_URL"]
        return
    with DevServer() as server:
        yield server.url


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


@pytest.fixture
def db(couch: Couch, db_name: str) -> Database:
    """A fresh database with queshot's design docs and security pushed."""
    designdocs.push(couch, [db_name], designdocs.load())
    return couch.database(db_name)


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
            server_url,
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


@pytest.fixture
def push_variant(couch: Couch, db_name: str, tmp_path: Path) -> Callable[..., Database]:
    """Push a modified copy of queshot's design docs to the test database:
    `edit(folder)` changes the copy of designdocs/queshot/ first."""

    def push(edit: Callable[[Path], None]) -> Database:
        source = tmp_path / "designdocs"
        shutil.copytree(designdocs.default_source(), source)
        edit(source / "queshot")
        designdocs.push(couch, [db_name], designdocs.load(source))
        return couch.database(db_name)

    return push


@pytest.fixture(scope="module")
def module_db(couch: Couch) -> Iterator[Database]:
    """One database with the design docs for a whole test module, for tests that
    each write their own documents (a fresh one per test costs ~0.2 s)."""
    name = f"queshot_test_{uuid.uuid4().hex[:12]}"
    designdocs.push(couch, [name], designdocs.load())
    yield couch.database(name)
    couch.database(name).drop()
