"""`queshot bench` in a tiny configuration, so that it cannot rot: every
measurement runs and reports something sane. No timing thresholds here; the
targets are checked by reading `make bench`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import COUCHDB_BIN, NEEDS_COUCHDB_BIN

from queshot import bench, cli
from queshot.bench.growth import REMOVED_JOB_REVISIONS, seed_removed
from queshot.couch import Couch


def test_bench_runs_and_reports_every_figure(server_url: str, tmp_path: Path, capsys) -> None:
    out = tmp_path / "bench.json"
    argv = ["bench", "--url", server_url, "--jobs", "1500", "--workers", "2"]
    argv += ["--concurrency", "2", "--seconds", "1", "--contention", "1,2"]
    argv += ["--contention-jobs", "20", "--latency-jobs", "5", "--json", str(out)]
    argv += ["--small-backlog", "300", "--large-backlog", "600", "--history", "500"]

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


def test_removed_jobs_are_seeded_as_tombstones_with_a_jobs_history(db) -> None:
    seed_removed(db, 3)
    rows = db.all_docs(keys=["history-000000002"])["rows"]
    assert rows[0]["value"]["deleted"] is True
    assert rows[0]["value"]["rev"].startswith(f"{REMOVED_JOB_REVISIONS}-")
    assert all(row["id"].startswith("_design/") for row in db.all_docs()["rows"])


def test_bench_drops_its_databases(server_url: str) -> None:
    config = bench.BenchConfig(
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
    )
    with Couch(server_url) as couch:
        before = set(couch.all_dbs())
        bench.run(config, server_url)
        assert set(couch.all_dbs()) == before


def test_percentile() -> None:
    values = [float(v) for v in range(1, 101)]
    assert bench.percentile(values, 50) == 50.5
    assert bench.percentile(values, 99) == 99.01
    assert bench.percentile([7.0], 95) == 7.0


@pytest.mark.cluster
def test_bench_on_a_cluster_spreads_workers_over_its_nodes(tmp_path: Path) -> None:
    if not COUCHDB_BIN:
        pytest.skip(NEEDS_COUCHDB_BIN)
    config = bench.BenchConfig(
        jobs=300,
        workers=3,
        concurrency=2,
        seconds=1,
        contention=(3,),
        contention_jobs=30,
        latency_jobs=3,
        single_jobs=3,
        idle_seconds=0.5,
        small_backlog=20,
        large_backlog=40,
        history=40,
        cluster=True,
    )
    results = bench.run(config)
    assert results["server"] == "Apache CouchDB 3-node cluster"
    assert results["throughput_per_s"] > 0 and results["contention"][0]["jobs"] == 30
