"""The dashboard in a real headless Chromium: counts, a failed job, requeue, live updates.

Uses Debian's /usr/bin/chromium through the `playwright` package (no browser
download). The attachments are served with the Content-Security-Policy that
`queshot push --dashboard-csp` sets on CouchDB 3 (pouchdb-server sends none),
so a script that CouchDB would block fails here too."""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from conftest import COUCHDB_BIN, REAL_COUCHDB, settled, wait_until

from queshot import admin, dashboard, designdocs, protocol, sync
from queshot.couch import Couch, Database, safe_url
from queshot.jobs import DEFAULTS, STATES, WORKER_GONE_AFTER_LEASES, now_ms, queshot_version
from queshot.queue import Queue
from queshot.worker import Job, Worker

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
ROOT = Path(__file__).resolve().parent.parent
ATTACHMENTS = ROOT / "designdocs" / "queshot" / "_attachments"
ARTIFACTS = ROOT / "test-artifacts"
SCREENSHOT = ARTIFACTS / "dashboard.png"
DAY_MS = 86_400_000
WAIT_MS = 10_000


def test_attachments_are_served_unrendered(couch: Couch, db: Database) -> None:
    """They are Jinja templates when pushed; nothing in them may change, but
    for defaults.js, which is the queue's constants rendered."""
    for name, content_type in (
        ("index.html", "text/html"),
        ("couch.js", "javascript"),
        ("jobs.js", "javascript"),
        ("bulk.js", "javascript"),
        ("panel.js", "javascript"),
        ("busy.js", "javascript"),
        ("cron.js", "javascript"),
        ("schedules.js", "javascript"),
        ("chart.js", "javascript"),
        ("indexing.js", "javascript"),
        ("limits.js", "javascript"),
        ("app.js", "javascript"),
        ("style.css", "text/css"),
    ):
        response = couch.request("GET", f"/{db.name}/_design/queshot/{name}")
        assert content_type in response.headers["content-type"]
        assert response.text == (ATTACHMENTS / name).read_text()


def test_the_dashboard_has_the_queues_constants(couch: Couch, db: Database) -> None:
    text = couch.request("GET", f"/{db.name}/_design/queshot/defaults.js").text
    assert f"STATES: {json.dumps(list(STATES))}," in text
    assert f"DEFAULT_LEASE_SECONDS: {json.dumps(DEFAULTS['lease_seconds'])}," in text
    assert f"GONE_AFTER_LEASES: {WORKER_GONE_AFTER_LEASES}," in text


def test_dashboard_csp_check(couch: Couch) -> None:
    if REAL_COUCHDB:
        message = dashboard.dashboard_csp(couch)
        assert message is None or message.startswith("dashboard: ")
    else:  # pouchdb-server: no /_node/_local/_config, no CSP on attachments
        assert dashboard.dashboard_csp(couch, enable=True) is None


@pytest.fixture
def page(server_url: str, couch: Couch) -> Iterator[Any]:
    """A browser page logged in as a person would be: CouchDB 3's database
    (page included) is members-only and sends no WWW-Authenticate, so one logs
    in through Fauxton first, which POSTs to `_session` and keeps its cookie.
    On a throwaway CouchDB (COUCHDB_BIN) the CSP is set as `queshot push
    --dashboard-csp` does; elsewhere the attachments are served with it here
    (pouchdb-server sends none; someone's CouchDB is not reconfigured)."""
    if not CHROMIUM.exists():
        pytest.skip("needs Debian's chromium at /usr/bin/chromium (apt-get install -y chromium)")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="needs the playwright package (pip install -e '.[dev]')"
    )
    if COUCHDB_BIN:
        dashboard.dashboard_csp(couch, enable=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        # a zone other than the machine's UTC: times must say which zone they are in
        context = browser.new_context(
            viewport={"width": 1280, "height": 900}, timezone_id="Europe/Berlin"
        )
        parts = urlsplit(server_url)
        user = unquote(parts.username or "") or os.environ.get("COUCHDB_USER")
        password = unquote(parts.password or "") or os.environ.get("COUCHDB_PASSWORD", "")
        if user:
            login = context.request.post(
                couch.url + "_session", data={"name": user, "password": password}
            )
            assert login.ok, f"_session refused the login: {login.status} {login.text()}"
        if not COUCHDB_BIN:

            def with_couchdb_csp(route: Any) -> None:
                response = route.fetch()
                headers = {**response.headers, "content-security-policy": dashboard.DASHBOARD_CSP}
                route.fulfill(response=response, headers=headers)

            context.route("**/_design/queshot/*", with_couchdb_csp)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("dialog", lambda dialog: dialog.accept())  # the bulk actions' confirmations
        yield page
        browser.close()
        assert not errors, f"JavaScript errors in the dashboard: {errors}"


def run_worker_until(queue: Queue, handler: Callable[[Job], Any], done: Callable[[], bool]) -> None:
    worker = Worker(queue, handler, poll_interval=0.2, feed_heartbeat=0.5)
    worker.start()
    try:
        wait_until(done, timeout=10.0, every=0.05)
    finally:
        worker.stop(grace=5)


def all_run(queue: Queue) -> bool:
    return settled(queue)


def test_dashboard_shows_counts_and_requeues_a_failed_job(
    page: Any, server_url: str, db: Database
) -> None:
    from playwright.sync_api import expect

    email = Queue("email", db)
    reports = Queue(["reports", "daily"], db)
    fixed = threading.Event()

    def handler(job: Job) -> dict[str, bool]:
        if job.data.get("fail") and not fixed.is_set():
            raise RuntimeError("boom on purpose")
        job.log("sent")
        return {"sent": True}

    email.create_jobs([{"n": 1}, {"n": 2}])
    email.create_job({"fail": True}, id="bad-job")
    reports.create_jobs([{"r": 1}, {"r": 2}])
    run_worker_until(email, handler, lambda: all_run(email))
    db.save(
        {
            "_id": "queshot-worker:old",
            "type": "queshot_worker",
            "name": "old",
            "queues": "email",
            "last_seen": now_ms() - 10 * 60_000,
            "lease_seconds": 60,
        }
    )
    db.save(
        {
            "_id": "queshot-worker:both",
            "type": "queshot_worker",
            "name": "both",
            "queues": [["high"], ["email", "welcome"]],  # a worker on several queues
            "last_seen": now_ms(),
            "lease_seconds": 60,
        }
    )

    page.goto(f"{safe_url(server_url)}{db.name}/{dashboard.DASHBOARD_PATH}")

    def count(queue: str, state: str) -> Any:
        return page.locator(f'#counts td[data-queue="{queue}"][data-state="{state}"]')

    expect(count("email", "complete")).to_have_text("2", timeout=WAIT_MS)
    expect(count("email", "failed")).to_have_text("1")
    expect(count("reports/daily", "inactive")).to_have_text("2")
    expect(count("total", "total")).to_have_text("5")
    expect(page.locator('#workers tr[data-worker="old"]')).to_have_class(re.compile(r"\bgone\b"))
    both = page.locator('#workers tr[data-worker="both"] td')
    expect(both.nth(2)).to_have_text("high, email/welcome")
    expect(page.locator("#status")).to_have_text("live", timeout=WAIT_MS)

    page.click('#tabs button[data-tab="failed"]')
    page.click('#jobs a.open[data-id="bad-job"]')
    expect(page.locator("#job-error")).to_contain_text("RuntimeError (attempt 1): boom on purpose")
    expect(page.locator("#job-data")).to_contain_text('"fail": true')
    page.click("#requeue")
    expect(page.locator("#job-message")).to_have_text("requeued", timeout=WAIT_MS)
    # the counts follow from the _changes feed, without reloading the page
    expect(count("email", "failed")).to_have_text("0", timeout=WAIT_MS)
    expect(count("email", "inactive")).to_have_text("1")
    requeued = db.get("bad-job")
    assert (requeued["state"], requeued["attempts"], requeued["worker_id"]) == ("inactive", 0, None)

    fixed.set()
    run_worker_until(email, handler, lambda: email.stats()["complete"] == 3)
    expect(count("email", "complete")).to_have_text("3", timeout=WAIT_MS)
    expect(count("email", "inactive")).to_have_text("0")
    expect(page.locator("#job-fields")).to_contain_text("complete", timeout=WAIT_MS)
    expect(page.locator("#job-log")).to_contain_text("sent")
    expect(page.locator("#job-message")).to_have_text("")
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)


# -- every state, paging, search, bulk actions, pause, the chart ---------------------------


def open_dashboard(page: Any, server_url: str, db: Database) -> None:
    from playwright.sync_api import expect

    page.goto(f"{safe_url(server_url)}{db.name}/{dashboard.DASHBOARD_PATH}")
    expect(page.locator("#status")).to_have_text("live", timeout=WAIT_MS)


def tab(page: Any, name: str, queue: str = "") -> None:
    page.click(f'#tabs button[data-tab="{name}"]')
    showing(page, name, queue)


def showing(page: Any, name: str, queue: str = "", number: int = 0) -> None:
    """Wait until the list shows that tab ('search': search results), queue and page."""
    from playwright.sync_api import expect

    shown = page.locator(f'#jobs[data-tab="{name}"][data-queue="{queue}"][data-page="{number}"]')
    expect(shown).to_have_count(1, timeout=WAIT_MS)


def listed(page: Any) -> list[str]:
    return page.locator("#jobs tbody tr[data-id]").evaluate_all(
        "rows => rows.map(r => r.dataset.id)"
    )


def test_every_state_is_browsable_with_paging_and_search(
    page: Any, server_url: str, db: Database
) -> None:
    from playwright.sync_api import expect
    from test_admin_cli import put_job

    minute = 60_000
    now = now_ms()
    done = [
        put_job(db, "complete", id=f"done-{i:02}", at=now - (40 - i) * minute) for i in range(30)
    ]
    put_job(db, "failed", id="failed-1", at=now - 3 * minute)
    put_job(db, "inactive", id="waiting-old", at=now - 9 * minute)
    put_job(db, "inactive", id="waiting-new", at=now - 1 * minute, data={"to": "ada@example.org"})
    put_job(db, "inactive", id="later", run_at=now + 3_600_000)
    put_job(db, "active", id="busy", progress=40)
    put_job(db, "complete", queues="sms", id="sms-done")
    open_dashboard(page, server_url, db)

    def shows(name: str, ids: list[str]) -> None:
        tab(page, name)
        expect(page.locator("#jobs tbody tr[data-id]")).to_have_count(len(ids), timeout=WAIT_MS)
        assert listed(page) == ids

    shows("waiting", ["waiting-old", "waiting-new"])  # due first
    expect(page.locator("#jobs")).to_contain_text("due 9m")
    shows("scheduled", ["later"])
    expect(page.locator("#jobs")).to_contain_text("runs ")
    shows("running", ["busy"])
    expect(page.locator('#jobs tr[data-id="busy"]')).to_contain_text(
        re.compile(r"40%.*w-1 · lease 5\ds left")
    )
    shows("failed", ["failed-1"])
    expect(page.locator('#jobs tr[data-id="failed-1"]')).to_contain_text("boom")
    for state in STATES:
        if state not in ("inactive", "active", "complete", "failed"):
            shows(state, [])  # a state added to context.json has its tab, here empty

    # newest first, 25 a page, then the rest, and back
    shows("complete", ["sms-done", *reversed(done[-24:])])
    expect(page.locator("#page-number")).to_have_text("page 1 of 2")
    expect(page.locator('#tabs button[data-tab="complete"] .count')).to_have_text("31")
    page.click("#page-older")
    showing(page, "complete", number=1)
    expect(page.locator("#page-number")).to_have_text("page 2 of 2")
    expect(page.locator("#jobs tbody tr[data-id]")).to_have_count(6)
    assert listed(page) == list(reversed(done[:6]))
    expect(page.locator("#page-older")).to_be_disabled()
    page.click("#page-newer")
    expect(page.locator('#jobs tr[data-id="sms-done"]')).to_have_count(1)

    # one queue: its jobs only
    page.select_option("#queue-filter", "sms")
    showing(page, "complete", queue="sms")
    assert listed(page) == ["sms-done"]
    page.select_option("#queue-filter", "")

    # each job's panel links to its document in Fauxton
    page.click('#jobs a.open[data-id="sms-done"]')
    link = page.locator("#job-fauxton")
    expect(link).to_have_attribute("href", re.compile(f"/_utils/#database/{db.name}/sms-done$"))
    page.click("#job-close")

    # search by a field of data, and by id
    page.fill("#search input", "to=ada@example.org")
    page.click("#search button")
    showing(page, "search")
    assert listed(page) == ["waiting-new"]
    page.fill("#search input", "n=1")  # a number in data
    page.click("#search button")
    expect(page.locator("#jobs tbody tr[data-id]")).to_have_count(25, timeout=WAIT_MS)
    page.fill("#search input", "busy")
    page.click("#search button")
    expect(page.locator("#job-id")).to_have_text("busy", timeout=WAIT_MS)
    page.screenshot(path=str(ARTIFACTS / "dashboard-states.png"), full_page=True)


def test_bulk_requeue_and_delete_with_counts_and_refusals(
    page: Any, server_url: str, db: Database
) -> None:
    from playwright.sync_api import expect
    from test_admin_cli import put_job

    email = Queue("email", db)
    failed = [put_job(db, "failed", id=f"failed-{i}") for i in range(3)]
    put_job(db, "failed", queues="sms", id="sms-failed")
    put_job(db, "active", id="busy")
    done = [put_job(db, "complete", id=f"done-{i}") for i in range(2)]
    open_dashboard(page, server_url, db)

    # a selection
    tab(page, "failed")
    expect(page.locator("#jobs tbody tr[data-id]")).to_have_count(4, timeout=WAIT_MS)
    page.check('#jobs input[data-id="sms-failed"]')
    expect(page.locator("#bulk-requeue")).to_have_text("Requeue 1")
    page.click("#bulk-requeue")
    expect(page.locator("#bulk-message")).to_have_text("requeued 1 job", timeout=WAIT_MS)
    assert db.get("sms-failed")["state"] == "inactive"

    # every failed job of a queue, counted and confirmed, then run
    page.select_option("#queue-filter", "email")
    showing(page, "failed", queue="email")
    page.check("#select-page")
    expect(page.locator("#select-matching")).to_be_hidden()  # the page holds them all
    expect(page.locator("#bulk-requeue")).to_have_text("Requeue 3")
    page.click("#bulk-requeue")
    expect(page.locator("#bulk-message")).to_have_text("requeued 3 jobs", timeout=WAIT_MS)
    assert {db.get(i)["state"] for i in failed} == {"inactive"}
    run_worker_until(email, lambda job: None, lambda: email.stats()["complete"] >= 5)
    tab(page, "complete", queue="email")
    expect(page.locator("#jobs tbody tr[data-id]")).to_have_count(5, timeout=WAIT_MS)

    # refusals show their reasons: a selected job changed since it was listed
    page.check('#jobs input[data-id="done-0"]')
    page.check('#jobs input[data-id="done-1"]')
    changed = db.get("done-1")
    db.save({**changed, "priority": 3})
    page.click("#bulk-delete")
    expect(page.locator("#bulk-message")).to_have_text("deleted 1 job, 1 refused:", timeout=WAIT_MS)
    expect(page.locator('#bulk-refusals li[data-id="done-1"]')).to_contain_text("conflict")
    assert db.get_or_none("done-0") is None and db.get_or_none("done-1") is not None
    # only what can succeed is offered: a running job cannot be requeued
    tab(page, "running", queue="email")
    page.check('#jobs input[data-id="busy"]')
    expect(page.locator("#bulk-requeue")).to_be_disabled()
    expect(page.locator("#bulk-cancel")).to_be_enabled()
    expect(page.locator("#bulk-delete")).to_be_enabled()
    assert done
    page.screenshot(path=str(ARTIFACTS / "dashboard-bulk.png"), full_page=True)


def test_pause_a_queue_from_the_dashboard_and_the_chart_shows_the_jobs(
    page: Any, server_url: str, db: Database
) -> None:
    """Paused: no worker claims any of its jobs while another queue's run;
    resumed: they run. The chart counts what finished in the last minutes."""
    from playwright.sync_api import expect

    email, sms = Queue("email", db), Queue("sms", db)
    email.create_job({"warm": True})
    sms.create_job({"warm": True})
    open_dashboard(page, server_url, db)
    pause = page.locator('#counts button.pause[data-queue="email"]')
    expect(pause).to_have_text("Pause", timeout=WAIT_MS)
    pause.click()
    expect(page.locator("#queues-message")).to_have_text("queue email paused", timeout=WAIT_MS)
    expect(page.locator('#counts tr[data-queue="email"] .badge')).to_have_text("paused")
    assert [p["queue"] for p in admin.paused_queues(db)] == [["email"]]

    options: dict[str, Any] = {"poll_interval": 0.2, "feed_heartbeat": 0.5}
    email_worker = Worker(email, lambda job: None, name="on-email", **options)
    sms_worker = Worker(sms, lambda job: None, name="on-sms", **options)
    email_worker.start()
    sms_worker.start()
    try:
        email.create_jobs([{"n": i} for i in range(4)])
        sms.create_jobs([{"n": i} for i in range(4)])
        wait_until(lambda: sms.stats()["complete"] == 5, timeout=15)
        assert email.stats()["inactive"] == 5
        assert email_worker.stats.claim_attempts == 0
        expect(
            page.locator('#workers tr[data-worker="' + email_worker.name + '"]')
        ).to_contain_text("paused", timeout=WAIT_MS)
        page.select_option("#queue-filter", "email")
        expect(page.locator("#list-paused")).to_contain_text("queue email is paused")
        page.screenshot(path=str(ARTIFACTS / "dashboard-paused.png"), full_page=True)

        page.locator('#counts button.pause[data-queue="email"]').click()
        expect(page.locator("#queues-message")).to_have_text("queue email resumed", timeout=WAIT_MS)
        wait_until(lambda: email.stats()["complete"] == 5, timeout=15)
    finally:
        email_worker.stop(grace=5)
        sms_worker.stop(grace=5)

    page.select_option("#queue-filter", "")
    summary = page.locator("#chart-summary")
    expect(summary).to_have_attribute("data-complete", "10", timeout=WAIT_MS)
    expect(summary).to_have_attribute("data-started", "10")
    expect(summary).to_contain_text("10 complete")
    expect(summary).to_contain_text("depth now: 0 waiting, 0 scheduled, 0 running")
    expect(summary).to_contain_text("p50 ≤")
    assert page.locator('#chart rect[data-kind="complete"]').count() >= 1
    page.select_option("#queue-filter", "sms")
    expect(summary).to_have_attribute("data-complete", "5", timeout=WAIT_MS)
    page.screenshot(path=str(ARTIFACTS / "dashboard-chart.png"), full_page=True)


def open_job(page: Any, job_id: str) -> None:
    """Open a job by searching for its id, as a person would (closing the
    panel first: it lies over the page's right side, search included at 1024 px)."""
    from playwright.sync_api import expect

    if page.locator("#job").is_visible():
        page.keyboard.press("Escape")
        expect(page.locator("#job")).to_be_hidden()
    page.fill("#search input", job_id)
    page.click("#search button")
    expect(page.locator("#job-id")).to_have_text(job_id, timeout=WAIT_MS)


def test_a_tasks_result_shows_and_jobs_are_cancelled_from_the_job_panel(
    page: Any, server_url: str, db: Database
) -> None:
    from playwright.sync_api import expect

    queue = Queue("panel", db)
    done = queue.enqueue("add", 2, b=3)
    run_worker_until(queue, lambda job: job.args[0] + job.kwargs["b"], lambda: all_run(queue))
    waiting = queue.enqueue("add", 1, b=1)
    running_id = queue.enqueue("add", 1, b=2).id
    db.save(
        {
            **db.get(running_id),
            "state": "active",
            "worker_id": "w-gone",
            "claimed_at": now_ms(),
            "lease_expires_at": now_ms() + 60_000,
            "attempts": 1,
        }
    )
    open_dashboard(page, server_url, db)

    open_job(page, done.id)
    expect(page.locator("#job-task")).to_have_text("add(2, b=3)", timeout=WAIT_MS)
    expect(page.locator("#job-result")).to_have_text("5")
    expect(page.locator("#cancel")).to_be_hidden()
    expect(page.locator("#requeue")).to_be_visible()

    open_job(page, waiting.id)
    expect(page.locator("#job-result-part")).to_be_hidden(timeout=WAIT_MS)
    page.click("#cancel")
    expect(page.locator("#job-message")).to_have_text("cancelled", timeout=WAIT_MS)
    expect(page.locator("#job-fields")).to_contain_text("cancelled")
    assert waiting.status == "cancelled"

    open_job(page, running_id)
    page.click("#cancel")
    expect(page.locator("#job-message")).to_have_text("asked to stop", timeout=WAIT_MS)
    expect(page.locator("#cancel")).to_be_hidden()
    assert isinstance(db.get(running_id)["cancel_requested_at"], int)
    page.screenshot(path=str(SCREENSHOT.with_name("dashboard-job-panel.png")), full_page=True)


def test_a_data_search_of_one_state_is_not_cut_by_other_states_matches(
    page: Any, server_url: str, db: Database
) -> None:
    """A search limited to a state reads only that state's rows: 5,000
    complete jobs with the same value (sorted first) do not push the 30
    failed ones past the search's cap."""
    from playwright.sync_api import expect

    t = now_ms() - 60_000
    done = {"queues": "email", "state": "complete", "created_at": t, "completed_at": t}
    failed = {"queues": "email", "state": "failed", "created_at": t, "failed_at": t}
    error = {"type": "SMTPError", "message": "refused"}
    docs = [{"_id": f"a-done-{i:05}", **done, "data": {"template": "receipt"}} for i in range(5000)]
    docs += [
        {"_id": f"z-failed-{i:02}", **failed, "error": error, "data": {"template": "receipt"}}
        for i in range(30)
    ]
    for start in range(0, len(docs), 1000):
        db.bulk_docs(docs[start : start + 1000])
    index_every_view(db)
    open_dashboard(page, server_url, db)
    page.select_option("#search-state", "failed")
    page.fill("#search input", "template=receipt")
    page.click("#search button")
    summary = page.locator("#search-summary")
    expect(summary).to_have_text('30 jobs match "template=receipt", failed', timeout=60_000)


def test_a_job_placed_by_its_arrival_is_waiting_and_says_since_when(
    page: Any, server_url: str, db: Database
) -> None:
    """A job from a clock a day ahead would read as scheduled for a day;
    placed by its arrival (`arrive`), it is waiting, and the panel says
    where its place in line comes from."""
    from playwright.sync_api import expect

    job_id = "from-a-clock-ahead"
    db.save({"_id": job_id, "queues": "line", "state": "inactive", "created_at": now_ms() + DAY_MS})
    assert protocol.arrive(db, job_id)
    open_dashboard(page, server_url, db)
    open_job(page, job_id)
    fields = page.locator("#job-fields")
    expect(fields).to_contain_text("in line from", timeout=WAIT_MS)
    expect(fields).to_contain_text("waiting (stored: inactive)")
    expect(page.locator("#job-log")).to_contain_text("ahead of the server's clock")
    expect(page.locator("#run-now")).to_be_hidden()
    page.set_viewport_size({"width": 1400, "height": 900})
    page.locator("#job").screenshot(path=str(ARTIFACTS / "dashboard-arrived-job-1400.png"))


def test_the_schedules_are_listed_with_a_link_to_each_in_fauxton(
    page: Any, server_url: str, db: Database
) -> None:
    from playwright.sync_api import expect

    from queshot.cli import main

    connection = ["--url", server_url, "--db", db.name]
    add = ["schedule", "add"]
    assert main([*add, "nightly", "--queue", "reports", "--cron", "0 3 * * *", *connection]) == 0
    assert (
        main(
            [
                *add,
                "ping",
                "--queue",
                "ops",
                "--every",
                "300",
                "--task",
                "ping",
                "--paused",
                *connection,
            ]
        )
        == 0
    )
    open_dashboard(page, server_url, db)
    nightly = page.locator('#schedules tr[data-schedule="queshot-schedule:nightly"]')
    expect(nightly).to_contain_text("0 3 * * *", timeout=WAIT_MS)
    expect(nightly).to_contain_text("reports")
    expect(nightly).to_contain_text("enabled")
    ping = page.locator('#schedules tr[data-schedule="queshot-schedule:ping"]')
    expect(ping).to_contain_text("every 300 s")
    expect(ping).to_contain_text("ping")
    expect(ping).to_contain_text("paused")
    expect(nightly.locator("a")).to_have_attribute("href", re.compile("queshot-schedule"))


# -- whatever is stored ----------------------------------------------------------------------


@pytest.fixture
def odd_db(couch: Couch, db_name: str) -> Database:
    """A database holding tests/odd_documents.py's documents, written before
    `queshot push` installed the rules that would refuse most of them."""
    from odd_documents import store_before_rules

    db = couch.database(db_name)
    db.create()
    store_before_rules(db)
    sync.push(couch, [db_name], designdocs.load())
    index_every_view(db)
    return db


def index_every_view(db: Database) -> None:
    """Build every view of both design docs now, not while the page waits for
    its first read (seconds per view for thousands of documents on a busy
    machine's pouchdb-server, which indexes each view apart)."""
    for ddoc in designdocs.load().design_docs:
        for view in ddoc.doc.get("views", {}):
            db.view(ddoc.name, view, limit=1)


def test_every_panel_renders_whatever_is_stored(
    page: Any, server_url: str, odd_db: Database
) -> None:
    """Counts, workers, schedules, the chart, each job list and the job panel
    show documents stored before the rules (wrong types everywhere, times of
    1e308, queues of [["a"], 5], escape sequences), saying what they cannot
    render; the page fixture fails the test on any JavaScript error."""
    from odd_documents import DEEP_JOB, TRICKS_JOB, odd_job_id, odd_worker_name
    from playwright.sync_api import expect

    open_dashboard(page, server_url, odd_db)
    counts = page.locator("#counts")
    expect(counts.locator('th:has-text("<not a queue: 5>")')).to_have_count(1, timeout=WAIT_MS)
    expect(counts.locator('tr[data-queue="total"]')).to_have_count(1)
    worker = page.locator(f'#workers tr[data-worker="{odd_worker_name("jobs", 5)}"] td')
    expect(worker.nth(3)).to_have_text("<not a list: 5>/1")
    several = page.locator(f'#workers tr[data-worker="{odd_worker_name("queues", [["a"], 5])}"]')
    expect(several.locator("td").nth(2)).to_have_text('<not a queue: [["a"],5]>')
    expect(page.locator("#schedules tbody tr")).not_to_have_count(0)
    expect(page.locator("#chart svg")).to_have_count(1)
    for name in page.locator("#tabs button[data-tab]").evaluate_all(
        "buttons => buttons.map(b => b.dataset.tab)"
    ):
        tab(page, name)
    tab(page, "failed")
    expect(page.locator("#jobs tbody tr[data-id]")).not_to_have_count(0)
    # hundreds of odd workers and schedules make the page long: the top of it
    page.set_viewport_size({"width": 1024, "height": 1400})
    page.screenshot(path=str(ARTIFACTS / "dashboard-odd-1024.png"))

    open_job(page, odd_job_id("created_at", 1e308))
    expect(page.locator("#job-fields")).to_contain_text("<not a time: 1e+308>")
    open_job(page, odd_job_id("error", {"message": 5, "type": [], "traceback": 5, "attempt": "x"}))
    expect(page.locator("#job-error")).to_contain_text("[] (attempt x): 5")
    open_job(
        page,
        odd_job_id("log", [{"at": 1e308, "msg": "\x1b[2J"}, {"at": "x"}, 5, None, {"msg": {}}]),
    )
    expect(page.locator("#job-log")).to_contain_text("<not a time: 1e+308>")
    open_job(page, DEEP_JOB)
    open_job(page, TRICKS_JOB)
    expect(page.locator("#job-fields")).to_contain_text("odd/")
    page.set_viewport_size({"width": 1400, "height": 1400})
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(ARTIFACTS / "dashboard-odd-1400.png"))
    page.locator("#job").screenshot(path=str(ARTIFACTS / "dashboard-odd-job-1400.png"))


# -- the overhaul (issue 22): finding, acting, Busy, schedules, at three widths -----------------

WIDTHS = (1024, 1400, 1920)


def job_doc(state: str, number: int, queue: str, at: int, **fields: Any) -> dict[str, Any]:
    """A job stored directly in `state`, for _bulk_docs (put_job's shape)."""
    doc: dict[str, Any] = {
        "_id": f"{queue}-{state}-{number:03}",
        "queues": queue,
        "state": state,
        "worker_id": None,
        "priority": 0,
        "log": [],
        "task": "send",
        "args": [f"user-{number}@example.org"],
        "data": None,
        "created_at": at,
        "attempts": 1,
        "max_attempts": 2,
        "progress": 0,
    }
    if state == "failed":
        doc.update(
            failed_at=at,
            attempts=2,
            error={"message": f"refused {number}", "type": "SMTPError", "attempt": 2},
            errors=[
                {"message": "timed out", "type": "TimeoutError", "attempt": 1, "at": at - 1000},
                {"message": f"refused {number}", "type": "SMTPError", "attempt": 2, "at": at},
            ],
        )
    doc.update(fields)
    return doc


def screenshots(page: Any, name: str) -> None:
    """The page at each width the issue names, kept as artifacts (and looked at)."""
    ARTIFACTS.mkdir(exist_ok=True)
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 1000})
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(ARTIFACTS / f"dashboard-{name}-{width}.png"), full_page=True)
    page.set_viewport_size({"width": 1400, "height": 1000})


def test_finding_and_acting_on_many_jobs(page: Any, server_url: str, db: Database) -> None:
    """Counts on the tabs, pages both ways to the last, a search counted and
    limited by queue and state saying what matched, every failed job of one
    queue deleted through a typed confirmation, every attempt's error and
    Delete in the panel, times in UTC on demand."""
    from playwright.sync_api import expect

    now = now_ms()
    minute = 60_000
    docs = [job_doc("failed", i, "email", now - (i + 1) * minute) for i in range(60)]
    docs += [job_doc("failed", i, "sms", now - i * minute) for i in range(3)]
    docs += [job_doc("inactive", i, "email", now - minute) for i in range(2)]
    docs += [
        job_doc("inactive", 90 + i, "email", now + 3_600_000, run_at=now + 3_600_000)
        for i in range(3)
    ]
    assert all("error" not in r for r in db.bulk_docs(docs))
    open_dashboard(page, server_url, db)

    def tab_count(name: str) -> Any:
        return page.locator(f'#tabs button[data-tab="{name}"] .count')

    expect(tab_count("failed")).to_have_text("63", timeout=WAIT_MS)
    expect(tab_count("waiting")).to_have_text("2")
    expect(tab_count("scheduled")).to_have_text("3")
    expect(page.locator('#counts td[data-queue="email"][data-state="scheduled"]')).to_have_text("3")
    expect(page.locator('#counts td[data-queue="email"][data-state="inactive"]')).to_have_text("2")

    # pages: 3 of them, the last one read from the end, then back
    tab(page, "failed")
    expect(page.locator("#page-number")).to_have_text("page 1 of 3")
    row = page.locator('#jobs tr[data-id="email-failed-000"]')
    expect(row).to_contain_text('send("user-0@example.org")')
    expect(row).to_contain_text("SMTPError: refused 0")
    page.click("#page-last")
    showing(page, "failed", number=2)
    expect(page.locator("#page-number")).to_have_text("page 3 of 3")
    assert listed(page) == [f"email-failed-{i:03}" for i in range(47, 60)]
    expect(page.locator("#page-older")).to_be_disabled()
    page.click("#page-newer")
    showing(page, "failed", number=1)
    assert listed(page) == [f"email-failed-{i:03}" for i in range(22, 47)]
    # the row this page was read from leaves the view: the page keeps its own rows
    db.delete("email-failed-047", db.get("email-failed-047")["_rev"])
    expect(tab_count("failed")).to_have_text("62", timeout=WAIT_MS)
    assert listed(page) == [f"email-failed-{i:03}" for i in range(22, 47)]

    # a search, limited by queue and state, counted, paged, saying what matched
    page.fill("#search input", "email-failed-0")
    page.click("#search button")
    showing(page, "search")
    expect(page.locator("#search-summary")).to_have_text('59 jobs match "email-failed-0"')
    expect(page.locator("#page-number")).to_have_text("page 1 of 3")
    expect(page.locator("#jobs .matched").first).to_have_text(
        'matched id starts with "email-failed-0"'
    )
    page.select_option("#search-state", "scheduled")
    expect(page.locator("#search-summary")).to_contain_text("0 jobs", timeout=WAIT_MS)
    page.select_option("#search-state", "")
    page.fill("#search input", "email-inactive-09")
    page.click("#search button")
    expect(page.locator("#search-summary")).to_have_text('3 jobs match "email-inactive-09"')
    page.click('#jobs a.open[data-id="email-inactive-090"]')  # scheduled: it can run now
    expect(page.locator("#job-fields")).to_contain_text("scheduled (stored: inactive)")
    page.click("#run-now")
    expect(page.locator("#job-message")).to_have_text("due now", timeout=WAIT_MS)
    assert db.get("email-inactive-090")["run_at"] <= now_ms()
    expect(page.locator("#run-now")).to_be_hidden()
    page.keyboard.press("Escape")
    page.click("#search-clear")
    showing(page, "failed")  # back to the tab it left

    # one failed job: every attempt's error, UTC on demand, Delete
    page.click('#jobs a.open[data-id="email-failed-001"]')
    errors = page.locator("#job-error")
    expect(errors).to_contain_text("SMTPError (attempt 2): refused 1", timeout=WAIT_MS)
    expect(errors).to_contain_text("TimeoutError (attempt 1): timed out")
    expect(page.locator("#job-fields")).to_contain_text(" CET (")  # the browser's zone
    page.check("#utc")
    expect(page.locator("#job-fields")).to_contain_text(" UTC (", timeout=WAIT_MS)
    screenshots(page, "panel")
    page.click("#delete")  # confirmed by the fixture's dialog handler
    expect(page.locator("#job")).to_be_hidden(timeout=WAIT_MS)
    assert db.get_or_none("email-failed-001") is None

    # every failed job of email: 58, more than a page, so the count is typed
    page.select_option("#queue-filter", "email")
    showing(page, "failed", queue="email")
    expect(page.locator("#bulk-requeue")).to_be_disabled()  # nothing selected yet
    page.check("#select-page")
    expect(page.locator("#bulk-requeue")).to_have_text("Requeue 25")
    page.click("#select-matching")
    expect(page.locator("#bulk-selection")).to_have_text("all 58 selected")
    db.save({**db.get("email-failed-002"), "priority": 5})  # all matching: as read when acting
    page.click("#bulk-delete")
    dialog = page.locator("#confirm-many")
    expect(dialog).to_contain_text("Delete all 58 failed jobs of email?")
    expect(page.locator("#confirm-go")).to_be_disabled()
    page.fill("#confirm-input", "57")
    expect(page.locator("#confirm-go")).to_be_disabled()
    page.fill("#confirm-input", "58")
    page.click("#confirm-go")
    expect(page.locator("#bulk-message")).to_have_text("deleted 58 jobs", timeout=WAIT_MS)
    expect(tab_count("failed")).to_have_text("0", timeout=WAIT_MS)  # of email
    assert db.get("sms-failed-000")["state"] == "failed"  # other queues untouched
    screenshots(page, "bulk")


def test_busy_view_and_schedules_with_their_next_run(
    page: Any, server_url: str, db: Database
) -> None:
    """Each worker with the jobs it runs (progress, runtime); a status document
    without a `jobs` list shown calmly; a schedule's next run and last slot in
    its own zone, labelled; Pause, Resume and Run now as `queshot schedule` writes them."""
    from playwright.sync_api import expect
    from test_admin_cli import put_job

    from queshot import schedule_admin

    now = now_ms()
    put_job(
        db, "active", id="long-report", progress=91, worker_id="w-busy", claimed_at=now - 125_000
    )
    base = {"type": "queshot_worker", "last_seen": now, "lease_seconds": 60, "concurrency": 3}
    db.save(
        {
            **base,
            "_id": "queshot-worker:busy",
            "name": "busy",
            "worker_id": "w-busy",
            "queues": "email",
            "jobs": ["long-report"],
            "version": "1.2.3",
            "started_at": now - 3_600_000,
        }
    )
    db.save(
        {
            **base,
            "_id": "queshot-worker:quiet",
            "name": "quiet",
            "worker_id": "w-quiet",
            "queues": "sms",
        }
    )
    db.save(  # short jobs: none held as it wrote, one finished just before
        {
            **base,
            "_id": "queshot-worker:brisk",
            "name": "brisk",
            "worker_id": "w-brisk",
            "queues": "sms",
            "jobs": [],
            "finished": 1107,
            "last_finished_at": now - 40,
            "status_every_ms": 20_000,
        }
    )
    schedule_admin.add_schedule(
        db,
        {
            "_id": "queshot-schedule:nightly",
            "queue": "reports",
            "cron": "0 3 * * *",
            "timezone": "Asia/Tokyo",
            "task": "report",
        },
    )
    open_dashboard(page, server_url, db)

    busy = page.locator('#workers tr[data-worker="busy"]')
    expect(busy).to_contain_text("1/3", timeout=WAIT_MS)
    expect(busy).to_contain_text("1.2.3, started ")
    expect(busy).to_contain_text("busy")
    running = page.locator('#workers tr.busy-job[data-job="long-report"]')
    expect(running).to_contain_text("91%")
    expect(running).to_contain_text("running for 2m")
    quiet = page.locator('#workers tr[data-worker="quiet"] td')
    expect(quiet.nth(3)).to_have_text("-/3")  # no `jobs` list: calmly "-"
    expect(quiet.nth(6)).to_have_text("idle")
    brisk = page.locator('#workers tr[data-worker="brisk"] td')
    expect(brisk.nth(3)).to_have_text("0/3, 1107 done")
    expect(brisk.nth(6)).to_have_text("busy")

    nightly = page.locator('#schedules tr[data-schedule="queshot-schedule:nightly"]')
    expect(nightly.locator("td.next")).to_contain_text(" 03:00:00 GMT+9 (in ", timeout=WAIT_MS)
    expect(nightly.locator("td.last")).to_contain_text(" 03:00:00 GMT+9 (")
    expect(nightly).to_contain_text("0 3 * * * (Asia/Tokyo)")
    screenshots(page, "busy")
    nightly.locator("button.schedule-toggle").click()
    expect(page.locator("#schedules-message")).to_have_text(
        "schedule nightly paused", timeout=WAIT_MS
    )
    assert db.get("queshot-schedule:nightly")["enabled"] is False
    expect(nightly.locator("td.next")).to_have_text("-", timeout=WAIT_MS)
    nightly.locator("button.schedule-toggle").click()
    expect(page.locator("#schedules-message")).to_have_text(
        "schedule nightly resumed", timeout=WAIT_MS
    )
    resumed = db.get("queshot-schedule:nightly")
    assert resumed["enabled"] is True and resumed["enabled_at"] >= now
    nightly.locator("button.schedule-run").click()  # confirmed by the fixture's dialog handler
    message = page.locator("#schedules-message")
    expect(message).to_contain_text("schedule nightly: run now asked", timeout=WAIT_MS)
    asked = db.get("queshot-schedule:nightly")["run_requested_at"]  # as `queshot schedule run`
    expect(message).to_have_text(
        f"schedule nightly: run now asked (its job id ends in :now-{asked})"
    )


# -- history that does not lie, limits, worker versions, indexing (issue 22) ------------------


def chart_read_after(page: Any, moment: int) -> None:
    """Wait until the chart has been read again since `moment` (epoch ms)."""
    summary = page.locator("#chart-summary")
    wait_until(lambda: int(summary.get_attribute("data-read-at") or 0) > moment, timeout=10.0)


def test_the_chart_keeps_its_counts_when_jobs_are_requeued_or_deleted(
    page: Any, server_url: str, db: Database
) -> None:
    """The bars are the workers' history counters: requeueing the failed jobs
    and deleting the complete ones leaves the last hour, day and week as
    they were (they were drawn from the jobs' own times before)."""
    from playwright.sync_api import expect

    from queshot.cli import main

    email = Queue("email", db)
    email.create_jobs([{"n": n} for n in range(4)] + [{"fail": True}] * 2)

    def handler(job: Job) -> None:
        if job.data.get("fail"):
            raise RuntimeError("no")

    # stopping the worker writes its last counts
    run_worker_until(email, handler, lambda: settled(email))
    open_dashboard(page, server_url, db)
    summary = page.locator("#chart-summary")
    expect(summary).to_have_attribute("data-complete", "4", timeout=WAIT_MS)
    expect(summary).to_have_attribute("data-failed", "2")
    expect(summary).to_contain_text("4 complete, 2 failed in the last hour")

    connection = ["--url", server_url, "--db", db.name]
    every = ("--queue", "email", "--all", "--yes", *connection)
    assert main(["requeue", "--state", "failed", *every]) == 0
    assert main(["delete", "--state", "complete", *every]) == 0
    changed = now_ms()
    expect(page.locator('#counts td[data-queue="email"][data-state="complete"]')).to_have_text(
        "0", timeout=WAIT_MS
    )
    chart_read_after(page, changed)
    expect(summary).to_have_attribute("data-complete", "4")
    expect(summary).to_have_attribute("data-failed", "2")
    for window in ("day", "week"):
        page.select_option("#chart-window", window)
        expect(summary).to_contain_text(f"4 complete, 2 failed in the last {window}")
    assert page.locator('#chart rect[data-kind="failed"]').count() == 1
    screenshots(page, "history")


def test_the_limits_panel_shows_tokens_in_use_and_jobs_held_back(
    page: Any, server_url: str, db: Database
) -> None:
    """Hidden without limits; with one, its kinds and sizes, the tokens a
    running job holds, the jobs a full limit holds back (as the workers
    report them); a token, which has a `state` too, is never listed as a job."""
    from playwright.sync_api import expect

    from queshot.limits import Limit, Rate, set_limit

    open_dashboard(page, server_url, db)
    expect(page.locator("#limits-panel")).to_be_hidden()
    set_limit(db, Limit(["email"], concurrency=1, key_rate=Rate(5, 60, "fixed")))
    email = Queue("email", db)
    email.create_jobs([{"n": n} for n in range(3)])
    release = threading.Event()
    worker = Worker(
        email, lambda job: release.wait(10), concurrency=2, lease_seconds=3, poll_interval=0.2
    )
    worker.start()
    try:
        concurrency = page.locator('#limits tr[data-limit="email"][data-kind="concurrency"]')
        expect(concurrency).to_contain_text("1 at once", timeout=WAIT_MS)
        expect(concurrency.locator("td.in-use")).to_have_text("1 of 1", timeout=WAIT_MS)
        key_rate = page.locator('#limits tr[data-limit="email"][data-kind="key_rate"]')
        expect(key_rate).to_contain_text("5 starts per 60 s per key (fixed windows)")
        expect(key_rate.locator("td.in-use")).to_have_text("0, no key holds one")  # no limit_key
        held_back = page.locator("#limits-held-back")
        some = re.compile(r"^[1-9]")
        expect(held_back).to_have_attribute("data-held-back", some, timeout=WAIT_MS)
        expect(held_back).to_contain_text("held back by a full limit, as 1 live worker reports")
        # the Busy view: the worker's version and start, from its status document
        status = db.get(f"queshot-worker:{worker.id}")
        assert status["version"] == queshot_version() and status["started_at"] <= now_ms()
        assert status["finished"] >= 0 and "last_finished_at" in status
        busy = page.locator(f'#workers tr[data-worker="{worker.name}"]')
        expect(busy).to_contain_text(f"{queshot_version()}, started 20")
        screenshots(page, "limits")
        page.fill("#search input", "queshot-token")
        page.click("#search button")
        showing(page, "search")
        expect(page.locator("#search-summary")).to_have_text('0 jobs match "queshot-token"')
        assert db.all_docs(startkey="queshot-token:", endkey="queshot-token:\ufff0")["rows"]
    finally:
        release.set()
        worker.stop(grace=5)


def test_the_page_says_how_far_the_views_are_indexed_while_they_are_built(
    page: Any, server_url: str, db: Database
) -> None:
    """A burst of jobs written, the page opened before any view was read: while
    its reads wait for the views (held here until the line is seen, so the
    build cannot finish first), the header says "indexing: N of M changes"
    (on CouchDB; pouchdb-server's _info does not say how far), then the
    jobs show and the line goes."""
    from playwright.sync_api import expect

    now = now_ms()
    docs = [job_doc("inactive", i, "burst", now - 60_000, _id=f"burst-{i:05}") for i in range(300)]
    assert all("error" not in r for r in db.bulk_docs(docs))
    held: list[Any] = []
    released = threading.Event()

    def hold(route: Any) -> None:
        if released.is_set():
            route.continue_()
        else:
            held.append(route)

    views = "**/_design/queshot-watch/_view/**"
    page.route(views, hold)
    page.goto(f"{safe_url(server_url)}{db.name}/{dashboard.DASHBOARD_PATH}")
    indexing = page.locator("#indexing")
    expect(indexing).to_contain_text("indexing: ", timeout=WAIT_MS)
    if REAL_COUCHDB:
        expect(indexing).to_have_text(re.compile(r"^indexing: \d+ of \d+ changes$"))
        assert int(indexing.get_attribute("data-total")) >= len(docs)
        assert int(indexing.get_attribute("data-done")) < len(docs)
    page.set_viewport_size({"width": 1024, "height": 700})
    page.screenshot(path=str(ARTIFACTS / "dashboard-indexing-1024.png"))
    released.set()
    for route in held:
        route.continue_()
    expect(page.locator('#tabs button[data-tab="waiting"] .count')).to_have_text(
        str(len(docs)), timeout=WAIT_MS
    )
    expect(page.locator("#jobs tbody tr[data-id]")).to_have_count(25, timeout=WAIT_MS)
    expect(indexing).to_be_hidden(timeout=WAIT_MS)


def test_a_closed_job_panel_stays_closed_when_a_read_in_flight_answers(
    page: Any, server_url: str, db: Database
) -> None:
    """A refresh re-reads the open job; closing the panel while that read is
    on its way must not let its answer open the panel again."""
    from playwright.sync_api import expect

    job_id = Queue("email", db).create_job({"n": 1})
    open_dashboard(page, server_url, db)
    open_job(page, job_id)
    held: list[Any] = []
    with page.expect_request(lambda request: request.url.endswith(job_id), timeout=WAIT_MS):
        page.route(f"**/{db.name}/{job_id}", lambda route: held.append(route))  # reads wait here
        Queue("email", db).create_job({"n": 2})  # a change: the page refreshes, the open job too
    deadline = time.monotonic() + 10
    while not held and time.monotonic() < deadline:  # the route's handler comes after the event
        page.wait_for_timeout(50)  # lets Playwright deliver it (a sleep would not)
    assert held  # a refresh is reading the open job
    page.keyboard.press("Escape")
    expect(page.locator("#job")).to_be_hidden()
    updated = page.locator("#updated")
    updated.evaluate("element => { element.textContent = ''; }")
    held[0].continue_()
    expect(updated).to_contain_text("updated", timeout=WAIT_MS)  # that refresh has ended
    expect(page.locator("#job")).to_be_hidden()
