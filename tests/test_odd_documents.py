"""Every reader survives every document (issue 20): odd documents
(tests/odd_documents.py) written before `queshot push` installed the rules
that would refuse them, then `queshot stats/jobs/show/workers/schedules`
and a `/metrics` scrape, each against the test server. No traceback, exit 0,
and every line printed for people safe for a terminal."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from conftest import running, wait_until
from odd_documents import (
    DEEP_JOB,
    LIMITED_PARENT,
    odd_job_id,
    odd_limits,
    odd_worker_name,
    store_before_rules,
)
from prometheus_client import start_http_server

from queshot import admin, designdocs, protocol, sync
from queshot.cli import main, reports
from queshot.couch import Couch, Database
from queshot.jobs import STATES
from queshot.metrics import database_registry
from queshot.protocol import read_docs
from queshot.queue import Queue


@pytest.fixture(scope="module")
def odd_db(couch: Couch) -> Iterator[tuple[Database, list[dict[str, Any]]]]:
    db = couch.database(f"queshot_test_{uuid.uuid4().hex[:12]}")
    db.create()
    jobs = store_before_rules(db)
    sync.push(couch, [db.name], designdocs.load())
    yield db, jobs
    db.drop()


def run(capsys: pytest.CaptureFixture[str], server_url: str, db: Database, *args: str) -> str:
    """One command, in-process: exit 0 and what it printed, checked safe."""
    status = main([*args, "--url", server_url, "--db", db.name])
    captured = capsys.readouterr()
    assert status == 0, (args, captured.err)
    if "--json" in args:
        json.loads(captured.out)
    else:
        for line in captured.out.splitlines():
            assert line.isprintable(), (args, line)
    return captured.out


@pytest.mark.parametrize("form", [[], ["--json"]])
def test_stats_survives_odd_queues(
    capsys: pytest.CaptureFixture[str], server_url: str, odd_db: Any, form: list[str]
) -> None:
    db, jobs = odd_db
    out = run(capsys, server_url, db, "stats", *form)
    if not form:
        assert "<not a queue: 5>" in out
        assert "qqqqqqqqqq" in out  # the 100,000-character name, cut


@pytest.mark.parametrize("state", [None, *STATES])
def test_jobs_survives_odd_jobs(
    capsys: pytest.CaptureFixture[str], server_url: str, odd_db: Any, state: str | None
) -> None:
    db, _ = odd_db
    which = ["--state", state] if state else []
    run(capsys, server_url, db, "jobs", "--limit", "1000", *which)
    run(capsys, server_url, db, "jobs", "--limit", "1000", "--json", *which)


def test_show_survives_every_odd_job(
    capsys: pytest.CaptureFixture[str], server_url: str, odd_db: Any
) -> None:
    """Every job read as `show` reads it and rendered as it renders it; the
    command itself on every 20th and the odd-everywhere ones (both forms)."""
    db, jobs = odd_db
    for job in jobs:
        for line in reports.job_lines(admin.get_job(db, job["_id"])):
            assert line.isprintable(), (job["_id"], line)
    for job in [*jobs[::20], *jobs[-4:]]:
        run(capsys, server_url, db, "show", job["_id"])
        run(capsys, server_url, db, "show", job["_id"], "--json")


@pytest.mark.parametrize(
    ("field", "value", "shown"),
    [
        ("created_at", 1e308, "  created      <not a time: 1e+308>"),
        ("run_at", -1e308, "  run at       <not a time: -1e+308>"),
        ("log", [{"at": 1e308, "msg": "\x1b[2J"}, {"at": "x"}, 5, None, {"msg": {}}], "\\x1b[2J"),
        ("error", {"message": 5, "type": [], "traceback": 5, "attempt": "x"}, "<not a traceback"),
        ("queues", "\x1b[2J\x1b[H", "  queue        \\x1b[2J\\x1b[H"),
    ],
)
def test_show_says_what_it_cannot_render(
    capsys: pytest.CaptureFixture[str],
    server_url: str,
    odd_db: Any,
    field: str,
    value: Any,
    shown: str,
) -> None:
    db, _ = odd_db
    assert shown in run(capsys, server_url, db, "show", odd_job_id(field, value))


def test_a_job_nested_deeper_than_python_parses_is_shown_down_to_a_depth(
    capsys: pytest.CaptureFixture[str], server_url: str, odd_db: Any
) -> None:
    db, _ = odd_db
    out = run(capsys, server_url, db, "show", DEEP_JOB)
    assert "<nested too deep to show>" in out


@pytest.mark.parametrize("command", ["workers", "schedules", "limit show", "retention show"])
def test_workers_and_schedules_survive_odd_documents(
    capsys: pytest.CaptureFixture[str], server_url: str, odd_db: Any, command: str
) -> None:
    db, _ = odd_db
    out = run(capsys, server_url, db, *command.split())
    run(capsys, server_url, db, *command.split(), "--json")
    if command == "workers":
        line = next(row for row in out.splitlines() if odd_worker_name("jobs", 5) in row)
        assert "<not a list: 5>/1" in line


def test_metrics_answers_a_scrape_while_odd_queues_exist(odd_db: Any) -> None:
    db, _ = odd_db
    server, thread = start_http_server(0, addr="127.0.0.1", registry=database_registry(db))
    try:
        response = httpx.get(f"http://127.0.0.1:{server.server_port}/metrics", timeout=30)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert response.status_code == 200, response.text
    assert 'queshot_queue_jobs{queue="<not a queue: 5>",state="failed"}' in response.text


def test_a_view_query_too_long_for_a_url_is_sent_in_a_body(odd_db: Any) -> None:
    """CouchDB refuses a request line over about 8 KB; the key range of a
    queue with a 100,000-character name goes in a POST body (both servers)."""
    db, _ = odd_db
    path = ["q" * 100_000]
    rows = protocol.listing(db, protocol.JOBS_BY_QUEUE, startkey=[path], endkey=[path, {}])
    assert len(rows) <= 1
    rows = protocol.listing(db, protocol.JOBS_BY_STATE, startkey=["failed"], endkey=["failed", {}])
    assert rows  # the short ones still go in the URL


def test_a_worker_runs_the_jobs_of_queues_under_odd_limits(odd_db: Any) -> None:
    """A limit stored before the rules with numbers they refuse is left out
    (with a warning): its queue's jobs run as if it had none; one the rules
    allow holds as set. Either way the worker goes on."""
    db, _ = odd_db
    ids = [
        Queue([LIMITED_PARENT, f"{number:04d}"], db).create_job({"n": number})
        for number in range(len(odd_limits()))
    ]
    with running(Queue(LIMITED_PARENT, db).create_worker(lambda job: None, poll_interval=0.2)):
        wait_until(
            lambda: all(
                doc and doc["state"] == "complete" for doc in read_docs(db, keys=ids).values()
            ),
            timeout=120,
        )
