"""Fauxton, CouchDB's own admin UI, as the README tells a person to use it, in
a real headless Chromium: log in, open a failed job, change `"state"` to
`"inactive"` in the editor, Save Changes; the job then runs as a fresh start.
And the refusal a person sees for an illegal edit is the README's.

Fauxton is served by Apache CouchDB at /_utils, so this needs COUCHDB_BIN
(pouchdb-server's Fauxton is another, older one). Screenshots go to
test-artifacts/."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from conftest import COUCHDB_BIN, run_until_settled
from test_dashboard import CHROMIUM, CHROMIUM_ARGS, ROOT

from queshot.couch import Database, safe_url
from queshot.queue import Queue
from queshot.worker import Job

ARTIFACTS = ROOT / "test-artifacts"
WAIT_MS = 15_000

pytestmark = pytest.mark.skipif(
    not COUCHDB_BIN, reason="drives the Fauxton that Apache CouchDB serves: set COUCHDB_BIN"
)


@pytest.fixture
def fauxton(server_url: str) -> Iterator[Any]:
    """A page logged in through Fauxton's own login form."""
    if not CHROMIUM.exists():
        pytest.skip("needs Debian's chromium at /usr/bin/chromium (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright package")
    parts = urlsplit(server_url)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{safe_url(server_url)}_utils/#login")
        page.fill("#username", unquote(parts.username or ""))
        page.fill("#password", unquote(parts.password or ""))
        page.click("#login-btn")
        sync_api.expect(
            page.get_by_text("You have been logged in", exact=False).first
        ).to_be_visible(timeout=WAIT_MS)
        yield page
        browser.close()


def logged_in_toast(page: Any) -> Any:
    return page.locator("span", has_text="You have been logged in")


def edit_in_fauxton(page: Any, server_url: str, db: Database, job_id: str, edit: Any) -> Any:
    """Open the job in Fauxton's editor, change its text with `edit`, click
    Save Changes; the response to Fauxton's PUT."""
    # within Fauxton, as a click would (a reload would show the login toast again)
    page.evaluate("hash => { location.hash = hash; }", f"#database/{db.name}/{job_id}")
    page.wait_for_selector(".ace_editor", timeout=WAIT_MS)
    editor = "document.querySelector('.ace_editor').env.editor"
    page.wait_for_function(f"{editor}.getValue().includes({json.dumps(job_id)})", timeout=WAIT_MS)
    text = page.evaluate(f"{editor}.getValue()")
    page.evaluate(f"text => {editor}.setValue(text)", edit(text))
    with page.expect_response(lambda r: r.request.method == "PUT" and job_id in r.url) as put:
        page.get_by_role("button", name="Save Changes").click()
    return put.value


def set_state(state: str) -> Any:
    """The one edit the README asks for: the value of "state", nothing else."""
    return lambda text: re.sub(r'"state": "\w+"', f'"state": "{state}"', text, count=1)


def test_a_failed_job_requeued_in_fauxton_runs_as_a_fresh_start(
    fauxton: Any, server_url: str, db: Database
) -> None:
    email = Queue("email", db, max_attempts=2, backoff_seconds=0.01)
    seen: list[int] = []
    fixed = False

    def handler(job: Job) -> str:
        seen.append(job.attempts)
        if not fixed:
            raise ValueError("mailbox full")
        return "sent"

    job_id = email.create_job({"to": "ada@example.org"})
    run_until_settled(email, handler)
    assert (db.get(job_id)["state"], seen) == ("failed", [1, 2])

    response = edit_in_fauxton(fauxton, server_url, db, job_id, set_state("inactive"))
    assert response.status == 201, response.text()
    ARTIFACTS.mkdir(exist_ok=True)
    fauxton.screenshot(path=str(ARTIFACTS / "fauxton-requeue.png"))
    saved = db.get(job_id)
    assert saved["state"] == "inactive"  # the save alone: nothing else was edited

    fixed = True
    run_until_settled(email, handler)
    done = db.get(job_id)
    assert seen == [1, 2, 1]
    assert (done["state"], done["attempts"], done["stalls"], done["error"]) == (
        "complete",
        1,
        0,
        None,
    )
    assert done["failed_at"] is None and len(done["errors"]) == 2


def test_fauxton_shows_the_readmes_refusal(fauxton: Any, server_url: str, db: Database) -> None:
    from playwright.sync_api import expect

    email = Queue("email", db)
    job_id = email.create_job({})
    run_until_settled(email, lambda job: "done")
    response = edit_in_fauxton(fauxton, server_url, db, job_id, set_state("active"))
    refusal = "queshot: a job cannot move from 'complete' to 'active'"
    assert response.status == 403 and response.json()["reason"] == refusal
    expect(logged_in_toast(fauxton)).to_be_hidden(timeout=WAIT_MS)  # toasts show one at a time
    toast = fauxton.locator("span", has_text=f"Save failed: {refusal}")  # Fauxton's words
    expect(toast).to_be_visible(timeout=WAIT_MS)
    ARTIFACTS.mkdir(exist_ok=True)
    fauxton.screenshot(path=str(ARTIFACTS / "fauxton-refusal.png"))
    readme = (ROOT / "README.md").read_text()
    assert refusal in readme
    assert db.get(job_id)["state"] == "complete"
