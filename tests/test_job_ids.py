"""Job ids a caller gives (issue 20): one CouchDB treats as its own is
refused before anything is written - `--id _security` used to replace the
database's members with the job's body - and any other, with '/', '?', '#',
spaces or unicode, works end to end (URL-quoted by couch.py)."""

from __future__ import annotations

import pytest
from conftest import REAL_COUCHDB

from queshot.cli import main
from queshot.couch import Database
from queshot.jobs import QueueError
from queshot.queue import Queue

SPECIAL = ["_security", "_local/x", "_design/x", "_all_docs", "_changes", "_"]


@pytest.mark.parametrize("job_id", SPECIAL)
def test_the_cli_refuses_an_id_couchdb_treats_as_its_own(
    capsys: pytest.CaptureFixture[str], server_url: str, db: Database, job_id: str
) -> None:
    security = db.security()
    connection = ["--url", server_url, "--db", db.name]
    status = main(["enqueue", "q", '{"a": 1}', "--id", job_id, *connection])
    captured = capsys.readouterr()
    assert status == 1
    assert captured.err.startswith("queshot: error: invalid job id")
    assert len(captured.err.splitlines()) == 1
    assert db.security() == security
    assert db.get_or_none("_local/x") is None


@pytest.mark.parametrize("job_id", [*SPECIAL, "", 5, "a\ud800b"])
def test_the_python_api_refuses_them_too(db: Database, job_id: object) -> None:
    queue = Queue("q", db)
    with pytest.raises(QueueError, match="invalid job id"):
        queue.create_job({}, id=job_id)
    if isinstance(job_id, str):
        with pytest.raises(QueueError, match="invalid job id"):
            queue.create_job({}, depends_on=[job_id])
    assert queue.stats()["inactive"] == 0


NON_ASCII = pytest.param(
    "日本語-✓",
    marks=pytest.mark.skipif(
        not REAL_COUCHDB,
        reason="pouchdb-server never answers an update handler on a non-ASCII id "
        "(it puts the id in a response header); Apache CouchDB does",
    ),
)


@pytest.mark.parametrize(
    "job_id", ["a/b", "what?x=1", "hash#tag", "with space", NON_ASCII, "%2F", "a+b&c=d", "..", "."]
)
def test_an_id_with_url_characters_works_end_to_end(
    capsys: pytest.CaptureFixture[str], server_url: str, db: Database, job_id: str
) -> None:
    connection = ["--url", server_url, "--db", db.name]

    def run(*args: str) -> str:
        status = main([*args, *connection])
        out = capsys.readouterr().out
        assert status == 0, (args, out)
        return out

    assert run("enqueue", "q", '{"n": 1}', "--id", job_id).strip() == job_id
    assert db.get(job_id)["data"] == {"n": 1}
    assert f"job {job_id} " in run("show", job_id)
    assert "cancelled 1 job" in run("cancel", job_id)
    assert "requeued 1 job" in run("requeue", job_id)
    assert db.get(job_id)["state"] == "inactive"
