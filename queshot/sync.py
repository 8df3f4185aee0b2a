"""Pushing design docs: compare what `designdocs.load` rendered with what the
server holds, write only what differs (a view change through a staged copy,
so that queries never wait on an index rebuild), and watch a source folder
to push again on every save.
"""

from __future__ import annotations

import base64
import contextlib
import difflib
import hashlib
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import dashboard, designdocs
from .couch import (
    BadRequest,
    Conflict,
    Couch,
    CouchError,
    Database,
    NotFound,
    ServerUnreachable,
)
from .designdocs import ATTACHMENTS, Bundle, DesignDoc, DesignDocError
from .filewatch import FileWatcher
from .jobs import PAUSE_FIELD

log = logging.getLogger(__name__)

STAGED_SUFFIX = "-staged"
# Fields of a design doc that belong to the server, not to the source: the
# queues paused through its `pause` handler. A push neither compares nor
# drops them: it writes them back as the server has them.
SERVER_FIELDS = (PAUSE_FIELD,)


# -- comparing -------------------------------------------------------------------


def _md5(raw: bytes) -> str:
    return "md5-" + base64.b64encode(hashlib.md5(raw).digest()).decode()


def _digest(attachment: dict[str, Any]) -> str:
    return _md5(base64.b64decode(attachment["data"]))


def flatten(doc: dict[str, Any]) -> dict[str, str]:
    """A design doc as {key path: text}, the unit of comparison and of diffs.
    Attachments compare by content type and MD5 digest: the one the server
    reports for a stub, else that of the bytes pushed."""
    flat: dict[str, str] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict) and node:
            for key, child in node.items():
                walk(f"{prefix}.{key}" if prefix else key, child)
        else:
            flat[prefix] = node if isinstance(node, str) else json.dumps(node, sort_keys=True)

    for key, value in doc.items():
        if key in ("_id", "_rev", "_revisions", "_attachments", *SERVER_FIELDS):
            continue
        walk(key, value)
    for name, att in (doc.get("_attachments") or {}).items():
        digest = att["digest"] if "digest" in att else _digest(att)
        flat[f"{ATTACHMENTS}/{name}"] = f"{att.get('content_type')} {digest}"
    return flat


@dataclass
class Change:
    """How a design doc on the server differs from the rendered one."""

    ddoc: DesignDoc
    current: dict[str, Any] | None
    changed: list[str]

    @property
    def views_changed(self) -> bool:
        return self.current is not None and any(k.startswith("views.") for k in self.changed)

    def diff(self) -> str:
        """A readable per-function unified diff (server -> local)."""
        old = flatten(self.current) if self.current else {}
        new = flatten(self.ddoc.doc)
        out = []
        for key in self.changed:
            out.extend(
                difflib.unified_diff(
                    old.get(key, "").splitlines(),
                    new.get(key, "").splitlines(),
                    fromfile=f"server {self.ddoc.id} {key}",
                    tofile=f"local {self.ddoc.source_of(key)}",
                    lineterm="",
                )
            )
        return "\n".join(out)


def compare(db: Database, ddoc: DesignDoc) -> Change:
    current = db.get_or_none(ddoc.id)
    new = flatten(ddoc.doc)
    old = flatten(current) if current else {}
    for key in _attachments_to_read(old, new):
        raw = db.attachment(ddoc.id, key.removeprefix(f"{ATTACHMENTS}/"))
        old[key] = f"{old[key].rsplit(' ', 1)[0]} {_md5(raw)}"
    changed = sorted(k for k in new.keys() | old.keys() if new.get(k) != old.get(k))
    return Change(ddoc, current, changed)


def _attachments_to_read(old: dict[str, str], new: dict[str, str]) -> list[str]:
    """Attachments of the same type whose digests differ. CouchDB stores
    compressible types gzip-compressed and reports the digest of what it
    stored, not of the bytes pushed (pouchdb-server reports theirs), so only
    the bytes themselves, read back, tell whether the content changed."""
    return [
        key
        for key, value in new.items()
        if key.startswith(f"{ATTACHMENTS}/")
        and key in old
        and old[key] != value
        and old[key].rsplit(" ", 1)[0] == value.rsplit(" ", 1)[0]
    ]


# -- pushing -------------------------------------------------------------------------


@dataclass
class PushResult:
    database: str
    target: str  # "_design/<name>" or "_security" or "database"
    action: str  # unchanged, created, updated, staged, would create, would update
    detail: str = ""
    diff: str = ""

    def __str__(self) -> str:
        tail = f" ({self.detail})" if self.detail else ""
        return f"{self.database}: {self.target} {self.action}{tail}"


def push(
    couch: Couch,
    databases: list[str],
    bundle: Bundle,
    *,
    dry_run: bool = False,
    dashboard_db: str | None = None,
) -> list[PushResult]:
    """Bring every database to the rendered design docs and security object,
    writing only what differs. View changes go through a staged copy so that
    queries never wait on an index rebuild. With `dashboard_db`, that database
    also gets the public dashboard (dashboard.public_dashboard), the same way."""
    if dashboard_db in databases:  # its security would open the jobs to anyone
        raise DesignDocError(f"--dashboard-db {dashboard_db}: must not be a job database")
    results = []
    for name in databases:
        db, exists = _database(couch, name, dry_run, results)
        if bundle.security is not None:
            results.append(_push_security(db, bundle.security, exists, dry_run))
        for ddoc in bundle.design_docs:
            results.append(_push_ddoc(db, ddoc, exists, dry_run))
    if dashboard_db is not None:
        public = dashboard.public_dashboard(bundle)
        db, exists = _database(couch, dashboard_db, dry_run, results)
        results.append(_push_security(db, dashboard.PUBLIC_SECURITY, exists, dry_run))
        results.append(_push_ddoc(db, public, exists, dry_run))
    return results


def _database(
    couch: Couch, name: str, dry_run: bool, results: list[PushResult]
) -> tuple[Database, bool]:
    """Database `name` and whether it existed; created (and said so) if not."""
    db = couch.database(name)
    exists = db.exists()
    if not exists:
        results.append(PushResult(name, "database", "would create" if dry_run else "created"))
        if not dry_run:
            db.create()
    return db, exists


def _push_security(db: Database, security: dict, exists: bool, dry_run: bool) -> PushResult:
    current = db.security() if exists else {}
    if current == security:
        return PushResult(db.name, "_security", "unchanged")
    if dry_run:
        return PushResult(db.name, "_security", "would update")
    db.set_security(security)
    return PushResult(db.name, "_security", "updated")


def _push_ddoc(db: Database, ddoc: DesignDoc, exists: bool, dry_run: bool) -> PushResult:
    change = compare(db, ddoc) if exists else Change(ddoc, None, sorted(flatten(ddoc.doc)))
    if not change.changed:
        return PushResult(db.name, ddoc.id, "unchanged")
    detail = ", ".join(change.changed)
    if dry_run:
        action = "would create" if change.current is None else "would update"
        if change.views_changed:
            action += " via staged copy"
        return PushResult(db.name, ddoc.id, action, detail, change.diff())
    if change.views_changed:
        _swap_in_staged(db, ddoc, change.current)
        return PushResult(db.name, ddoc.id, "updated via staged copy", detail)
    if change.current is None:
        _save_ddoc(db, ddoc, dict(ddoc.doc))
    else:
        _save_over(db, ddoc, change.current)
    return PushResult(db.name, ddoc.id, "created" if change.current is None else "updated", detail)


def _save_ddoc(db: Database, ddoc: DesignDoc, doc: dict[str, Any]) -> None:
    try:
        db.save(doc)
    except BadRequest as exc:
        raise DesignDocError(
            f"{db.name}: CouchDB refused {ddoc.id} (from {ddoc.source_of('')}): {exc.reason}"
        ) from None


def _with_server_fields(ddoc: DesignDoc, current: dict[str, Any]) -> dict[str, Any]:
    """The rendered design doc at `current`'s revision, with the server's own fields kept."""
    kept = {name: current[name] for name in SERVER_FIELDS if name in current}
    return {**ddoc.doc, **kept, "_rev": current["_rev"]}


def _save_over(db: Database, ddoc: DesignDoc, current: dict[str, Any]) -> None:
    """Write the rendered design doc over `current`. A conflict means the
    server's fields changed meanwhile (a queue paused): read them again and
    write once more, so that the pause is never lost."""
    try:
        _save_ddoc(db, ddoc, _with_server_fields(ddoc, current))
    except Conflict:
        _save_ddoc(db, ddoc, _with_server_fields(ddoc, db.get(ddoc.id)))


def _swap_in_staged(db: Database, ddoc: DesignDoc, current: dict[str, Any]) -> None:
    """CouchDB's documented zero-downtime view change: upload under
    `_design/<name>-staged`, query it so the index is built, then write the
    same content over the live design doc and delete the staged copy. Indexes
    are keyed by the views' content, so the built index carries over. (The
    docs use COPY for the swap; a PUT of identical content has the same effect
    and pouchdb-server cannot COPY design docs.)"""
    staged_name = ddoc.name + STAGED_SUFFIX
    staged_id = f"_design/{staged_name}"
    leftover = db.get_or_none(staged_id)
    if leftover:
        db.delete(staged_id, leftover["_rev"])
    staged = dict(ddoc.doc, _id=staged_id)
    _save_ddoc(db, ddoc, staged)
    try:
        _build_index(db, staged_name, ddoc.view_names())
        _save_over(db, ddoc, current)
    finally:
        with contextlib.suppress(NotFound):
            db.delete(staged_id, db.get(staged_id)["_rev"])


def _build_index(db: Database, ddoc_name: str, views: list[str], attempts: int = 60) -> None:
    if not views:
        return
    for attempt in range(attempts):
        try:
            db.view(ddoc_name, views[0], limit=0)
            return
        except ServerUnreachable:  # a large index can outlast one read timeout
            log.info("index of _design/%s still building (attempt %d)", ddoc_name, attempt + 1)
    raise DesignDocError(f"{db.name}: index of _design/{ddoc_name} did not build in time")


# -- watching ------------------------------------------------------------------------


def _log_result(result: PushResult) -> None:
    log.info("%s", result)


def watch(
    couch: Couch,
    databases: list[str],
    source: Path | str | None = None,
    *,
    debounce: float = 0.5,
    stop: threading.Event | None = None,
    on_result: Callable[[PushResult], None] = _log_result,
    dashboard_db: str | None = None,
) -> None:
    """Push, then push again after every burst of saves under `source`, until
    `stop` is set (or Ctrl-C): the edit-and-reload loop for design docs. A save
    that does not render or compile pushes nothing, so the server keeps the
    last good design docs; it is reported in one log line, as is a push the
    server refuses, and the watch goes on."""
    root = designdocs.source_root(source).resolve()

    def push_all() -> None:
        try:
            results = push(couch, databases, designdocs.load(root), dashboard_db=dashboard_db)
        except (DesignDocError, CouchError) as exc:
            log.error("not pushed, the server keeps the previous design docs: %s", exc)
            return
        for result in results:
            on_result(result)

    def visible(path: Path) -> bool:  # load() skips hidden files, such as editors' swap files
        if not path.is_relative_to(root):
            return False
        return not any(part.startswith(".") for part in path.relative_to(root).parts)

    with FileWatcher(lambda _: push_all(), debounce=debounce, accept=visible) as watcher:
        watcher.watch([root], recursive=True)
        push_all()
        (stop or threading.Event()).wait()
