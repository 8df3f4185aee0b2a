"""What `queshot stats`, `jobs`, `show`, `workers` and `schedules` print for
people, as lines: pure functions of what `admin` and `schedule_admin` read,
so that any stored document, however odd, can be checked to render
(tests/test_reports.py feeds them generated ones). Every value goes through
`output`, which shows what a field should not hold as such and escapes what
a terminal would act on."""

from __future__ import annotations

import json
from typing import Any

from .. import admin, history, schedule_admin
from ..jobs import SHOWN_STATES, shown_state
from . import output


def stats_lines(result: admin.Stats, now: int) -> list[str]:
    def waiting(since: Any) -> str:
        return "-" if since is None else output.age(now - since)

    rows = [
        [
            output.queue_text(q.queue) + (" (paused)" if q.paused else ""),
            *(q.counts.get(s, 0) for s in SHOWN_STATES),
            q.total,
            waiting(q.oldest_waiting_since),
        ]
        for q in result.queues
    ]
    rows.append(
        [
            "total",
            *(result.totals.get(s, 0) for s in SHOWN_STATES),
            result.total,
            waiting(result.oldest_waiting_since),
        ]
    )
    headers = ["QUEUE", *(s.upper() for s in SHOWN_STATES), "TOTAL", "OLDEST WAITING"]
    return output.table_lines(headers, rows)


def history_lines(found: list[history.QueueHistory]) -> list[str]:
    """Per queue, jobs that ended complete and failed in each window (the
    workers' history counters: they outlive requeue, delete and clean)."""
    windows = [w for w, _ in history.WINDOWS]
    states = history.HISTORY_STATES
    rows = [
        [output.queue_text(q.queue)] + [q.counts[w].get(s, 0) for w in windows for s in states]
        for q in found
    ]
    headers = ["QUEUE"] + [f"{s}/{w}".upper() for w in windows for s in states]
    return output.table_lines(headers, rows)


def jobs_lines(jobs: list[admin.JobSummary], now: int) -> list[str]:
    def detail(job: admin.JobSummary) -> Any:
        if job.state == "active":
            return job.worker_id
        return output.text(job.error or "")[:60]

    rows = [
        [
            job.id,
            shown_state(job.state, job.since, now),
            output.queue_text(job.queues),
            output.age(now - job.since) if output.is_number(job.since) else "?",
            job.priority,
            f"{output.text(job.attempts)}/{output.text(job.max_attempts or '-')}",
            f"{output.text(job.progress)}%" if output.is_number(job.progress) else "-",
            detail(job),
        ]
        for job in jobs
    ]
    headers = ["ID", "STATE", "QUEUE", "FOR", "PRI", "ATTEMPTS", "PROGRESS", "WORKER/ERROR"]
    return output.table_lines(headers, rows)


def job_lines(doc: dict[str, Any]) -> list[str]:
    """One job, field by field, then its task or data, result, dependencies,
    log and last error."""
    text = output.text
    state = doc.get("state")
    since = {"active": "claimed_at", "complete": "completed_at", "failed": "failed_at"}
    since_field = since.get(state, "created_at") if isinstance(state, str) else "created_at"
    lines = [f"job {text(doc.get('_id'))} (rev {text(doc.get('_rev'))})"]
    fields = [
        ("queue", output.queue_text(doc.get("queues"))),
        ("state", f"{text(state)}, since {output.when(doc.get(since_field))}"),
        ("priority", text(doc.get("priority", 0))),
        ("attempts", f"{text(doc.get('attempts', 0))} of {text(doc.get('max_attempts', '-'))}"),
        ("stalls", output.stalls_text(doc)),
        ("progress", f"{text(doc.get('progress') or 0)}%"),
        ("worker", text(doc.get("worker_id") or "-")),
        ("lease until", output.when(doc.get("lease_expires_at"))),
        ("run at", output.when(doc.get("run_at"))),
        ("created", output.when(doc.get("created_at"))),
    ]
    if doc.get("arrived_at") is not None:  # placed by its arrival: its producer's clock was off
        fields.append(("in line from", output.when(doc["arrived_at"])))
    lines += [f"  {name:<12} {value}" for name, value in fields]
    if doc.get("task") is not None:
        lines.append(f"task: {text(doc['task'])}")
        lines.append("  args:   " + text(doc.get("args") or []))
        lines.append("  kwargs: " + text(doc.get("kwargs") or {}))
    if doc.get("data") is not None or doc.get("task") is None:
        lines.append("data:")
        lines += _indented(doc.get("data"))
    if "result" in doc:
        lines.append("result:")
        lines += _indented(doc["result"])
    lines += _dependency_lines(doc)
    if doc.get("cancel_requested_at") is not None:
        lines.append(f"cancel asked at {output.when(doc['cancel_requested_at'])}")
    lines += _log_lines(doc.get("log"))
    lines += _error_lines(doc.get("error"))
    return lines


def _indented(value: Any) -> list[str]:
    """A JSON value over several lines, indented (JSON escapes control characters)."""
    try:
        shown = json.dumps(value, indent=2)
    except (TypeError, ValueError, RecursionError):
        shown = output.text(value)
    return ["  " + line for line in shown.splitlines()]


def _dependency_lines(doc: dict[str, Any]) -> list[str]:
    depends_on = doc.get("depends_on")
    if not depends_on:
        return []
    if not isinstance(depends_on, list):
        return [f"depends on {output.not_a('a list of job ids', depends_on)}"]
    waiting = doc.get("waiting_for")
    waiting = waiting if isinstance(waiting, list) else []
    lines = [f"depends on {output.counted(len(depends_on), 'job')}; waiting for {len(waiting)}:"]
    for dependency in depends_on:
        lines.append(
            f"  {output.text(dependency)}  {'waiting' if dependency in waiting else 'done'}"
        )
    return lines


def _log_lines(log: Any) -> list[str]:
    if not log:
        return ["log: empty"]
    if not isinstance(log, list):
        return [f"log: {output.not_a('a list of lines', log)}"]
    lines = [f"log ({len(log)} lines):"]
    for line in log:
        if isinstance(line, dict):
            at = line.get("at", 0)
            stamp = output.local_time(at, "%H:%M:%S") or output.not_a("a time", at)
            lines.append(f"  {stamp}  {output.text(line.get('msg'))}")
        else:
            lines.append(f"  {output.text(line)}")
    return lines


def _error_lines(error: Any) -> list[str]:
    if not isinstance(error, dict):
        return []
    attempt, kind = output.text(error.get("attempt", "?")), output.text(error.get("type", "Error"))
    lines = [f"last error (attempt {attempt}, {kind}):", f"  {output.text(error.get('message'))}"]
    traceback = error.get("traceback")
    if isinstance(traceback, str) and traceback.strip():
        lines += ["  " + output.escape(line) for line in traceback.rstrip().splitlines()]
    elif traceback:
        lines.append("  " + output.not_a("a traceback", traceback))
    return lines


def workers_lines(found: list[admin.WorkerStatus], now: int) -> list[str]:
    def jobs(w: admin.WorkerStatus) -> str:
        count = len(w.jobs) if isinstance(w.jobs, list) else output.not_a("a list", w.jobs)
        return f"{count}/{output.text(w.concurrency or '-')}"

    rows = [
        [
            w.name,
            w.host or "-",
            w.pid or "-",
            output.worker_queues_text(w.queues),
            jobs(w),
            _feed_text(w.feed),
            output.ago(w.last_seen, now),
            "GONE" if w.gone else ("paused" if w.paused else "alive"),
        ]
        for w in found
    ]
    headers = ["NAME", "HOST", "PID", "QUEUE", "JOBS", "FEED", "LAST SEEN", "STATUS"]
    return output.table_lines(headers, rows)


def _feed_text(feed: Any) -> str:
    """Whose changes feed a worker reads: its own, or its host's (`--share-feed`)
    as the leader (with its followers) or a follower; "-" if it does not say."""
    if not isinstance(feed, dict) or not isinstance(feed.get("role"), str):
        return "-"
    role = output.text(feed["role"])
    followers = feed.get("followers")
    if role == "leader" and isinstance(followers, int) and not isinstance(followers, bool):
        return f"leader of {followers}"
    return role


def schedules_lines(found: list[schedule_admin.ScheduleStatus]) -> list[str]:
    rows = [
        [
            s.name,
            s.when,
            output.queue_text(s.queue),
            output.text(s.runs)[:40],
            ("on" if s.enabled else "paused") if s.problem is None else "BROKEN",
            s.catch_up or "-",
            output.zoned_when(s.next_run, s.zone or "UTC") if s.problem is None else s.problem,
            _run_now_text(s),
        ]
        for s in found
    ]
    headers = ["NAME", "WHEN", "QUEUE", "RUNS", "STATUS", "CATCH-UP", "NEXT RUN", "RUN NOW"]
    return output.table_lines(headers, rows)


def _run_now_text(s: schedule_admin.ScheduleStatus) -> str:
    """The latest "run now" request: when (in the schedule's zone) and by whom."""
    if s.run_requested_at is None:
        return "-"
    asked = output.zoned_when(s.run_requested_at, s.zone or "UTC")
    return f"{asked} by {output.text(s.run_requested_by)}" if s.run_requested_by else asked
