"""Schedules: periodic jobs kept as documents in the job database, and the
slot arithmetic that every scheduler must agree on. Pure: no server here.

A schedule fires at *slots*: the times its `cron` expression names in its
`timezone`, or every `every` seconds counted from the Unix epoch (a fixed
origin, so that every scheduler computes the same slot times whenever it
started). Each slot's job has an id made of the schedule's name and the
slot's UTC time, so that creating it twice is a conflict: that is what
makes a slot run once however many schedulers race for it.

Cron expressions are read by cronsim, which follows cronie (the usual Linux
cron) across daylight-saving changes: a time that does not exist (the hour
skipped in spring) fires at the first moment after the change, a time that
happens twice (the hour repeated in autumn) fires once, and `*`/step hours
keep firing by real elapsed time through both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from .jobs import (
    DEFAULTS,
    MAX_EPOCH_MS,
    SCHEDULE_DOC_PREFIX,
    SCHEDULE_TYPE,
    QueueError,
    queue_path,
)

SLOT_JOB_PREFIX: str = DEFAULTS["slot_job_prefix"]
DEFAULT_CATCH_UP: int = DEFAULTS["schedule_catch_up"]
MAX_CATCH_UP: int = DEFAULTS["schedule_max_catch_up"]
DEFAULT_TIMEZONE: str = DEFAULTS["schedule_timezone"]
# The job options a schedule may set for the jobs it makes (Queue.new_job_doc's).
JOB_OPTIONS = ("priority", "max_attempts", "timeout", "max_stalls")


class ScheduleError(QueueError):
    """A schedule that cannot be used as it is written; the message says why."""


def schedule_id(name: str) -> str:
    """The document id of the schedule called `name`."""
    return SCHEDULE_DOC_PREFIX + name


def slot_stamp(slot_ms: int) -> str:
    """A slot's UTC time as it appears in its job's id: 20261201T113500Z."""
    return datetime.fromtimestamp(slot_ms / 1000, UTC).strftime("%Y%m%dT%H%M%SZ")


@dataclass(frozen=True)
class Schedule:
    """One schedule document, checked: `from_doc` refuses what cannot fire."""

    id: str
    name: str
    queue: str | list[str]
    cron: str | None = None
    every: int | None = None
    timezone: str = DEFAULT_TIMEZONE
    enabled: bool = True
    enabled_at: int | None = None  # epoch ms: no slot before it fires
    run_requested_at: int | None = None  # epoch ms: the latest "run now" (one extra job)
    catch_up: int = DEFAULT_CATCH_UP
    task: str | None = None
    args: list[Any] | None = None
    kwargs: dict[str, Any] | None = None
    data: Any = None
    job_options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Schedule:
        """The schedule a document describes. validate_doc_update already
        keeps the shape; this adds what only Python can check (the cron
        expression, the time zone)."""
        doc_id = str(doc.get("_id", ""))
        if doc.get("type") != SCHEDULE_TYPE or not doc_id.startswith(SCHEDULE_DOC_PREFIX):
            raise ScheduleError(f"{doc_id!r} is not a schedule")
        cron, every = doc.get("cron"), doc.get("every")
        if (cron is None) == (every is None):
            raise ScheduleError(f"schedule {doc_id}: give either 'cron' or 'every'")
        if every is not None and (type(every) is not int or every < 1):
            raise ScheduleError(f"schedule {doc_id}: 'every' must be whole seconds >= 1")
        catch_up = doc.get("catch_up", DEFAULT_CATCH_UP)
        if not isinstance(catch_up, int) or not 1 <= catch_up <= MAX_CATCH_UP:
            raise ScheduleError(f"schedule {doc_id}: 'catch_up' must be from 1 to {MAX_CATCH_UP}")
        try:
            queue_path(doc.get("queue"))  # type: ignore[arg-type]
        except QueueError as exc:
            raise ScheduleError(f"schedule {doc_id}: {exc}") from None
        schedule = cls(
            id=doc_id,
            name=doc_id[len(SCHEDULE_DOC_PREFIX) :],
            queue=doc["queue"],
            cron=cron,
            every=every,
            timezone=doc.get("timezone") or DEFAULT_TIMEZONE,
            enabled=doc.get("enabled", True) is not False,
            enabled_at=doc.get("enabled_at"),
            run_requested_at=_request_time(doc_id, doc.get("run_requested_at")),
            catch_up=catch_up,
            task=doc.get("task"),
            args=doc.get("args"),
            kwargs=doc.get("kwargs"),
            data=doc.get("data"),
            job_options={k: doc[k] for k in JOB_OPTIONS if doc.get(k) is not None},
        )
        schedule.zone()  # refuse an unknown time zone or cron expression now, not at a slot
        if cron is not None:
            schedule._cron_from(0, reverse=False)
        return schedule

    def describe(self) -> str:
        """When it fires, for people: "*/5 * * * * (Europe/Riga)" or "every 300 s"."""
        if self.every is not None:
            return f"every {self.every} s"
        return f"{self.cron} ({self.timezone})"

    def zone(self) -> ZoneInfo:
        try:
            return ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ScheduleError(
                f"schedule {self.id}: unknown time zone {self.timezone!r} "
                "(an IANA name like 'Europe/Berlin')"
            ) from None

    def _cron_from(self, at_ms: int, *, reverse: bool) -> CronSim:
        start = datetime.fromtimestamp(at_ms / 1000, UTC).astimezone(self.zone())
        try:
            return CronSim(self.cron or "", start, reverse=reverse)
        except CronSimError as exc:
            raise ScheduleError(f"schedule {self.id}: bad cron {self.cron!r}: {exc}") from None

    # -- slots (epoch ms) ------------------------------------------------------------

    def next_slot(self, after_ms: int) -> int:
        """The first slot strictly after `after_ms`."""
        if self.every is not None:
            period = self.every * 1000
            return (after_ms // period + 1) * period
        return _ms(next(self._cron_from(after_ms, reverse=False)))

    def last_slots(self, now_ms: int, count: int) -> list[int]:
        """The latest `count` slots at or before `now_ms`, oldest first."""
        if self.every is not None:
            period = self.every * 1000
            last = now_ms // period * period
            return [last - i * period for i in range(count - 1, -1, -1)]
        # cronsim's reverse iteration is strictly before its start; slots are whole minutes
        slots = self._cron_from(now_ms + 1, reverse=True)
        return sorted(_ms(next(slots)) for _ in range(count))

    def due_slots(self, now_ms: int, done_until: int | None = None) -> tuple[list[int], bool]:
        """The slots to enqueue at `now_ms`: at most `catch_up` of the latest
        ones at or before it, none at or before `done_until` (already handled
        by this scheduler) nor before `enabled_at`; oldest first. And whether
        older missed slots were left out because of the bound."""
        floor = -1 if done_until is None else done_until
        if self.enabled_at is not None:
            floor = max(floor, int(self.enabled_at) - 1)
        window = [s for s in self.last_slots(now_ms, self.catch_up + 1) if s > floor]
        skipped = len(window) > self.catch_up and floor >= 0
        return window[-self.catch_up :], skipped

    def job_id(self, slot_ms: int) -> str:
        """The id of the job of one slot: the same in every scheduler."""
        return f"{SLOT_JOB_PREFIX}{self.name}:{slot_stamp(slot_ms)}"

    def run_now_job_id(self, requested_ms: int) -> str:
        """The id of the job a "run now" request made at `requested_ms` asks
        for: fixed by the request, so that every scheduler creates the same one."""
        return f"{SLOT_JOB_PREFIX}{self.name}:now-{requested_ms}"


def _request_time(doc_id: str, value: Any) -> int | None:
    """`run_requested_at` as the whole epoch ms a run-now job's id is made of
    (the rules keep it a number in bounds; a document from before them may not)."""
    if value is None:
        return None
    if type(value) not in (int, float) or not 0 <= value <= MAX_EPOCH_MS:
        raise ScheduleError(f"schedule {doc_id}: 'run_requested_at' must be epoch milliseconds")
    return int(value)


def _ms(moment: datetime) -> int:
    return int((moment - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(milliseconds=1))
