"""One queue-path rule in the CLI (issue 20, contract 5): "mail/welcome" and
["mail", "welcome"] are one queue in `stats`, `jobs --queue`, `pause` and
`workers`, read by jobs.queue_path, never split again by the CLI."""

from __future__ import annotations

import pytest
from legacy import legacy_job

from queshot.cli import main
from queshot.couch import Database
from queshot.jobs import now_ms


def test_a_name_with_a_slash_and_its_path_are_one_queue(
    capsys: pytest.CaptureFixture[str], server_url: str, db: Database
) -> None:
    db.save(legacy_job("as-name", "mail/welcome", progress=0))
    db.save(legacy_job("as-path", ["mail", "welcome"], progress=0))
    for worker, queues in (("by-name", "mail/welcome"), ("slash-in-part", ["mail/welcome"])):
        db.save(
            {
                "_id": f"queshot-worker:{worker}",
                "type": "queshot_worker",
                "name": worker,
                "queues": queues,
                "last_seen": now_ms(),
                "lease_seconds": 60,
            }
        )
    connection = ["--url", server_url, "--db", db.name]

    def run(*args: str) -> str:
        assert main([*args, *connection]) == 0
        return capsys.readouterr().out

    rows = [line.split() for line in run("stats").splitlines()]
    [row] = [row for row in rows if row[0] == "mail/welcome"]
    assert row[1:9] == ["2", "0", "0", "0", "0", "0", "0", "2"]  # waiting 2, ..., total 2
    listed = run("jobs", "--queue", "mail/welcome")
    assert "as-name" in listed and "as-path" in listed
    run("pause", "mail/welcome")
    assert "mail/welcome (paused)" in run("stats")
    workers = {line.split()[0]: line for line in run("workers").splitlines()[1:]}
    assert "mail/welcome" in workers["by-name"]
    assert '<not a queue: ["mail/welcome"]>' in workers["slash-in-part"]
