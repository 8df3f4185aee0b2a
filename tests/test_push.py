"""Issue #2 acceptance: `sync.push` and `queshot push` against the real
test server (pouchdb-server, or Apache CouchDB at COUCHDB_URL)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from queshot import designdocs, sync
from queshot.couch import Couch, Database, safe_url
from queshot.devserver import CHECKOUT, free_port

SOURCE = designdocs.default_source()
STAGED_ID = "_design/queshot" + sync.STAGED_SUFFIX
DDOC_IDS = ["_design/queshot", "_design/queshot-watch"]


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`queshot ARGS` in a child process, as a user would run it."""
    return subprocess.run(
        [sys.executable, "-m", "queshot.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def edit(path: Path, old: str, new: str, count: int | None = 1) -> int:
    """Replace `old` (which must occur `count` times, or at all for None) in
    `path`; return the 1-based line of the first."""
    text = path.read_text()
    assert text.count(old) == count if count else old in text, f"{old!r} not in {path} as said"
    path.write_text(text.replace(old, new, 1))
    return text[: text.index(old)].count("\n") + 1


def with_credentials(url: str, user: str, password: str) -> str:
    """`url` with its credentials replaced by these."""
    parts = urlsplit(safe_url(url))
    return parts._replace(netloc=f"{user}:{password}@{parts.netloc}").geturl()


def server_flat(db: Database) -> dict[str, str]:
    """The design docs on the server, their attachments by the MD5 of their
    bytes as served (CouchDB's own digest is that of what it stored, gzipped)."""
    flat = {}
    for ddoc_id in DDOC_IDS:
        doc = db.get(ddoc_id)
        flat |= {f"{ddoc_id} {key}": value for key, value in sync.flatten(doc).items()}
        for name, stub in doc.get("_attachments", {}).items():
            md5 = base64.b64encode(hashlib.md5(db.attachment(doc["_id"], name)).digest()).decode()
            flat[f"{ddoc_id} _attachments/{name}"] = f"{stub['content_type']} md5-{md5}"
    return flat


def rendered_flat(bundle: designdocs.Bundle) -> dict[str, str]:
    assert [ddoc.id for ddoc in bundle.design_docs] == DDOC_IDS
    return {
        f"{ddoc.id} {key}": value
        for ddoc in bundle.design_docs
        for key, value in sync.flatten(ddoc.doc).items()
    }


def changed_ids(db: Database) -> set[str]:
    """Every id the database's `_changes` names, tombstones included."""
    return {row["id"] for row in db.changes(feed="normal", since=0)}


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A private copy of queshot's design docs to edit."""
    return Path(shutil.copytree(SOURCE, tmp_path / "designdocs"))


@pytest.fixture
def db_names(couch: Couch) -> Iterator[Callable[[], str]]:
    """Makes fresh database names; drops whatever databases they named afterwards."""
    made: list[str] = []

    def make() -> str:
        made.append(f"queshot_test_{uuid.uuid4().hex[:12]}")
        return made[-1]

    yield make
    for name in made:
        db = couch.database(name)
        if db.exists():
            db.drop()


# -- sync.push -----------------------------------------------------------------


def test_push_creates_database_design_doc_and_security(couch: Couch, db_name: str) -> None:
    bundle = designdocs.load()
    results = sync.push(couch, [db_name], bundle)

    actions = {r.target: r.action for r in results}
    assert actions == {
        "database": "created",
        "_security": "updated",
        "_design/queshot": "created",
        "_design/queshot-watch": "created",
    }
    db = couch.database(db_name)
    assert db.exists()
    assert db.security() == json.loads((SOURCE / "_security.json").read_text())
    assert server_flat(db) == rendered_flat(bundle)


def test_second_push_writes_nothing(couch: Couch, db: Database) -> None:
    rev = db.get("_design/queshot")["_rev"]

    results = sync.push(couch, [db.name], designdocs.load())

    assert [r.action for r in results] == ["unchanged", "unchanged", "unchanged"]
    assert db.get("_design/queshot")["_rev"] == rev


def test_a_changed_attachment_is_pushed(couch: Couch, db: Database, source: Path) -> None:
    edit(source / "queshot/_attachments/style.css", "}", "}\n/* changed */", count=None)
    bundle = designdocs.load(source)

    results = sync.push(couch, [db.name], bundle)

    (ddoc_result,) = [r for r in results if r.target == "_design/queshot"]
    assert (ddoc_result.action, ddoc_result.detail) == ("updated", "_attachments/style.css")
    assert server_flat(db) == rendered_flat(bundle)
    again = sync.push(couch, [db.name], bundle)
    assert [r.action for r in again] == ["unchanged", "unchanged", "unchanged"]


def test_view_change_goes_through_staged_copy(couch: Couch, db: Database, source: Path) -> None:
    edit(
        source / "queshot/views/stats/map.js", "stateSince(doc)], doc._rev)", "stateSince(doc)], 1)"
    )
    bundle = designdocs.load(source)

    results = sync.push(couch, [db.name], bundle)

    (ddoc_result,) = [r for r in results if r.target == "_design/queshot"]
    assert "staged" in ddoc_result.action
    assert "views.stats.map" in ddoc_result.detail
    assert server_flat(db) == rendered_flat(bundle)
    assert db.get_or_none(STAGED_ID) is None
    assert STAGED_ID in changed_ids(db)  # it was there, and is deleted
    db.save({"queues": "q", "state": "inactive", "created_at": 1})
    rows = db.view("queshot", "stats", reduce=False)["rows"]
    assert [row["value"] for row in rows] == [1]  # the live view runs the new map


def test_change_without_views_is_updated_in_place(couch: Couch, db: Database, source: Path) -> None:
    edit(source / "queshot/updates/complete.js", "doc.progress = 100;", "doc.progress = 100.0;")
    bundle = designdocs.load(source)

    results = sync.push(couch, [db.name], bundle)

    (ddoc_result,) = [r for r in results if r.target == "_design/queshot"]
    assert ddoc_result.action == "updated"
    assert ddoc_result.detail == "updates.complete"
    assert server_flat(db) == rendered_flat(bundle)
    assert STAGED_ID not in changed_ids(db)


# -- dry run -----------------------------------------------------------------------------


def test_dry_run_does_not_create_a_missing_database(couch: Couch, db_name: str) -> None:
    results = sync.push(couch, [db_name], designdocs.load(), dry_run=True)

    assert [r.action for r in results] == [
        "would create",
        "would update",
        "would create",
        "would create",
    ]
    assert not couch.database(db_name).exists()


def test_dry_run_shows_the_diff_and_writes_nothing(
    couch: Couch, db: Database, source: Path
) -> None:
    rev = db.get("_design/queshot")["_rev"]
    edit(
        source / "queshot/views/stats/map.js", "stateSince(doc)], doc._rev)", "stateSince(doc)], 1)"
    )

    results = sync.push(couch, [db.name], designdocs.load(source), dry_run=True)

    (ddoc_result,) = [r for r in results if r.target == "_design/queshot"]
    assert ddoc_result.action == "would update via staged copy"
    assert "server _design/queshot views.stats.map" in ddoc_result.diff
    assert (
        "-  emit([queuePath(doc.queues) || doc.queues, doc.state, stateSince(doc)], doc._rev);"
        in ddoc_result.diff
    )
    assert (
        "+  emit([queuePath(doc.queues) || doc.queues, doc.state, stateSince(doc)], 1);"
        in ddoc_result.diff
    )
    assert db.get("_design/queshot")["_rev"] == rev
    assert db.get_or_none(STAGED_ID) is None


def test_cli_dry_run_prints_the_diff_and_writes_nothing(
    server_url: str, db: Database, db_names: Callable[[], str], source: Path, couch: Couch
) -> None:
    rev = db.get("_design/queshot")["_rev"]
    missing = db_names()
    edit(source / "queshot/updates/complete.js", "doc.progress = 100;", "doc.progress = 99;")

    done = run_cli(
        "push",
        "--dry-run",
        "--url",
        server_url,
        "--db",
        f"{db.name},{missing}",
        "--source",
        str(source),
    )

    assert done.returncode == 0, done.stderr
    assert f"{db.name}: _design/queshot would update (updates.complete)" in done.stdout
    assert "server _design/queshot updates.complete" in done.stdout
    assert "-  doc.progress = 100;" in done.stdout
    assert "+  doc.progress = 99;" in done.stdout
    assert f"{missing}: database would create" in done.stdout
    assert db.get("_design/queshot")["_rev"] == rev
    assert not couch.database(missing).exists()


# -- broken sources ------------------------------------------------------------------------

BREAKAGES = {
    "js syntax": ("queshot/updates/complete.js", "doc.progress = 100;", "doc.progress = 100 +;"),
    "js syntax in a partial": (
        "_partials/model.js",
        "return isNumber(x) && Math.floor(x) === x;",
        "return isNumber(x) && Math.floor(x) === ;",
    ),
    "jinja undefined": ("queshot/lib/job.js", "{{ lease_seconds }}", "{{ lease_secondz }}"),
    "jinja syntax": (
        "queshot/views/stats/map.js",
        "{% include '_partials/model.js' %}",
        "{% if %}",
    ),
    "json": ("context.json", '"lease_seconds": 60,', '"lease_seconds" 60,'),
}


@pytest.mark.parametrize("breakage", BREAKAGES.values(), ids=BREAKAGES.keys())
def test_broken_source_is_refused_naming_file_and_line(
    server_url: str, db: Database, source: Path, breakage: tuple[str, str, str]
) -> None:
    name, old, new = breakage
    line = edit(source / name, old, new)
    rev = db.get("_design/queshot")["_rev"]

    with pytest.raises(designdocs.DesignDocError) as caught:
        designdocs.load(source)
    assert str(caught.value).startswith(f"{source / name}:{line}: ")

    done = run_cli("push", "--url", server_url, "--db", db.name, "--source", str(source))
    assert done.returncode != 0
    assert f"{source / name}:{line}: " in done.stderr
    assert "Traceback" not in done.stderr
    assert db.get("_design/queshot")["_rev"] == rev


def test_invalid_json_in_a_design_doc_file(source: Path) -> None:
    (source / "queshot/options.json").write_text('{\n  "local_seq": true,\n}\n')

    with pytest.raises(designdocs.DesignDocError, match=r"options\.json:3: invalid JSON"):
        designdocs.load(source)


def test_every_function_is_es5() -> None:
    """CouchDB before 3.4 runs SpiderMonkey builds that may not know ES2015, and
    QuickJS (our local check) accepts it: parse every function as ES5 with acorn,
    pinned in package.json's devDependencies."""
    node, acorn = shutil.which("node"), CHECKOUT / "node_modules" / "acorn"
    if not node or not acorn.is_dir():
        pytest.skip("needs node and node_modules/acorn (npm ci --ignore-scripts)")
    sources = [
        src
        for ddoc in designdocs.load().design_docs
        for src in designdocs.javascript_sources(ddoc.doc)
    ]
    checker = """
    const acorn = require(process.argv[1]);
    const sources = JSON.parse(require('fs').readFileSync(0, 'utf8'));
    for (const [key, src, isModule] of sources) {
      try {
        acorn.parse(isModule ? src : '(' + src + '\\n)', {ecmaVersion: 5});
      } catch (e) { console.log(key + ': ' + e.message); }
    }
    """
    done = subprocess.run(
        [node, "-e", checker, str(acorn)],
        input=json.dumps(sources),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""


# -- CLI errors -------------------------------------------------------------------------------


def test_unreachable_server_is_one_line(db_name: str) -> None:
    url = f"http://127.0.0.1:{free_port()}/"

    done = run_cli("push", "--url", url, "--db", db_name)

    assert done.returncode != 0
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"queshot: error: cannot reach CouchDB at {url}: ")


@pytest.mark.parametrize("reachable", [True, False], ids=["server", "no server"])
def test_password_in_url_is_never_printed(server_url: str, db_name: str, reachable: bool) -> None:
    """With a server, the unknown user is refused (401 from CouchDB and pouchdb-server alike)."""
    target = server_url if reachable else f"http://127.0.0.1:{free_port()}/"
    url = with_credentials(target, "alice", "s3cret")

    for args in (["push"], ["push", "--dry-run"], ["-v", "push"]):
        done = run_cli(*args, "--url", url, "--db", db_name)
        assert done.returncode != 0
        assert "s3cret" not in done.stdout + done.stderr
        assert "Traceback" not in done.stderr
        assert safe_url(target) in done.stderr.splitlines()[-1]


def test_wrong_password_for_a_users_account(server_url: str, couch: Couch, db_name: str) -> None:
    # A throwaway user, not the admin: CouchDB 3.4+ locks a user out after
    # repeated failed logins, which would break every later test.
    name = f"queshot_test_{uuid.uuid4().hex[:8]}"
    users = couch.database("_users")
    user = {"_id": f"org.couchdb.user:{name}", "name": name, "type": "user", "roles": []}
    users.save({**user, "password": "right-password"})
    url = with_credentials(server_url, name, "wrong-password")
    try:
        done = run_cli("push", "--url", url, "--db", db_name)
    finally:
        users.delete(user["_id"], users.get(user["_id"])["_rev"])

    assert done.returncode != 0
    assert len(done.stderr.splitlines()) == 1
    assert f"refused user '{name}'" in done.stderr
    assert "wrong-password" not in done.stdout + done.stderr


# -- several databases -------------------------------------------------------------------------


def assert_provisioned(db: Database, bundle: designdocs.Bundle) -> None:
    assert db.security() == bundle.security
    assert server_flat(db) == rendered_flat(bundle)


def test_cli_pushes_to_every_db_flag(
    server_url: str, couch: Couch, db_names: Callable[[], str]
) -> None:
    a, b = db_names(), db_names()

    done = run_cli("push", "--url", server_url, "--db", a, "--db", b)

    assert done.returncode == 0, done.stderr
    for name in (a, b):
        assert_provisioned(couch.database(name), designdocs.load())


def test_cli_pushes_to_every_db_in_env(
    server_url: str, couch: Couch, db_names: Callable[[], str]
) -> None:
    a, b = db_names(), db_names()

    done = run_cli("push", "--url", server_url, env={"QUESHOT_DB": f"{a},{b}"})

    assert done.returncode == 0, done.stderr
    for name in (a, b):
        assert_provisioned(couch.database(name), designdocs.load())
