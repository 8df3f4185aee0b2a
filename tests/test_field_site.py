"""A field site: a CouchDB node of its own that replicates its jobs into the
queue's 3-node cluster through `_replicator` (queshot.replication) and pulls
back its own, going offline and coming back twice - once the whole node
stopped, once its link down (the replications removed) while it keeps
making jobs. Every job runs exactly once, and no branch is left on the
cluster (COUCHDB_BIN)."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator

import pytest
from conftest import COUCHDB_BIN, NEEDS_COUCHDB_BIN, queue_database, running, wait_until
from recording import Runs

from queshot import replication
from queshot.couch import Couch, CouchError, Database
from queshot.jobs import now_ms
from queshot.localcouch import LocalCluster
from queshot.queue import Queue

pytestmark = [pytest.mark.cluster, pytest.mark.slow]
BATCH = 100


@pytest.fixture
def site() -> Iterator[LocalCluster]:
    """The field site: one CouchDB node apart from the cluster."""
    if not COUCHDB_BIN:
        pytest.skip(NEEDS_COUCHDB_BIN)
    with LocalCluster(COUCHDB_BIN) as node:
        yield node


def make_jobs(site_db: Database, producer: str, first: int) -> list[str]:
    docs = [
        {"_id": f"site-{n:05d}", "queues": "field", "state": "inactive",
         "created_at": now_ms(), "origin": producer, "data": {"n": n}}
        for n in range(first, first + BATCH)
    ]  # fmt: skip
    site_db.bulk_docs(docs)
    return [doc["_id"] for doc in docs]


def states(db: Database, ids: list[str]) -> Counter[str]:
    try:
        rows = db.all_docs(keys=ids, include_docs=True)["rows"]
    except CouchError:  # a node on its way down or up
        return Counter()
    return Counter((row.get("doc") or {}).get("state") for row in rows)


def test_a_field_site_offline_twice_runs_each_job_once(
    couch_cluster: LocalCluster, site: LocalCluster, db_name: str
) -> None:
    producer, password = f"site_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    with Couch(couch_cluster.url) as couch, Couch(site.url) as site_couch:
        queue_db = queue_database(couch, db_name)
        couch.database("_users").save(
            {"_id": f"org.couchdb.user:{producer}", "name": producer, "type": "user",
             "roles": ["queshot_producer"], "password": password}
        )  # fmt: skip
        site_db = site_couch.database("field_jobs")
        replication.set_up(site_db, queue_db, producer, password)
        runs = Runs()
        workers = [
            Queue("field", Couch(url).database(db_name)).create_worker(
                runs, concurrency=2, poll_interval=0.5
            )
            for url in couch_cluster.urls
        ]
        ids: list[str] = []
        with running(*workers):
            # offline once: the whole site stops with jobs on their way
            ids += make_jobs(site_db, producer, 0)
            wait_until(lambda: states(queue_db, ids)["complete"] > 0, timeout=120)
            site.nodes[0].stop()
            wait_until(lambda: states(queue_db, ids)["inactive"] == 0, timeout=120)
            site.nodes[0].start()
            # offline twice: the link down while the site makes more jobs
            for doc in replication.replication_docs(site_db, queue_db, producer, ""):
                replicator = site_couch.database(replication.REPLICATOR)
                replicator.delete(doc["_id"], replicator.get(doc["_id"])["_rev"])
            ids += make_jobs(site_db, producer, BATCH)
            replication.set_up(site_db, queue_db, producer, password)
            wait_until(lambda: states(site_db, ids)["complete"] == len(ids), timeout=300, every=1)
        assert runs.count == dict.fromkeys(ids, 1)
        for job_id in ids:
            leaves = [leaf for leaf in queue_db.open_revs(job_id, r=3) if not leaf.get("_deleted")]
            assert len(leaves) == 1, job_id
        assert sorted(r["id"] for r in site_db.all_docs()["rows"]) == sorted(ids)
        couch.database("_users").delete(
            f"org.couchdb.user:{producer}",
            couch.database("_users").get(f"org.couchdb.user:{producer}")["_rev"],
        )
