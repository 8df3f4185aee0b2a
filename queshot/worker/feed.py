"""The worker's ear on the database: one `_changes` feed for its life (its
own, `OwnFeed`, or one shared by the workers of its host, `hostfeed.py`), which
wakes the dispatcher when a job of its queues becomes claimable (handing
that queue's picker the id when the job is due), tells the pickers which
jobs rivals take, tells the runner which of its own jobs were asked to
cancel, hands on the jobs to place in line by their arrival, and keeps the
lists of live peers from their status documents.

A row it cannot read or make sense of (a document nested too deep for
Python, a field of an odd type) is that document's problem: logged and
passed over, never the end of the feed."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any, Literal, Protocol

from .. import protocol
from ..couch import CouchError, Database, Forbidden, Outage, Unauthorized
from ..jobs import (
    LIMIT_DOC_PREFIX,
    WORKER_DOC_PREFIX,
    is_cancel_request_of,
    is_due,
    needs_place,
    now_ms,
    revision_number,
)
from ..retrying import MAX_RETRY_DELAY, Retrier
from .control import QueueControl
from .ordering import QueueOrder

log = logging.getLogger(__name__)


class ChangeSource(Protocol):
    """Where a listener's rows come from: every change since `since` that
    `selector` lets through (None: every change), each with its `seq`, until
    the worker halts. A row may come twice, never not at all."""

    def changes(self, since: str | int, selector: dict[str, Any] | None) -> Iterator[dict]: ...

    def describe(self) -> dict[str, Any]:
        """What the worker's status document says of its feed."""
        ...


class OwnFeed:
    """The worker's own `_changes` (the default): one listener on the server
    per worker. Also what a shared feed's leader reads, and its followers'
    one-shot catch-up, so that all read the same rows the same way."""

    def __init__(
        self, db: Database, *, heartbeat: float, outage: Outage, halt: threading.Event
    ) -> None:
        self.db = db
        self.heartbeat = heartbeat
        self.outage = outage
        self.halt = halt

    def changes(
        self,
        since: str | int,
        selector: dict[str, Any] | None,
        feed: Literal["continuous", "normal"] = "continuous",
    ) -> Iterator[dict]:
        """The changes since `since`: for as long as the worker runs
        (continuous), or those there are now (normal)."""
        return self.db.changes(
            since=since,
            feed=feed,
            include_docs=True,
            selector=selector,
            heartbeat=self.heartbeat,
            stop=self.halt,
            max_backoff=MAX_RETRY_DELAY,
            outage=self.outage,
        )

    def describe(self) -> dict[str, Any]:
        return {"role": "own"}


class FeedListener:
    """Follows the database's changes for the worker's `queues`. A claimable
    job goes to the picker of the first of them that takes it, if that
    picker takes hints (see `Picker.hints`); the dispatcher is woken either way."""

    def __init__(
        self,
        db: Database,
        *,
        worker_id: str,
        queues: QueueOrder,
        control: QueueControl,
        source: ChangeSource,
        wake: Callable[[], None],
        cancel_requested: Callable[[str, str], None],
        blocked_seen: Callable[[str, list[str] | None], None],
        arrived: Callable[[str], None],
        limits_heard: Callable[[dict[str, Any]], None],
        poll_interval: float,
        retrying: Retrier,
        halt: threading.Event,
        on_fatal: Callable[[Exception], None],
    ) -> None:
        self.db = db
        self.worker_id = worker_id
        self.queues = queues
        self.control = control
        self.source = source
        self.poll_interval = poll_interval
        self._wake = wake
        self._cancel_requested = cancel_requested
        self._blocked_seen = blocked_seen
        self._arrived = arrived
        self._limits_heard = limits_heard
        self._retrying = retrying
        self._outage = retrying.outage
        self._halt = halt
        self._on_fatal = on_fatal
        self._newest: dict[str, int] = {}  # revision numbers heard of the design doc and limits
        self.live = False  # the feed is being read (or retried through an outage)

    def run(self) -> None:
        """State and queue are checked here; CouchDB pre-filters with a Mango
        selector (no JavaScript), where the server can (`selector`). Not a
        `_view` filter: that runs the map function for every change in every
        worker's feed (on pouchdb-server in a fresh JS context each time: 10
        ms of server CPU per job with four workers, twice the claim). One feed
        for the worker's life: pouchdb-server keeps serving (and paying for)
        every continuous feed a client ever closed."""
        self.live = True
        try:
            # Pin where the feed starts, then read who is already there: no
            # status document falls between the two.
            # Both retried through an outage, as the feed itself is.
            since = self._retrying(lambda: self.db.info()["update_seq"])
            for doc_id, doc in self._retrying(lambda: list(protocol.status_docs(self.db))):
                self._heard_safely({"id": doc_id, "doc": doc})
            self._design_heard(self._retrying(lambda: self.db.get_or_none(protocol.DDOC_ID)) or {})
            for row in self.source.changes(since, self.selector()):
                self._heard_safely(row)
        except (Unauthorized, Forbidden) as exc:
            self._on_fatal(exc)
        except CouchError as exc:
            log.warning("changes feed ended (%s); polling every %s s", exc, self.poll_interval)
        finally:
            self.live = False

    def _heard_safely(self, row: dict[str, Any]) -> None:
        """One row; what goes wrong with it is logged, and the feed goes on."""
        if "unreadable" in row:
            log.warning(
                "changes feed: %s passed over: its document cannot be read here (%s)",
                _name(row.get("id")),
                row["unreadable"],
            )
            self._wake()  # if it is a job of ours, the pending view names it
            return
        try:
            self._heard(row)
        except Exception as exc:
            log.warning(
                "changes feed: %s passed over: %s: %s",
                _name(row.get("id")),
                type(exc).__name__,
                exc,
            )

    def _heard(self, row: dict[str, Any]) -> None:
        """Every step is harmless twice, and with an older revision after a
        newer one (a shared feed's catch-up and relay overlap): a hint for a
        job already taken costs one refused claim, a strike lasts until the
        next page read, an older status document ages out by its
        `last_seen`, a cancel keeps the highest revision, an unblocking looks
        jobs up again, a token given back is tried once more; only the design
        doc and the limits, whose pauses and sizes would stick until read
        again, are taken by revision (`_newest_yet`)."""
        doc = row.get("doc") or {}
        if row["id"].startswith(WORKER_DOC_PREFIX):
            self.queues.heard(row["id"], doc)
            return
        if row["id"] == protocol.DDOC_ID:
            self._design_heard(doc)
            return
        if row["id"].startswith(protocol.LIMITS_PREFIXES):  # limits and their tokens
            token = not row["id"].startswith(LIMIT_DOC_PREFIX)  # a late "freed" costs one try
            if token or self._newest_yet(row["id"], doc):
                self._limits_heard(row)
            return
        picker = self.queues.picker_for(doc.get("queues"))  # None: not one of this worker's
        if is_cancel_request_of(doc, self.worker_id):
            self._cancel_requested(row["id"], doc["_rev"])
            return
        if doc.get("state") == "blocked":
            created = revision_number(doc.get("_rev", "0-")) == 1
            waiting_for = doc.get("waiting_for")
            if not (created and isinstance(waiting_for, list)):
                waiting_for = None
            self._blocked_seen(row["id"], [w for w in waiting_for or [] if isinstance(w, str)])
            return
        if doc.get("state") != "inactive":
            if picker is not None or row.get("deleted"):
                self.queues.strike(row["id"])  # taken, finished or removed
            return
        if picker is None:
            return
        now = now_ms()
        if needs_place(doc, now) and picker.peers.place(row["id"]) == 0:
            self._arrived(row["id"])  # its first choice places it in line (arrivals.py)
        if self.control.holds(doc.get("queues")):
            return
        if picker.hints and is_due(doc, now):
            picker.offer(row["id"])
        self._wake()

    def _design_heard(self, doc: dict[str, Any]) -> None:
        if self._newest_yet(protocol.DDOC_ID, doc):
            self.control.heard(doc)

    def _newest_yet(self, doc_id: str, doc: dict[str, Any]) -> bool:
        """Whether `doc` is no older than what was heard of it: a shared feed
        may bring an older revision after a newer one (a follower's catch-up),
        which must not bring back a lifted pause or a changed limit."""
        rev = revision_number(doc.get("_rev") or "0-")
        if rev < self._newest.get(doc_id, 0):
            return False
        self._newest[doc_id] = rev
        return True

    def selector(self) -> dict[str, Any] | None:
        """The protocol's feed selector if the server filters `_changes` by
        selector, else None (pouchdb-server does not take the POST body
        CouchDB documents, and answers 404): then every change comes, and is
        checked here."""
        filtered = self.db.filters_by_selector(
            protocol.FEED_SELECTOR,
            stop=self._halt,
            max_backoff=MAX_RETRY_DELAY,
            outage=self._outage,
        )
        return protocol.FEED_SELECTOR if filtered else None


def _name(doc_id: Any) -> str:
    """A row's id for a log line: quoted, and cut short if long."""
    text = repr(doc_id) if doc_id else "a row without an id"
    return text if len(text) <= 200 else text[:200] + "..."
