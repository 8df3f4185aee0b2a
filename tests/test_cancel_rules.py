"""The cancel rules of the design docs, run in QuickJS without a server: what
`cancel` does in each state, how a job asked to stop ends on every path
(fail, release, lease run out, completion), and what validate_doc_update
keeps a worker from doing to a cancel."""

from __future__ import annotations

from typing import Any

import pytest
from designdoc_js import DesignDocJS

WORKER = {"name": "w", "roles": ["queshot_worker"]}
NO_SECURITY: dict[str, Any] = {}


@pytest.fixture(scope="module")
def js() -> DesignDocJS:
    return DesignDocJS()


def job(**fields: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "_id": "j1",
        "_rev": "2-a",
        "queues": "email",
        "state": "active",
        "worker_id": "w1",
        "created_at": 1,
        "claimed_at": 2,
        "lease_expires_at": 3,
        "attempts": 1,
        "max_attempts": 3,
    }
    doc.update(fields)
    return doc


def test_a_waiting_job_is_cancelled_at_once(js: DesignDocJS) -> None:
    stored, answer = js.update("cancel", job(state="inactive", worker_id=None), {})
    assert stored["state"] == "cancelled" and stored["cancelled_at"] > 0
    assert answer["json"] == {"ok": True, "state": "cancelled"}


def test_a_running_job_is_asked_to_stop_and_keeps_running(js: DesignDocJS) -> None:
    stored, answer = js.update("cancel", job(), {})
    assert stored["state"] == "active" and stored["worker_id"] == "w1"
    assert stored["cancel_requested_at"] > 0
    assert answer["json"] == {"ok": True, "state": "active"}


@pytest.mark.parametrize("state", ["complete", "failed", "cancelled"])
def test_a_finished_job_cannot_be_cancelled(js: DesignDocJS, state: str) -> None:
    stored, answer = js.update("cancel", job(state=state, worker_id=None), {})
    assert stored is None
    assert answer["code"] == 409
    assert answer["json"]["reason"] == f"job is {state}: too late to cancel"


def test_a_job_asked_to_stop_that_fails_is_cancelled_not_retried(js: DesignDocJS) -> None:
    asked = job(cancel_requested_at=5)
    body = {"worker_id": "w1", "rev": "2-a", "error": {"type": "Cancelled", "message": "stop"}}
    stored, _ = js.update("fail", asked, body)
    assert stored["state"] == "cancelled" and stored.get("run_at") is None
    assert stored["error"]["type"] == "Cancelled"


def test_a_job_asked_to_stop_that_is_given_back_is_cancelled(js: DesignDocJS) -> None:
    stored, answer = js.update("release", job(cancel_requested_at=5), {"worker_id": "w1"})
    assert stored["state"] == "cancelled"
    assert answer["json"]["state"] == "cancelled"


def test_a_job_asked_to_stop_whose_lease_ran_out_is_cancelled(js: DesignDocJS) -> None:
    stored, answer = js.update("expire", job(cancel_requested_at=5), {})
    assert stored["state"] == "cancelled"
    assert "asked to cancel" in stored["log"][-1]["msg"]


def test_a_job_that_completes_before_it_stops_stays_complete_and_says_so(
    js: DesignDocJS,
) -> None:
    stored, _ = js.update("complete", job(cancel_requested_at=5), {"worker_id": "w1", "rev": "2-a"})
    assert stored["state"] == "complete"
    assert stored["log"][-1]["msg"] == "completed before it could stop: the cancel came too late"


def test_a_worker_cannot_drop_a_cancel_request(js: DesignDocJS) -> None:
    old = job(cancel_requested_at=5)
    new = job(cancel_requested_at=None, _rev="3-b")
    assert js.validate(new, old, WORKER, NO_SECURITY) == (
        "forbidden",
        "queshot: a running job asked to cancel keeps its cancel_requested_at",
    )


def test_a_job_asked_to_stop_cannot_wait_again(js: DesignDocJS) -> None:
    old = job(cancel_requested_at=5)
    new = job(state="inactive", worker_id=None, lease_expires_at=None, cancel_requested_at=5)
    assert js.validate(new, old, WORKER, NO_SECURITY) == (
        "forbidden",
        "queshot: a job asked to cancel cannot wait again",
    )


def test_a_cancelled_job_requeued_starts_afresh(js: DesignDocJS) -> None:
    cancelled = job(state="cancelled", worker_id=None, cancelled_at=6, cancel_requested_at=5)
    stored, _ = js.update("requeue", cancelled, {})
    assert stored["state"] == "inactive"
    assert stored["cancelled_at"] is None and stored["cancel_requested_at"] is None
    assert stored["attempts"] == 0


def test_requeue_names_the_states_it_takes(js: DesignDocJS) -> None:
    _, answer = js.update("requeue", job(), {})
    assert answer["json"]["reason"] == "job is running, not complete, failed or cancelled"
