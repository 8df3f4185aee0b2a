"""The dashboard in a real headless Chromium: counts, a failed job, requeue, live updates.

Uses Debian's /usr/bin/chromium through the `playwright` package (no browser
download). The attachments are served with the Content-Security-Policy that
`queshot push --dashboard-csp` sets on CouchDB 3 (pouchdb-server sends none),
so a script that CouchDB would block fails here too."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from conftest import COUCHDB_BIN, REAL_COUCHDB, wait_until

from queshot import admin
from queshot.couch import Couch, Database, safe_url
from queshot.jobs import DEFAULTS, STATES, WORKER_GONE_AFTER_LEASES, now_ms
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
SCREENSHOT = ROOT / "test-artifacts" / "dashboard.png"
WAIT_MS = 10_000


def test_attachments_are_served_unrendered(couch: Couch, db: Database) -> None:
    """They are Jinja templates when pushed; nothing in them may change, but
    for defaults.js, which is the queue's constants rendered."""
    for name, content_type in (
        ("index.html", "text/html"),
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
        message = admin.dashboard_csp(couch)
        assert message is None or message.startswith("dashboard: ")
    else:  # pouchdb-server: no /_node/_local/_config, no CSP on attachments
        assert admin.dashboard_csp(couch, enable=True) is None


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
        admin.dashboard_csp(couch, enable=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
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
                headers = {**response.headers, "content-security-policy": admin.DASHBOARD_CSP}
                route.fulfill(response=response, headers=headers)

            context.route("**/_design/queshot/*", with_couchdb_csp)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
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
    counts = queue.stats()
    return counts["inactive"] == counts["active"] == 0


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

    page.goto(f"{safe_url(server_url)}{db.name}/{admin.DASHBOARD_PATH}")

    def count(queue: str, state: str) -> Any:
        return page.locator(f'#counts td[data-queue="{queue}"][data-state="{state}"]')

    expect(count("email", "complete")).to_have_text("2", timeout=WAIT_MS)
    expect(count("email", "failed")).to_have_text("1")
    expect(count("reports/daily", "inactive")).to_have_text("2")
    expect(count("total", "total")).to_have_text("5")
    expect(page.locator('#workers tr[data-worker="old"]')).to_have_class("gone")
    expect(page.locator("#status")).to_have_text("live", timeout=WAIT_MS)

    page.click('#failed tr[data-id="bad-job"]')
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
