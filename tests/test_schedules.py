"""The slot arithmetic every scheduler must agree on, and the schedule schema
validate_doc_update enforces (run in QuickJS): pure, no server."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from designdoc_js import DesignDocJS

from queshot.schedules import Schedule, ScheduleError, schedule_id

ADMIN = {"name": "ops", "roles": ["queshot_admin"]}
WORKER = {"name": "runner", "roles": ["queshot_worker"]}


def schedule(**fields: Any) -> Schedule:
    doc = {"_id": schedule_id("tick"), "type": "queshot_schedule", "queue": "q", **fields}
    return Schedule.from_doc(doc)


def ms(*args: int, tz: str = "UTC") -> int:
    return int(datetime(*args, tzinfo=ZoneInfo(tz)).timestamp() * 1000)


def utc(slot_ms: int) -> str:
    return datetime.fromtimestamp(slot_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")


# -- every: a fixed origin -------------------------------------------------------------


def test_every_counts_from_the_epoch_whenever_a_scheduler_starts() -> None:
    every = schedule(every=300)
    assert every.next_slot(ms(2026, 12, 1, 11, 31, 7)) == ms(2026, 12, 1, 11, 35)
    assert every.next_slot(ms(2026, 12, 1, 11, 35)) == ms(2026, 12, 1, 11, 40)  # strictly after
    assert every.last_slots(ms(2026, 12, 1, 11, 35), 2) == [
        ms(2026, 12, 1, 11, 30),
        ms(2026, 12, 1, 11, 35),
    ]


def test_every_ignores_the_time_zone_and_daylight_saving() -> None:
    riga = schedule(every=3600, timezone="Europe/Riga")
    # the night clocks go back in Riga: still one slot per real hour
    start = ms(2026, 10, 24, 23, 0)
    slots = riga.last_slots(start + 4 * 3_600_000, 5)
    assert [b - a for a, b in zip(slots, slots[1:], strict=False)] == [3_600_000] * 4


# -- cron in a time zone ----------------------------------------------------------------


def test_cron_is_read_in_its_time_zone() -> None:
    daily = schedule(cron="30 3 * * *", timezone="Europe/Riga")
    assert utc(daily.next_slot(ms(2026, 12, 1))) == "2026-12-01 01:30"  # 03:30 EET


def test_a_time_skipped_by_daylight_saving_fires_just_after_the_change() -> None:
    # Riga, 2026-03-29: 03:00 EET becomes 04:00 EEST; 03:30 does not exist
    daily = schedule(cron="30 3 * * *", timezone="Europe/Riga")
    slot = daily.next_slot(ms(2026, 3, 28, 12))
    assert slot == ms(2026, 3, 29, 4, tz="Europe/Riga") == ms(2026, 3, 29, 1)
    assert daily.next_slot(slot) == ms(2026, 3, 30, 3, 30, tz="Europe/Riga")


def test_a_time_repeated_by_daylight_saving_fires_once() -> None:
    # Riga, 2026-10-25: 04:00 EEST becomes 03:00 EET; 03:30 happens twice
    daily = schedule(cron="30 3 * * *", timezone="Europe/Riga")
    first = daily.next_slot(ms(2026, 10, 24, 12))
    assert utc(first) == "2026-10-25 00:30"
    assert utc(daily.next_slot(first)) == "2026-10-26 01:30"


def test_step_hours_keep_real_time_through_the_repeated_hour() -> None:
    half_hourly = schedule(cron="*/30 * * * *", timezone="Europe/Riga")
    slots = half_hourly.last_slots(ms(2026, 10, 25, 2), 6)
    assert [b - a for a, b in zip(slots, slots[1:], strict=False)] == [1_800_000] * 5


def test_backwards_and_forwards_agree_across_both_changes() -> None:
    """Catch-up reads slots backwards, waiting reads them forwards: the same set."""
    for cron in ("30 3 * * *", "*/20 2-4 * * *", "0 * * * *"):
        s = schedule(cron=cron, timezone="Europe/Riga")
        for start in (ms(2026, 3, 28, 12), ms(2026, 10, 24, 12)):
            forward, at = [], start
            for _ in range(30):
                at = s.next_slot(at)
                forward.append(at)
            assert s.last_slots(forward[-1], 30) == forward, cron


# -- catch-up ------------------------------------------------------------------------------


def test_a_fresh_scheduler_enqueues_only_the_latest_slot_by_default() -> None:
    slots, _ = schedule(every=60).due_slots(ms(2026, 12, 1, 12, 0, 30))
    assert slots == [ms(2026, 12, 1, 12, 0)]


def test_a_scheduler_that_was_down_catches_up_to_the_bound_never_more() -> None:
    s = schedule(every=60, catch_up=3)
    done = ms(2026, 12, 1, 12, 0)
    slots, skipped = s.due_slots(ms(2026, 12, 1, 12, 10, 5), done)
    assert slots == [ms(2026, 12, 1, 12, m) for m in (8, 9, 10)]
    assert skipped  # 12:01 to 12:07 were left out
    slots, skipped = s.due_slots(ms(2026, 12, 1, 12, 2), done)
    assert (slots, skipped) == ([ms(2026, 12, 1, 12, 1), ms(2026, 12, 1, 12, 2)], False)


def test_slots_already_handled_or_before_enabled_at_do_not_fire() -> None:
    s = schedule(every=60, catch_up=5, enabled_at=ms(2026, 12, 1, 12, 2, 30))
    slots, _ = s.due_slots(ms(2026, 12, 1, 12, 5), ms(2026, 12, 1, 12, 4))
    assert slots == [ms(2026, 12, 1, 12, 5)]
    slots, _ = s.due_slots(ms(2026, 12, 1, 12, 5))
    assert slots == [ms(2026, 12, 1, 12, m) for m in (3, 4, 5)]
    assert s.due_slots(ms(2026, 12, 1, 12, 2, 40)) == ([], False)


def test_a_slot_job_id_names_the_schedule_and_the_utc_slot() -> None:
    s = schedule(cron="0 9 * * 1", timezone="America/New_York")
    slot = s.next_slot(ms(2026, 12, 1))
    assert s.job_id(slot) == "queshot-slot:tick:20261207T140000Z"


# -- what cannot fire --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"cron": "61 * * * *"}, "bad cron '61 * * * *'"),
        ({"cron": "* * * * *", "timezone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
        ({}, "give either 'cron' or 'every'"),
        ({"every": 0}, "'every' must be whole seconds >= 1"),
        ({"every": 5, "catch_up": 0}, "'catch_up' must be from 1 to 1000"),
    ],
)
def test_a_schedule_that_cannot_fire_is_refused_with_its_reason(
    fields: dict[str, Any], reason: str
) -> None:
    with pytest.raises(ScheduleError, match=reason.replace("*", r"\*")):
        schedule(**fields)


# -- validate_doc_update ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def js() -> DesignDocJS:
    return DesignDocJS()


def doc(**fields: Any) -> dict[str, Any]:
    return {"_id": schedule_id("tick"), "type": "queshot_schedule", "queue": "q", **fields}


def test_validate_accepts_a_schedule_from_a_queue_admin(js: DesignDocJS) -> None:
    assert js.validate(doc(cron="*/5 * * * *", timezone="Europe/Riga"), None, ADMIN, {}) is None
    assert js.validate(doc(every=300, task="report", args=[1], catch_up=3), None, ADMIN, {}) is None


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({}, "a schedule needs 'cron' (\"*/5 * * * *\") or 'every' (seconds)"),
        ({"cron": "* * * * *", "every": 5}, "a schedule has either 'cron' or 'every', not both"),
        ({"cron": "* * * *"}, "'cron' must have 5 fields (minute hour day month weekday), got 4"),
        ({"cron": "* * * * $"}, "'cron' field 5 ($) is not cron syntax"),
        ({"every": 1.5}, "'every' must be a whole number of seconds >= 1"),
        ({"every": 5, "queue": ""}, "'queue': every part of a queue path must be a non-empty name"),
        ({"every": 5, "priority": 1e300}, "'priority' must be a whole number from -1000000000"),
        ({"every": 5, "enabled": "yes"}, "'enabled' must be true or false"),
        ({"every": 5, "catch_up": 5000}, "'catch_up' must be a whole number from 1 to 1000"),
        ({"every": 5, "kwargs": [1]}, "'kwargs' must be an object"),
        ({"every": 5, "_id": "queshot-schedule:a b"}, "a schedule's id must be"),
    ],
)
def test_validate_refuses_a_broken_schedule_with_one_reason(
    js: DesignDocJS, fields: dict[str, Any], reason: str
) -> None:
    error, message = js.validate(doc(**fields), None, ADMIN, {})
    assert error == "forbidden"
    assert message.startswith("queshot: invalid schedule: " + reason), message


def test_only_a_queue_admin_writes_or_removes_schedules(js: DesignDocJS) -> None:
    refused = js.validate(doc(every=5), None, WORKER, {})
    assert refused == ("forbidden", "queshot: only a queue admin may write schedules")
    removal = {"_id": schedule_id("tick"), "_deleted": True}
    refused = js.validate(removal, doc(every=5), WORKER, {})
    assert refused == ("forbidden", "queshot: only a queue admin may remove a schedule")


def test_a_slot_job_is_named_by_its_schedule_and_slot(js: DesignDocJS) -> None:
    slot = 1764588900000  # 2025-12-01T11:35:00Z
    slot_id = "queshot-slot:tick:20251201T113500Z"
    job = {"_id": slot_id, "queues": "q", "state": "inactive", "created_at": slot, "log": []}
    marked = {**job, "schedule": schedule_id("tick"), "slot": slot}
    assert js.validate(marked, None, WORKER, {}) is None
    assert Schedule.from_doc(doc(every=5)).job_id(slot) == slot_id  # the scheduler's own id
    for wrong, reason in [
        ({"schedule": "tick"}, "a schedule's job needs 'schedule': the id of the schedule"),
        ({"_id": "j"}, f'a schedule\'s job of that slot has the id "{slot_id}"'),
        ({"slot": slot + 1000}, "a schedule's job of that slot has the id"),
        ({"schedule": None, "slot": None}, "a schedule's job needs 'schedule'"),
    ]:
        error, message = js.validate({**marked, **wrong}, None, WORKER, {})
        assert message.startswith("queshot: invalid job: " + reason), message
    refused = js.validate(marked, None, {"name": "p", "roles": ["queshot_producer"]}, {})
    assert refused is not None
    assert refused[1] == (
        "queshot: only a scheduler (a worker or queue admin account) creates a schedule's slot jobs"
    )
