"""The dashboard served from a public app database (`queshot push
--dashboard-db`): CouchDB 3 answers a browser without a session with a JSON
401 for any page of a members-only database, so the page lives in a database
anyone may read (code only) and reads the job database, named by `?db=`, with
the user's session, showing its own login form first."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import COUCHDB_BIN, REAL_COUCHDB
from test_push import run_cli

from queshot import dashboard, designdocs, sync
from queshot.couch import Couch, Database, Forbidden, safe_url
from queshot.designdocs import DesignDocError
from queshot.queue import Queue

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
WAIT_MS = 10_000
PUBLIC_ID = f"_design/{dashboard.PUBLIC_DDOC}"

real_couchdb = pytest.mark.skipif(
    not REAL_COUCHDB,
    reason="needs a members-only database and a user in _users: pouchdb-server runs as an "
    "admin party, where every page is readable without a session; set COUCHDB_BIN (or "
    "COUCHDB_URL) to run it on Apache CouchDB",
)


@pytest.fixture
def app_db_name(couch: Couch) -> Iterator[str]:
    name = f"queshot_test_app_{uuid.uuid4().hex[:8]}"
    yield name
    if couch.database(name).exists():
        couch.database(name).drop()


def test_push_writes_the_public_dashboard_and_a_second_push_writes_nothing(
    couch: Couch, db: Database, app_db_name: str
) -> None:
    bundle = designdocs.load()

    first = sync.push(couch, [db.name], bundle, dashboard_db=app_db_name)

    public = {r.target: r.action for r in first if r.database == app_db_name}
    assert public == {"database": "created", "_security": "updated", PUBLIC_ID: "created"}
    app_db = couch.database(app_db_name)
    assert app_db.security() == dashboard.PUBLIC_SECURITY
    served = app_db.get(PUBLIC_ID)["_attachments"]
    assert sorted(served) == sorted(db.get("_design/queshot")["_attachments"])
    for name in served:
        assert app_db.attachment(PUBLIC_ID, name) == db.attachment("_design/queshot", name)

    second = sync.push(couch, [db.name], bundle, dashboard_db=app_db_name)

    assert {r.action for r in second} == {"unchanged"}


def test_a_dry_run_creates_no_dashboard_db(couch: Couch, db: Database, app_db_name: str) -> None:
    results = sync.push(couch, [db.name], designdocs.load(), dry_run=True, dashboard_db=app_db_name)

    public = {r.target: r.action for r in results if r.database == app_db_name}
    assert public == {"database": "would create", "_security": "would update"} | {
        PUBLIC_ID: "would create"
    }
    assert not couch.database(app_db_name).exists()


def test_the_dashboard_db_is_never_a_job_database(couch: Couch, db: Database) -> None:
    with pytest.raises(DesignDocError, match="must not be a job database"):
        sync.push(couch, [db.name], designdocs.load(), dashboard_db=db.name)
    assert db.security() != dashboard.PUBLIC_SECURITY


@real_couchdb
def test_anyone_reads_the_public_page_and_only_admins_write(
    server_url: str, couch: Couch, db: Database, app_db_name: str
) -> None:
    sync.push(couch, [db.name], designdocs.load(), dashboard_db=app_db_name)
    with Couch(safe_url(server_url)) as anonymous:
        assert anonymous.anonymous_may_read(f"{app_db_name}/{PUBLIC_ID}/index.html")
        assert not anonymous.anonymous_may_read(f"{db.name}/{dashboard.DASHBOARD_PATH}")
        with pytest.raises(Forbidden):
            anonymous.database(app_db_name).save({"_id": "graffiti"})


@pytest.fixture
def member(new_user: Callable[..., tuple[str, str]]) -> tuple[str, str]:
    """A user in `_users` with a queshot role (a member of the job database)."""
    return new_user("queshot_producer")


@pytest.fixture
def browser_page(couch: Couch) -> Iterator[Any]:
    """A fresh Chromium page with no session, the attachments under the CSP
    `queshot push --dashboard-csp` sets (see tests/test_dashboard.py)."""
    from test_dashboard import CHROMIUM, CHROMIUM_ARGS

    if not CHROMIUM.exists():
        pytest.skip("needs Debian's chromium at /usr/bin/chromium (apt-get install -y chromium)")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="needs the playwright package (pip install -e '.[dev]')"
    )
    if COUCHDB_BIN:
        dashboard.dashboard_csp(couch, enable=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        if not COUCHDB_BIN:

            def with_couchdb_csp(route: Any) -> None:
                response = route.fetch()
                headers = {**response.headers, "content-security-policy": dashboard.DASHBOARD_CSP}
                route.fulfill(response=response, headers=headers)

            context.route(f"**/{PUBLIC_ID}/*", with_couchdb_csp)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        yield page
        browser.close()
        assert not errors, f"JavaScript errors in the dashboard: {errors}"


@real_couchdb
def test_first_visit_without_a_session_explains_and_logs_in(
    browser_page: Any,
    server_url: str,
    couch: Couch,
    db: Database,
    app_db_name: str,
    member: tuple[str, str],
) -> None:
    from playwright.sync_api import expect

    Queue("email", db).create_jobs([{"n": 1}, {"n": 2}, {"n": 3}])
    sync.push(couch, [db.name], designdocs.load(), dashboard_db=app_db_name)
    url = dashboard.public_dashboard_url(couch.database(app_db_name), db.name)
    page: Any = browser_page

    page.goto(url)

    login = page.locator("#login")
    expect(login).to_be_visible(timeout=WAIT_MS)
    expect(login).to_contain_text("members-only")
    expect(login).to_contain_text("queshot_")
    expect(page.locator("#db-name")).to_have_text(db.name)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard-public-login-1400.png"), full_page=True)
    name, password = member
    page.fill('#login input[name="name"]', name)
    page.fill('#login input[name="password"]', password)
    page.click('#login button[type="submit"]')
    expect(login).to_be_hidden(timeout=WAIT_MS)
    total = page.locator('#counts td[data-queue="total"][data-state="total"]')
    expect(total).to_have_text("3", timeout=WAIT_MS)
    expect(page.locator("#status")).to_have_text("live", timeout=WAIT_MS)
    page.screenshot(path=str(ARTIFACTS / "dashboard-public-1400.png"), full_page=True)


def test_cli_prints_the_public_url_and_no_fauxton_first(
    server_url: str, couch: Couch, db: Database, app_db_name: str
) -> None:
    done = run_cli("push", "--url", server_url, "--db", db.name, "--dashboard-db", app_db_name)

    assert done.returncode == 0, done.stderr
    public_url = dashboard.public_dashboard_url(couch.database(app_db_name), db.name)
    assert f"dashboard: {public_url}" in done.stdout
    assert "Fauxton" not in done.stdout
