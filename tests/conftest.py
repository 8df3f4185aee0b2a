"""The test server: Apache CouchDB at COUCHDB_URL when set, else the pinned
pouchdb-server on a free loopback port in a temp folder. A fresh database per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

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


@pytest.fixture(scope="module")
def module_db(couch: Couch) -> Iterator[Database]:
    """One database with the design docs for a whole test module, for tests that
    each write their own documents (a fresh one per test costs ~0.2 s)."""
    name = f"queshot_test_{uuid.uuid4().hex[:12]}"
    designdocs.push(couch, [name], designdocs.load())
    yield couch.database(name)
    couch.database(name).drop()
