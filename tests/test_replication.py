"""Offline producers by replication (queshot.replication): jobs made in a
producer database flow into the queue database through `_replicator`, run
once, and only the producer's own come back with their results. On Apache
CouchDB 3.5 (COUCHDB_BIN): two databases on one node, a producer account in
`_users`."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import REAL_COUCHDB, running, wait_until
from recording import Runs

from queshot import cli, replication
from queshot.cli import replicating as cli_replicating
from queshot.couch import Couch, Database
from queshot.jobs import now_ms
from queshot.queue import Queue

DAY_MS = 86_400_000
real_couchdb = pytest.mark.skipif(
    not REAL_COUCHDB,
    reason="replicates through _replicator and reads _scheduler/docs: pouchdb-server has "
    "neither; set COUCHDB_BIN (or COUCHDB_URL) to run it on Apache CouchDB",
)


def test_the_replications_carry_only_the_producers_jobs_as_its_account() -> None:
    with (
        Couch("http://site:s3cret@site.example:5984/") as site,
        Couch("http://queue.example:5984/") as queue,
    ):
        push, pull = replication.replication_docs(
            site.database("orders"), queue.database("jobs"), "shop-1", "pw"
        )
    assert push["_id"] == "queshot-push:shop-1:jobs" and pull["_id"] == "queshot-pull:shop-1:jobs"
    assert push["selector"] == pull["selector"] == {"origin": "shop-1"}
    assert push["continuous"] and pull["continuous"]
    producer = {
        "url": "http://queue.example:5984/jobs",
        "auth": {"basic": {"username": "shop-1", "password": "pw"}},
    }
    local = {
        "url": "http://site.example:5984/orders",
        "auth": {"basic": {"username": "site", "password": "s3cret"}},
    }
    assert (push["source"], push["target"]) == (local, producer)
    assert (pull["source"], pull["target"]) == (producer, local)


@pytest.fixture
def producers(
    couch: Couch, db: Database, new_user: Callable[..., tuple[str, str]]
) -> Iterator[Callable[[], str]]:
    """`make()`: a new producer - an account with the role queshot_producer,
    its own database on the same node, and its two replications set up."""
    replicator = couch.database(replication.REPLICATOR)
    made: list[tuple[str, Database]] = []

    def make() -> str:
        name, password = new_user("queshot_producer", prefix="producer")
        made.append((name, site_db(couch, db, name)))
        replication.set_up(site_db(couch, db, name), db, name, password)
        PASSWORDS[name] = password
        return name

    yield make
    for name, site in made:
        for doc in replication.replication_docs(site, db, name, ""):
            stored = replicator.get_or_none(doc["_id"])
            if stored:
                replicator.delete(doc["_id"], stored["_rev"])
        if site.exists():
            site.drop()


PASSWORDS: dict[str, str] = {}


def site_db(couch: Couch, db: Database, producer: str) -> Database:
    return couch.database(f"{db.name}_{producer}")


def offline_jobs(site: Database, producer: str, count: int, clock_ms: int = 0) -> list[str]:
    """`count` jobs written into a producer's own database, as PouchDB would:
    no rules there, the producer's clock `clock_ms` off."""
    docs = [
        {
            "_id": f"{producer}-{i:04d}",
            "queues": "offline",
            "state": "inactive",
            "created_at": now_ms() + clock_ms,
            "origin": producer,
            "data": {"n": i},
        }
        for i in range(count)
    ]
    site.bulk_docs(docs)
    return [d["_id"] for d in docs]


def finished_here(site: Database, ids: list[str]) -> bool:
    rows = site.all_docs(keys=ids, include_docs=True)["rows"]
    return all((row.get("doc") or {}).get("state") == "complete" for row in rows)


@real_couchdb
def test_offline_jobs_run_once_and_each_producer_gets_back_only_its_own(
    couch: Couch, db: Database, producers: Callable[[], str]
) -> None:
    """Two producers whose clocks are a day off either way: every job of both
    runs once, and each pulls back exactly its own, with their results."""
    early, late = producers(), producers()
    ids = {
        early: offline_jobs(site_db(couch, db, early), early, 100, clock_ms=-DAY_MS),
        late: offline_jobs(site_db(couch, db, late), late, 100, clock_ms=DAY_MS),
    }
    runs = Runs()
    worker = Queue("offline", db).create_worker(runs, concurrency=4, poll_interval=0.2)
    with running(worker):
        for name in (early, late):
            wait_until(lambda n=name: finished_here(site_db(couch, db, n), ids[n]), timeout=120)
    assert sorted(runs.count) == sorted(ids[early] + ids[late])
    assert set(runs.count.values()) == {1}
    for name in (early, late):
        site = site_db(couch, db, name)
        kept = [r["id"] for r in site.all_docs()["rows"] if not r["id"].startswith("_")]
        assert sorted(kept) == ids[name]  # its own, and no other producer's
        assert site.get(ids[name][0])["result"] == {"ran": ids[name][0]}
    assert replication.origin_counts(db) == {early: {"complete": 100}, late: {"complete": 100}}

    # the same jobs replicated again, by a one-off replication with no checkpoint
    # of the first: nothing is written, nothing runs again
    push = replication.replication_docs(site_db(couch, db, early), db, early, PASSWORDS[early])[0]
    once = {key: value for key, value in push.items() if key not in ("_id", "continuous")}
    answer = couch.json("POST", "/_replicate", body=once)
    assert answer["ok"] and answer["history"][0]["docs_written"] == 0
    assert all(db.get(i)["state"] == "complete" for i in ids[early])
    assert set(runs.count.values()) == {1}


def push_failures(couch: Couch, db: Database, producer: str) -> int:
    """The revisions the queue's rules refused to the producer's push."""
    push_id = replication.replication_id(replication.PUSH, producer, db)
    lags = [lag for lag in replication.replication_lags(couch, db) if lag.doc_id == push_id]
    return lags[0].doc_write_failures if lags else 0


@real_couchdb
def test_a_producer_editing_or_deleting_its_copy_of_a_running_job_changes_nothing(
    couch: Couch, db: Database, producers: Callable[[], str]
) -> None:
    """The push may create jobs and nothing else: an edit of a job the queue
    already has is refused (counted in the push's doc_write_failures); a
    delete is not pushed at all (a
    tombstone has no origin; the rules would refuse it too, role_table.py).
    The queue database gets no branch, each job runs once, and the
    producer's copies end as the queue's, the deleted one alive again."""
    name = producers()
    site = site_db(couch, db, name)
    edited, deleted = offline_jobs(site, name, 2)
    go = threading.Event()
    runs = Runs()

    def held(job: Any) -> Any:
        assert go.wait(60)
        return runs(job)

    worker = Queue("offline", db).create_worker(held, concurrency=2, poll_interval=0.2)
    with running(worker):
        # started, and the producer has seen it start
        wait_until(lambda: all(site.get(i)["state"] == "active" for i in (edited, deleted)), 60)
        copy = site.get(edited)
        edit_rev = site.save({**copy, "data": {"n": "changed offline"}, "priority": 9})
        site.delete(deleted, site.get(deleted)["_rev"])
        wait_until(lambda: push_failures(couch, db, name) >= 1, timeout=120)
        # refused, the edit lives only here, where it could outrank the queue's
        # outcome (same length, larger hash): the producer takes it back (README)
        site.delete(edited, edit_rev)
        go.set()
        wait_until(lambda: finished_here(site, [edited, deleted]), timeout=60)
    assert runs.count == {edited: 1, deleted: 1}
    for job_id in (edited, deleted):
        stored = db.get(job_id, conflicts="true")
        assert "_conflicts" not in stored and stored["state"] == "complete"
    assert db.get(edited)["data"] == {"n": 0}


@real_couchdb
def test_replicate_and_stats_from_the_command_line(
    server_url: str,
    couch: Couch,
    db: Database,
    producers: Callable[[], str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    name = producers()  # its account; the command writes its replications again
    monkeypatch.setenv(cli_replicating.PASSWORD_ENV, PASSWORDS[name])
    site = site_db(couch, db, name)
    argv = ["replicate", "--url", server_url, "--db", db.name, server_url, site.name]
    assert cli.main([*argv, "--producer", name]) == 0
    out = capsys.readouterr().out
    assert PASSWORDS[name] not in out and f"queshot-push:{name}:{db.name}" in out
    (job_id,) = offline_jobs(site, name, 1)
    with running(Queue("offline", db).create_worker(Runs(), poll_interval=0.2)):
        wait_until(lambda: finished_here(site, [job_id]), timeout=60)
    assert cli.main(["stats", "--url", server_url, "--db", db.name]) == 0
    out = capsys.readouterr().out
    origin_row = next(line for line in out.splitlines() if line.startswith(name))
    assert origin_row.split()[1:] == ["0", "0", "0", "1", "0", "0", "1"]
    for way in ("push", "pull"):
        assert f"queshot-{way}:{name}:{db.name}" in out
    assert PASSWORDS[name] not in out


def test_stats_without_producers_prints_no_producer_lines(
    server_url: str, db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    Queue("mail", db).create_job({})
    assert cli.main(["stats", "--url", server_url, "--db", db.name]) == 0
    assert "ORIGIN" not in capsys.readouterr().out
