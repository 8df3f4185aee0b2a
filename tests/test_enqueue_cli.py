"""`queshot enqueue`: one job from JSON, many from JSON lines, clear errors."""

from __future__ import annotations

from pathlib import Path

from queshot import Queue
from queshot.cli import main
from queshot.couch import Database


def enqueue(server_url: str, db: Database, *args: str) -> int:
    return main(["enqueue", "--url", server_url, "--db", db.name, *args])


def test_enqueue_one_job_with_options(server_url: str, db: Database, capsys) -> None:
    assert (
        enqueue(
            server_url,
            db,
            "email/welcome",
            '{"to": "a@b.c"}',
            "--priority",
            "3",
            "--id",
            "w-1",
            "--max-attempts",
            "4",
        )
        == 0
    )
    assert capsys.readouterr().out.strip() == "w-1"
    doc = Queue(["email", "welcome"], db).get_job("w-1")
    assert (doc["queues"], doc["priority"], doc["max_attempts"]) == (["email", "welcome"], 3, 4)
    assert enqueue(server_url, db, "email/welcome", "{}", "--id", "w-1") == 1
    assert "already exists" in capsys.readouterr().err


def test_enqueue_jsonl_in_bulk(server_url: str, db: Database, tmp_path: Path, capsys) -> None:
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text('{"n": 1}\n\n{"n": 2}\n{"n": 3}\n')
    assert enqueue(server_url, db, "bulk", "--file", str(jobs)) == 0
    ids = capsys.readouterr().out.split()
    assert [Queue("bulk", db).get_job_data(i)["n"] for i in ids] == [1, 2, 3]


def test_enqueue_errors_name_the_problem(
    server_url: str, db: Database, tmp_path: Path, capsys
) -> None:
    assert enqueue(server_url, db, "q", "{not json") == 1
    assert "job data is not JSON" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"n": 1}\n{oops\n')
    assert enqueue(server_url, db, "q", "--file", str(bad)) == 1
    assert f"{bad}:2: not JSON" in capsys.readouterr().err
    assert enqueue(server_url, db, "q") == 1
    assert "give the job data" in capsys.readouterr().err
    assert Queue("q", db).stats()["inactive"] == 0
