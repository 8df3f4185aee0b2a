"""Watching and steering schedules: what `queshot schedules` lists and what
`queshot schedule add/remove/pause/resume/run` writes, as data (the CLI only
formats it). Every write goes through validate_doc_update, as a Fauxton
edit would; the scheduler (`scheduler.py`) reads what is written here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from . import admin_docs, protocol
from .couch import Database
from .jobs import SCHEDULE_DOC_PREFIX, SCHEDULE_TYPE, QueueError, now_ms
from .schedules import Schedule, ScheduleError, schedule_id


@dataclass
class ScheduleStatus:
    """A schedule as `queshot schedules` lists it: `next_run` (epoch ms) is
    its next slot, None while paused; `zone` the time zone its slots are
    reckoned in (shown with them); `problem` says why a scheduler skips it."""

    name: str
    when: str
    queue: Any
    runs: str
    enabled: bool
    catch_up: int | None
    next_run: int | None
    problem: str | None
    doc: dict[str, Any] = field(repr=False)
    zone: str | None = None
    run_requested_at: Any = None  # the latest "run now" request (epoch ms) and who made it
    run_requested_by: Any = None


def schedules(db: Database) -> list[ScheduleStatus]:
    now = now_ms()
    docs = protocol.schedule_docs(db)
    return [schedule_status(doc, now) for doc in docs if doc.get("type") == SCHEDULE_TYPE]


def schedule_status(doc: dict[str, Any], now: int) -> ScheduleStatus:
    """One schedule document as `queshot schedules` lists it, whatever it holds."""
    name = str(doc.get("_id", ""))[len(SCHEDULE_DOC_PREFIX) :]
    task, data = doc.get("task"), doc.get("data")
    runs = f"task {task}" if task else f"data {json.dumps(data)}"
    when, next_run, catch_up, zone = "-", None, None, None
    try:
        schedule = Schedule.from_doc(doc)
        when, problem, catch_up = schedule.describe(), None, schedule.catch_up
        zone = schedule.timezone
        next_run = schedule.next_slot(now) if schedule.enabled else None
    except ScheduleError as exc:
        problem = str(exc)
    except (TypeError, ValueError, AttributeError, OverflowError):
        problem = "not a schedule: a field holds what no schedule may"  # stored before the rules
    enabled = doc.get("enabled", True) is not False
    return ScheduleStatus(
        name,
        when,
        doc.get("queue"),
        runs,
        enabled,
        catch_up,
        next_run,
        problem,
        doc,
        zone,
        doc.get("run_requested_at"),
        doc.get("run_requested_by"),
    )


def add_schedule(db: Database, doc: dict[str, Any], *, replace: bool = False) -> Schedule:
    """Write a schedule document (checked first: cron, time zone); a schedule
    of that name already there is an error unless `replace`. Stamps
    `enabled_at`: no slot before now fires."""
    doc = {"type": SCHEDULE_TYPE, **doc, "enabled_at": now_ms()}
    schedule = Schedule.from_doc(doc)
    existing = db.get_or_none(doc["_id"])
    if existing is not None:
        if not replace:
            raise QueueError(f"schedule {schedule.name!r} exists already (--replace to overwrite)")
        doc["_rev"] = existing["_rev"]
    admin_docs.save(db, doc)
    return schedule


def remove_schedule(db: Database, name: str) -> None:
    """Delete a schedule; the jobs it made stay."""
    admin_docs.remove(db, schedule_id(name), SCHEDULE_TYPE, _missing(db, name))


def set_schedule_enabled(db: Database, name: str, enabled: bool) -> bool:
    """Pause or resume a schedule; whether that changed anything. Resuming
    stamps `enabled_at`, so the slots missed while paused do not fire."""
    doc = _schedule_doc(db, name)
    if (doc.get("enabled", True) is not False) == enabled:
        return False
    doc["enabled"] = enabled
    if enabled:
        doc["enabled_at"] = now_ms()
    admin_docs.save(db, doc)
    return True


def request_run(db: Database, name: str, *, by: str | None = None) -> str:
    """Ask the schedulers to run a schedule once now, paused or not: stamps
    `run_requested_at` (and `run_requested_by`: `by`, else the account
    writing); returns the id of the one job they will create for it."""
    doc = _schedule_doc(db, name)
    try:
        schedule = Schedule.from_doc(doc)
    except ScheduleError as exc:
        raise QueueError(f"{exc}; fix it before asking it to run") from None
    requested = now_ms()
    if schedule.run_requested_at is not None and requested <= schedule.run_requested_at:
        requested = schedule.run_requested_at + 1  # a new request, however fast the last
    doc["run_requested_at"] = requested
    by = by or db.couch.session_user()
    if by:
        doc["run_requested_by"] = by
    else:
        doc.pop("run_requested_by", None)
    admin_docs.save(db, doc)
    return schedule.run_now_job_id(requested)


def _schedule_doc(db: Database, name: str) -> dict[str, Any]:
    return admin_docs.typed_doc(db, schedule_id(name), SCHEDULE_TYPE, _missing(db, name))


def _missing(db: Database, name: str) -> str:
    return f"no schedule {name!r} in {db.name}"
