"""What `queshot show/jobs/stats/workers/schedules` and `/metrics` make of any
document, without a server: the rendering functions fed generated odd
documents (tests/odd_documents.py) never raise, and every line they give is
safe for a terminal."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from odd_documents import (
    NOW,
    ODD_PAUSES,
    TERMINAL_TRICKS,
    odd_job,
    odd_jobs,
    odd_schedule,
    odd_schedules,
    odd_text,
    odd_value,
    odd_worker,
    odd_workers,
)
from prometheus_client import generate_latest
from prometheus_client.registry import CollectorRegistry

from queshot import admin, metrics, protocol, schedule_admin
from queshot.cli import output, reports
from queshot.jobs import PAUSE_FIELD

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def assert_safe(lines: list[str]) -> None:
    """Every line is one line a terminal only prints: nothing it would act on."""
    for line in lines:
        assert isinstance(line, str)
        assert line.isprintable(), repr(line)


@SETTINGS
@given(odd_job)
def test_show_renders_any_job(doc: dict[str, Any]) -> None:
    assert_safe(reports.job_lines(doc))


@pytest.mark.parametrize("doc", odd_jobs(), ids=lambda d: d["_id"])
def test_show_renders_each_odd_job(doc: dict[str, Any]) -> None:
    assert_safe(reports.job_lines(doc))


@SETTINGS
@given(st.lists(odd_worker, max_size=4))
def test_workers_renders_any_status_document(docs: list[dict[str, Any]]) -> None:
    found = [admin.worker_status(doc["_id"], doc, NOW) for doc in docs]
    assert_safe(reports.workers_lines(found, NOW))


def test_workers_says_whose_feed_each_reads() -> None:
    feeds = [{"role": "leader", "followers": 3}, {"role": "follower"}, {"role": "own"}, None]
    found = [
        admin.worker_status(f"queshot-worker:w{n}", {"name": f"w{n}", "feed": feed}, NOW)
        for n, feed in enumerate(feeds)
    ]
    lines = reports.workers_lines(found, NOW)
    assert "FEED" in lines[0]
    for line, shown in zip(lines[1:], ["leader of 3", "follower", "own", "-"], strict=True):
        assert f" {shown} " in line, line


def test_workers_renders_each_odd_status_document() -> None:
    docs = odd_workers()
    found = [admin.worker_status(doc["_id"], doc, NOW) for doc in docs]
    assert_safe(reports.workers_lines(found, NOW))


def stats_rows(keys: list[Any], counts: list[Any]) -> list[dict[str, Any]]:
    return [{"key": key, "value": count} for key, count in zip(keys, counts, strict=False)]


view_key = st.lists(odd_value, min_size=0, max_size=3) | odd_value


@SETTINGS
@given(st.lists(view_key, max_size=6), st.lists(odd_value, max_size=6), st.lists(odd_value))
@example(keys=[["\ud800"]], counts=[None], pauses=[])  # a lone surrogate: CI found it
@example(keys=[["q", "\udfff"]], counts=[1], pauses=[])
def test_stats_and_metrics_render_any_view_rows(
    keys: list[Any], counts: list[Any], pauses: list[Any]
) -> None:
    result = admin.tally(stats_rows(keys, counts), protocol.paused_queues({PAUSE_FIELD: pauses}))
    assert_safe(reports.stats_lines(result, NOW))
    registry = CollectorRegistry()
    registry.register(metrics.QueueFamilies(result))
    generate_latest(registry)


def test_stats_of_odd_queues_and_states() -> None:
    keys = [[value, state] for value in (5, [["a"], 5], "", "q" * 100_000) for state in ("x", 5)]
    pauses = protocol.paused_queues({PAUSE_FIELD: ODD_PAUSES})  # as a design doc holds them
    result = admin.tally(stats_rows(keys, [1] * len(keys)), pauses)
    lines = reports.stats_lines(result, NOW)
    assert_safe(lines)
    assert any("<not a queue: 5>" in line for line in lines)
    assert result.total == len(keys)


@SETTINGS
@given(st.dictionaries(st.sampled_from(list(admin.JobSummary.__dataclass_fields__)), odd_value))
def test_jobs_renders_any_view_row(value: dict[str, Any]) -> None:
    row = {"id": "job\x1b[2J", "key": ["failed", NOW], "value": value}
    assert_safe(reports.jobs_lines([admin.JobSummary.from_row(row)], NOW))


@SETTINGS
@given(odd_schedule)
def test_schedules_renders_any_schedule(doc: dict[str, Any]) -> None:
    assert_safe(reports.schedules_lines([schedule_admin.schedule_status(doc, NOW)]))


def test_schedules_renders_each_odd_schedule() -> None:
    found = [schedule_admin.schedule_status(doc, NOW) for doc in odd_schedules()]
    assert_safe(reports.schedules_lines(found))


# -- one function escapes ---------------------------------------------------------------


@given(odd_text)
def test_escaped_text_is_printable_and_printable_text_is_left_alone(text: str) -> None:
    escaped = output.escape(text)
    assert escaped.isprintable()
    if text.isprintable():
        assert escaped == text


@pytest.mark.parametrize("trick", TERMINAL_TRICKS)
def test_terminal_tricks_are_shown_escaped(trick: str) -> None:
    shown = output.escape(trick)
    assert "\x1b" not in shown and "\r" not in shown and "\u202e" not in shown
    assert shown.isprintable()


def test_a_log_line_that_clears_the_screen_is_shown_escaped() -> None:
    doc = {"_id": "j", "state": "failed", "log": [{"at": NOW, "msg": "\x1b[2J\x1b[Hgotcha"}]}
    assert any(line.endswith("\\x1b[2J\\x1b[Hgotcha") for line in reports.job_lines(doc))


@pytest.mark.parametrize("value", [1e308, -1e308, "tomorrow", [1], {"a": 1}, True])
def test_a_value_that_is_no_time_is_shown_as_such(value: Any) -> None:
    assert output.when(value).startswith("<not a time: ")


def test_times_of_the_issue_show_as_not_a_time() -> None:
    doc = {"_id": "j", "state": "complete", "created_at": 1e308, "run_at": -1e308}
    doc.update(log=[{"at": 1e308, "msg": "x"}], error={"traceback": 5, "message": "m"})
    lines = reports.job_lines(doc)
    assert "  created      <not a time: 1e+308>" in lines
    assert "  run at       <not a time: -1e+308>" in lines
    assert "  <not a traceback: 5>" in lines
