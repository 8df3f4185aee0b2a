"""Enqueuing and working through CouchDB-Python (`couchdb`) database objects,
as the seed did through cradle connections: a Queue takes the object's URL
and credentials, and the package stays out of queshot's dependencies."""

from __future__ import annotations

from typing import Any

import couchdb
import pytest
from conftest import run_until_settled

from queshot.couch import Database
from queshot.jobs import now_ms
from queshot.queue import Queue


@pytest.fixture
def couchdb_python(server_url: str, db: Database) -> couchdb.Database:
    """The test's queue database, as CouchDB-Python opens it."""
    return couchdb.Server(server_url)[db.name]


def test_a_queue_on_a_couchdb_python_database_enqueues_and_works(
    couchdb_python: couchdb.Database, db: Database
) -> None:
    queue = Queue("mail", couchdb_python)
    assert queue.db.url == db.url
    assert queue.db.couch.user == db.couch.user  # the same account, from the object
    job_id = queue.create_job({"to": "ada"})
    # a producer that writes the document itself with CouchDB-Python
    raw_id, _ = couchdb_python.save(
        {"queues": "mail", "state": "inactive", "created_at": now_ms(), "data": {"to": "bob"}}
    )
    seen: list[Any] = []
    run_until_settled(queue, lambda job: seen.append(job.data["to"]))
    assert sorted(seen) == ["ada", "bob"]
    assert {couchdb_python[i]["state"] for i in (job_id, raw_id)} == {"complete"}


def test_the_name_and_account_are_read_from_the_objects_url() -> None:
    """No request is made: the object's URL says it all (a `/` in a database
    name is quoted there, and so are credentials' odd characters)."""
    cdb = couchdb.Database("http://ada:p%40ss%3Aw@couch.example:5984/base/team%2Fjobs")
    db = Queue("mail", cdb).db
    assert (db.couch.url, db.name, db.couch.user) == (
        "http://couch.example:5984/base/",
        "team/jobs",
        "ada",
    )
    assert db.couch._credentials == ("ada", "p@ss:w")
