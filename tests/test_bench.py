"""`queshot bench` in a tiny configuration, so that it cannot rot: every
measurement runs and reports something sane. No timing thresholds here; the
targets are checked by reading `make bench`."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest
from conftest import COUCHDB_BIN, NEEDS_COUCHDB_BIN

from queshot import bench, cli, protocol
from queshot.bench.growth import REMOVED_JOB_REVISIONS, seed_removed
from queshot.bench.pool import WORKER_COMMAND, IdleWorkers, process_tree
from queshot.couch import Couch


def test_bench_runs_and_reports_every_figure(server_url: str, tmp_path: Path, capsys) -> None:
    out = tmp_path / "bench.json"
    argv = ["bench", "--url", server_url, "--jobs", "1500", "--workers", "2"]
    argv += ["--concurrency", "2", "--seconds", "1", "--contention", "1,2"]
    argv += ["--contention-jobs", "20", "--latency-jobs", "5", "--json", str(out)]
    argv += ["--small-backlog", "300", "--large-backlog", "600", "--history", "500"]
    argv += ["--listeners", ""]  # measured in the tests below

    assert cli.main(argv) == 0

    results = json.loads(out.read_text())
    for key in ("ceiling_per_s", "throughput_per_s", "ratio", "claims_per_job", "enqueue_per_s"):
        assert key in results
    assert results["ceiling_per_s"] > 0
    assert results["throughput_per_s"] > 0
    assert results["ratio"] == results["throughput_per_s"] / results["ceiling_per_s"]
    latency = results["latency_ms"]
    assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["max"]
    assert [run["workers"] for run in results["contention"]] == [1, 2]
    assert all(run["claims_per_job"] >= 1 for run in results["contention"])
    assert results["claims_per_job"] == results["contention"][-1]["claims_per_job"]
    assert results["enqueue_per_s"]["bulk"] > 0 and results["enqueue_per_s"]["single"] > 0
    assert all(5 < mb < 1000 for mb in results["worker_rss_mb"].values())
    assert 0 <= results["worker_idle_cpu_percent"] < 100
    assert results["throughput"]["worker_cpu_ms_per_job"] > 0
    bulk = results["bulk_docs_per_s"]
    assert bulk["trivial_validator"] > 0 and bulk["queue_validator"] > 0
    assert results["bulk_ratio"] == results["enqueue_per_s"]["bulk"] / bulk["trivial_validator"]
    feed, claim = results["feed_latency_ms"], results["claim_ms"]
    assert 0 < feed["p50"] <= feed["max"] and 0 < claim["p50"] <= claim["max"]
    assert results["latency_limit_ms"] == 1.5 * feed["p50"] + claim["p50"]
    assert results["latency_ratio"] == latency["p50"] / results["latency_limit_ms"]
    growth = results["growth"]
    fresh = max(run["per_s"] for run in growth["fresh"])
    assert [run["backlog"] for run in growth["fresh"]] == [300, 300]
    assert (growth["large_backlog"]["backlog"], growth["large_backlog"]["removed"]) == (600, 0)
    assert (growth["history"]["backlog"], growth["history"]["removed"]) == (300, 500)
    assert growth["backlog_ratio"] == growth["large_backlog"]["per_s"] / fresh > 0
    assert growth["history_ratio"] == growth["history"]["per_s"] / fresh > 0
    table = capsys.readouterr().out
    for row in ("ceiling", "enqueue-to-start", "server's own latency", "_bulk_docs"):
        assert row in table
    for row in ("backlog 600", "after 500 removed", "limit never reached"):
        assert row in table
    cost = results["limit_cost"]
    unlimited = max(run["per_s"] for run in cost["unlimited"])
    assert cost["ratio"] == cost["limited"]["per_s"] / unlimited > 0
    assert results["listeners"] is None and "listeners" not in table


def test_removed_jobs_are_seeded_as_tombstones_with_a_jobs_history(db) -> None:
    seed_removed(db, 3)
    rows = db.all_docs(keys=["history-000000002"])["rows"]
    assert rows[0]["value"]["deleted"] is True
    assert rows[0]["value"]["rev"].startswith(f"{REMOVED_JOB_REVISIONS}-")
    assert all(row["id"].startswith("_design/") for row in db.all_docs()["rows"])


# Every phase, each in a second or less; a test sets what it looks at.
TINY = bench.BenchConfig(
    jobs=20,
    workers=1,
    concurrency=1,
    seconds=0.5,
    contention=(),
    latency_jobs=2,
    single_jobs=2,
    idle_seconds=0.5,
    small_backlog=10,
    large_backlog=20,
    history=20,
    listeners=(),
)


def test_bench_drops_its_databases(server_url: str) -> None:
    with Couch(server_url) as couch:
        before = set(couch.all_dbs())
        bench.run(TINY, server_url)
        assert set(couch.all_dbs()) == before


def idle_workers_left() -> list[int]:
    """This test process's descendants that run `queshot worker` as IdleWorkers starts it."""
    found = []
    for pid in process_tree(os.getpid()):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                if WORKER_COMMAND[2].encode() in cmdline.read():
                    found.append(pid)
        except OSError:  # ended meanwhile
            continue
    return found


def test_listeners_are_set_against_none_measured_in_the_same_run() -> None:
    config = dataclasses.replace(
        TINY,
        concurrency=2,
        seconds=1.0,
        small_backlog=200,
        listeners=(2, 4),
        share_feed=cli.worker_takes("--share-feed"),
    )
    # A server of its own (no url): the bench reads its processes' CPU.
    results = bench.run(config)
    assert idle_workers_left() == []

    listeners = results["listeners"]
    names = ["separate_few", "separate_many", "processes", "queues"]
    names += ["share_feed"] * config.share_feed + ["same_queue"]
    runs = listeners["runs"]
    assert [run["name"] for run in runs] == names
    idle = {"separate_few": 2, "separate_many": 4, "processes": 1, "queues": 1, "share_feed": 4}
    assert [run["idle_processes"] for run in runs] == [idle.get(name, 0) for name in names]
    assert all(run["idle_rss_mb"] > 0 for run in runs if run["idle_processes"])
    assert [run["drain"] for run in runs] == ["1 x 2"] * (len(names) - 1) + ["2 x 1"]
    first, last = listeners["none"]
    assert listeners["per_s"] == max(first["per_s"], last["per_s"]) > 0
    base_cpu = min(first["server_cpu_ms_per_job"], last["server_cpu_ms_per_job"])
    assert listeners["server_cpu_ms_per_job"] == base_cpu > 0
    for run in runs:
        assert run["ratio"] == run["per_s"] / listeners["per_s"]
        assert run["cpu_ratio"] == run["server_cpu_ms_per_job"] / base_cpu
    separate = runs[1]
    per_feed = (separate["server_cpu_ms_per_job"] - base_cpu) / 4
    assert listeners["per_listener_cpu_ms"] == separate["cpu_ms_per_job_per_feed"] == per_feed
    table = dict(line.split("  ", 1) for line in bench.format_table(results).splitlines())
    row = table["4 idle workers"].strip()
    assert row.startswith(f"{separate['per_s']:,.0f} jobs/s, {separate['ratio']:.2f} x; ")
    assert f"{separate['cpu_ratio']:.2f} x, {per_feed:.2f} ms/job per feed" in row
    assert "1 idle worker --processes 4" in table and "the drain by 2 workers" in table


def test_idle_workers_that_cannot_start_are_reported_and_all_stopped(db, server_url: str) -> None:
    options = [["--queue", "bench-idle/0"], ["--queue", "bench-idle/1", "--processes", "x"]]
    starting = IdleWorkers([server_url], db, "bench-idle", options)
    with pytest.raises(RuntimeError, match="exited with code 2 before it could write its status"):
        starting.__enter__()
    assert [process.poll() is not None for process in starting.processes] == [True, True]
    assert idle_workers_left() == []
    assert list(protocol.status_docs(db)) == []


def test_percentile() -> None:
    values = [float(v) for v in range(1, 101)]
    assert bench.percentile(values, 50) == 50.5
    assert bench.percentile(values, 99) == 99.01
    assert bench.percentile([7.0], 95) == 7.0


@pytest.mark.cluster
def test_bench_on_a_cluster_spreads_workers_over_its_nodes(tmp_path: Path) -> None:
    if not COUCHDB_BIN:
        pytest.skip(NEEDS_COUCHDB_BIN)
    config = dataclasses.replace(
        TINY,
        jobs=300,
        workers=3,
        concurrency=2,
        seconds=1,
        contention=(3,),
        contention_jobs=30,
        latency_jobs=3,
        single_jobs=3,
        small_backlog=20,
        large_backlog=40,
        history=40,
        cluster=True,
    )
    results = bench.run(config)
    assert results["server"] == "Apache CouchDB 3-node cluster"
    # How many of the burst finish within the run's 2 s is the machine's to say, not the test's.
    contention = results["contention"][0]
    assert results["throughput_per_s"] > 0 and contention["workers"] == 3
    assert 0 < contention["jobs"] <= 30
