"""Exactly once on a real 3-node Apache CouchDB cluster (COUCHDB_BIN): one
`queshot worker` process per node, racing for the same jobs, so that claims
sent through different nodes collide and leave conflict branches (answered
202, settled from every copy). Then the same with one node stopped part-way:
claims go on through the 202 path while it is down. Every job must run
exactly once, none be left unrun, and no conflict branch be left behind."""

from __future__ import annotations

import functools
import re
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import queue_database, wait_until
from recording import count_events

from queshot import Queue
from queshot.couch import Couch, CouchError, Database
from queshot.localcouch import LocalCluster

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

JOBS = 1500
CONCURRENCY = 4
LEASE = "20"
SETTLED_202 = re.compile(r"claim of \S+ answered 202: settling")


def drain(
    cluster: LocalCluster,
    spawn_worker: Callable[..., subprocess.Popen],
    record_file: Path,
    tmp_path: Path,
    db_name: str,
    *,
    while_running: Callable[[Queue], None] = lambda queue: None,
    slots: str = "--concurrency",
) -> dict[str, int]:
    """Enqueue JOBS no-op jobs, drain them with one worker per node, and check
    the outcome; returns the counts for the test's report."""
    with Couch(cluster.url) as couch:
        db = queue_database(couch, db_name)
        assert db.replicas() == 3
        queue = Queue("cluster", db)
        ids = queue.create_jobs([{"n": n} for n in range(JOBS)])
        logs = [tmp_path / f"worker-{i}.log" for i in range(len(cluster.nodes))]
        workers = []
        for url, log_path in zip(cluster.urls, logs, strict=True):
            with log_path.open("w") as log:
                workers.append(
                    spawn_worker(
                        db_name,
                        "cluster",
                        slots,
                        str(CONCURRENCY),
                        "--lease-seconds",
                        LEASE,
                        "--poll-interval",
                        "1",
                        url=url,
                        stderr=log,
                    )  # fmt: skip
                )
        while_running(queue)

        def all_complete() -> bool:
            """every job complete"""
            try:
                return queue.stats()["complete"] == JOBS
            except CouchError:
                return False

        wait_until(all_complete, timeout=300, every=1)
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        assert [worker.wait(60) for worker in workers] == [0] * len(workers)
        branches = conflicted(db, ids)

    starts = count_events(record_file, "start")
    text = "".join(path.read_text() for path in logs)
    counts = {
        "jobs": JOBS,
        "runs": sum(starts[job_id] for job_id in ids),
        "double runs": sum(1 for job_id in ids if starts[job_id] > 1),
        "unrun": sum(1 for job_id in ids if starts[job_id] == 0),
        "branches left": len(branches),
        "202s seen": len(SETTLED_202.findall(text)),
    }
    print(f"\n{counts}")
    assert counts["double runs"] == counts["unrun"] == counts["branches left"] == 0, counts
    assert counts["runs"] == JOBS, counts
    assert set(starts) == set(ids)
    return counts


def conflicted(db: Database, ids: list[str]) -> list[str]:
    """Jobs that still have a conflict branch, read from every copy."""
    left = []
    for job_id in ids:
        leaves = [leaf for leaf in db.open_revs(job_id, r=3) if not leaf.get("_deleted")]
        if len(leaves) != 1:
            left.append(job_id)
    return left


@pytest.fixture
def drained(
    couch_cluster: LocalCluster,
    spawn_worker: Callable[..., subprocess.Popen],
    record_file: Path,
    tmp_path: Path,
    db_name: str,
) -> Callable[..., dict[str, int]]:
    """`drain` on the session's cluster, with this test's workers and files."""
    return functools.partial(drain, couch_cluster, spawn_worker, record_file, tmp_path, db_name)


def test_workers_on_three_nodes_run_every_job_exactly_once(drained: Callable) -> None:
    drained()


def test_workers_with_child_processes_on_three_nodes_run_every_job_exactly_once(
    drained: Callable,
) -> None:
    drained(slots="--processes")


def test_exactly_once_with_a_node_stopped_part_way(
    couch_cluster: LocalCluster, drained: Callable
) -> None:
    """The third node stops once a third of the jobs are done and starts again
    8 s later (within the workers' lease, so that its own worker's finished
    jobs are reported rather than taken back): meanwhile the other two go on,
    every claim answered 202 (w=3 cannot be met) and settled."""
    node = couch_cluster.nodes[2]
    done_while_down: list[int] = []

    def stop_a_node(queue: Queue) -> None:
        wait_until(lambda: queue.stats()["complete"] >= JOBS // 3, timeout=120, every=0.5)
        node.stop(keep_workdir=True)
        try:
            before = queue.stats()["complete"]
            time.sleep(8)  # the outage itself: what is measured is what happens during it
            done_while_down.append(queue.stats()["complete"] - before)
        finally:
            node.start()

    try:
        counts = drained(while_running=stop_a_node)
    finally:
        if node.pid is None:
            node.start()
    print(f"jobs completed while the node was down: {done_while_down}")
    assert done_while_down and done_while_down[0] > 0, "claims stopped while a node was down"
    assert counts["202s seen"] > 0


def test_the_cluster_fixture_forms_a_cluster(couch_cluster: LocalCluster) -> None:
    with Couch(couch_cluster.urls[1]) as couch:
        membership = couch.json("GET", "/_membership")
        assert len(membership["cluster_nodes"]) == 3
        assert len(membership["all_nodes"]) == 3
        assert couch.connected_nodes() == set(membership["all_nodes"])
    assert Counter(url.rsplit(":", 1)[1] for url in couch_cluster.urls).most_common(1)[0][1] == 1
