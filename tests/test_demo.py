"""`make demo` runs end to end: every demo job ends complete or failed on purpose."""

from __future__ import annotations

from queshot import demo
from queshot.couch import Couch


def test_demo_runs_every_job(server_url: str, couch: Couch) -> None:
    seen = []
    try:
        rows = demo.run(server_url, seen.append)
    finally:
        if couch.database(demo.DATABASE).exists():
            couch.database(demo.DATABASE).drop()
    by_name = {row.name: row for row in rows}
    assert by_name["email"].counts["failed"] == len([n for n in range(demo.EMAILS) if n % 9 == 0])
    assert by_name["email"].done == demo.EMAILS
    assert by_name["reports/daily"].counts["complete"] == demo.REPORTS
    assert len(seen) > 1, "no live progress was reported"
