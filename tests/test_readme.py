"""The README's examples run as written: the producer example against the
test server (the dev server's URL and database swapped for the test's)."""

from __future__ import annotations

import re
from pathlib import Path

from queshot.couch import Database
from queshot.jobs import STATES
from queshot.queue import Queue

README = Path(__file__).resolve().parent.parent / "README.md"
DEV_SERVER = "http://127.0.0.1:5989/"


def python_block_after(heading: str) -> str:
    text = README.read_text()
    section = text[text.index(f"\n{heading}\n") :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_producer_example_runs_as_written(server_url: str, db: Database, capsys) -> None:
    code = python_block_after("## Producing jobs")
    assert DEV_SERVER in code and '.database("queshot")' in code
    code = code.replace(DEV_SERVER, server_url).replace(
        '.database("queshot")', f".database({db.name!r})"
    )
    exec(compile(code, str(README), "exec"), {})
    exec(compile(code, str(README), "exec"), {})  # twice: the unique job is not made again
    printed = capsys.readouterr().out.splitlines()
    counts = [{**dict.fromkeys(STATES, 0), "inactive": n} for n in (4, 7)]
    assert printed == [str(c) for c in counts]
    assert Queue("email", db).get_job_data("welcome-bob") == {"to": "bob@example.org"}
