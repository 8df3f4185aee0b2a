"""What the `queshot` command prints for people, without a server."""

from __future__ import annotations

import pytest

from queshot.cli import output
from queshot.jobs import now_ms


@pytest.mark.parametrize(
    ("ms", "text"),
    [(0, "0s"), (45_000, "45s"), (60_000, "1m"), (725_000, "12m 5s"), (12_000_000, "3h 20m")],
)
def test_ages_read_as_the_two_largest_units(ms: int, text: str) -> None:
    assert output.age(ms) == text


def test_times_say_how_long_ago_or_ahead() -> None:
    assert output.when(None) == "-"
    assert output.when(now_ms() - 90_000).endswith("(1m 30s ago)")
    assert "(in " in output.when(now_ms() + 3_600_000)


def test_queue_paths_read_with_slashes() -> None:
    assert output.queue_text(["email", "welcome"]) == "email/welcome"
    assert output.queue_text("email") == "email"


def test_tables_align_their_columns(capsys: pytest.CaptureFixture[str]) -> None:
    output.table(["ID", "STATE"], [["a", "complete"], ["long-id", "failed"]])
    assert capsys.readouterr().out.splitlines() == [
        "ID       STATE",
        "a        complete",
        "long-id  failed",
    ]


def test_stalls_say_how_many_are_allowed_when_the_job_says() -> None:
    assert output.stalls_text({}) == "0"
    assert output.stalls_text({"stalls": 1, "max_stalls": 2}) == "1 of 2 allowed"
