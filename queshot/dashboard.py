"""The dashboard as its users meet it: where it is, and what stands between a
browser and its page on CouchDB 3 (a login first; the attachment CSP that
stops its script), said as one line each for `queshot push` to print.
The page itself is `designdocs/queshot/_attachments/`.

A members-only database refuses even the page to a browser without a
session, so the same page can also be served from a public app database
(`queshot push --dashboard-db NAME`): code only, readable by anyone, written
by server admins; the page reads the job database named by its `?db=` with
the user's session and shows its own login form on the first 401.
"""

from __future__ import annotations

from urllib.parse import quote

from . import protocol
from .couch import Couch, Database, Forbidden, Unauthorized
from .designdocs import ATTACHMENTS, Bundle, DesignDoc, DesignDocError, check_javascript

DASHBOARD_PATH = protocol.DASHBOARD_PATH
DASHBOARD_CSP = "default-src 'self'; style-src 'self' 'unsafe-inline'"

PUBLIC_DDOC = "queshot-dashboard"
# No members: anyone may read the page; no admins: only server admins write it.
PUBLIC_SECURITY = {"admins": {"names": [], "roles": []}, "members": {"names": [], "roles": []}}
# A database without members also takes anyone's writes of ordinary documents.
ADMINS_ONLY_WRITE = """function (newDoc, oldDoc, userCtx) {
  if (userCtx.roles.indexOf('_admin') === -1) {
    throw({forbidden: 'this database holds only the queshot dashboard; server admins write it'});
  }
}"""


def dashboard_url(db: Database) -> str:
    return f"{db.url}/{DASHBOARD_PATH}"


def public_dashboard_url(app_db: Database, job_db: str) -> str:
    """The public page reading `job_db` (see the module's docstring)."""
    return f"{app_db.url}/_design/{PUBLIC_DDOC}/index.html?db={quote(job_db, safe='')}"


def public_dashboard(bundle: Bundle) -> DesignDoc:
    """`_design/queshot-dashboard`: the attachments of the bundle's
    `_design/queshot` as rendered (the same files, not a copy in the source)."""
    source = next((d for d in bundle.design_docs if d.name == protocol.DDOC), None)
    if source is None or ATTACHMENTS not in source.doc:
        raise DesignDocError(f"{bundle.source}: no {protocol.DDOC}/{ATTACHMENTS} for the dashboard")
    doc = {
        "_id": f"_design/{PUBLIC_DDOC}",
        "language": "javascript",
        "validate_doc_update": ADMINS_ONLY_WRITE,
        ATTACHMENTS: source.doc[ATTACHMENTS],
    }
    sources = {k: v for k, v in source.sources.items() if k.startswith(f"{ATTACHMENTS}/")}
    ddoc = DesignDoc(PUBLIC_DDOC, doc, sources)
    check_javascript(ddoc)
    return ddoc


def dashboard_login_note(db: Database) -> str | None:
    """What to do first when the server refuses the dashboard's page to a
    browser that has not logged in (CouchDB 3: members-only databases answer
    such a request with a 401 JSON body, before any page of ours can load, and
    send no WWW-Authenticate, so the browser never asks); None if it does not."""
    if db.couch.anonymous_may_read(f"{db.name}/{DASHBOARD_PATH}"):
        return None
    return (
        f"dashboard: log in through Fauxton ({db.couch.url}_utils) in the same browser "
        "first; without a login CouchDB answers the page with a JSON 'unauthorized'"
    )


def dashboard_csp(couch: Couch, *, enable: bool = False) -> str | None:
    """Check (and with `enable`, fix) the one CouchDB setting the dashboard
    needs: CouchDB 3 sends `Content-Security-Policy: sandbox` with attachments,
    which stops the dashboard's script. Returns a line for the user, or None
    when there is nothing to say (already fine, or not CouchDB). Setting it is
    server-wide and per node: every attachment on that node gets DASHBOARD_CSP."""
    setting = "[csp] attachments_header_value"
    how = (
        f'set {setting} = "{DASHBOARD_CSP}" (server-wide, on every node), '
        "or run `queshot push --dashboard-csp` as a server admin"
    )
    try:
        csp = couch.node_config("csp")
    except (Unauthorized, Forbidden):
        return (
            f"dashboard: cannot read the server's {setting} (needs a server admin); if "
            f"the dashboard shows no data, CouchDB's default CSP 'sandbox' blocks it: {how}"
        )
    if csp is None:
        return None  # pouchdb-server: no config API, no CSP on attachments
    if csp.get("attachments_enable", "true") == "false":
        return None
    value = csp.get("attachments_header_value", "sandbox")
    if "sandbox" not in value:
        return None
    if not enable:
        return (
            f"dashboard: CouchDB sends 'Content-Security-Policy: {value}' on attachments, "
            f"which stops the dashboard's script: {how}"
        )
    couch.set_node_config("csp", "attachments_header_value", DASHBOARD_CSP)
    return (
        f'dashboard: set {setting} = "{DASHBOARD_CSP}" on {couch.url} '
        "(server-wide: applies to every attachment on this node; repeat on each node of a cluster)"
    )
