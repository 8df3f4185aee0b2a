"""Producers that enqueue offline: a producer database (PouchDB, a field
site's CouchDB) holds its jobs, replicates them into the queue database and
pulls back its own, as they run and finish.

The two replications are `_replicator` documents on the producer's server,
so they run where the producer is and retry while it is offline:

- push: producer database -> queue database, as the producer's account (role
  `queshot_producer`): validate_doc_update judges each replicated revision
  with that account's roles, so the push may create jobs and nothing else -
  an edit or a delete of a copy is refused (counted in the replication's
  `doc_write_failures`) and leaves no branch on the queue database;
- pull: queue database -> producer database, with the selector
  `{"origin": <producer>}`: the rules let nobody but a queue admin write
  another account's name there (lib/origin.js), so the selector is the
  producer's own jobs. It is a filter, not a wall: a member of the queue
  database may read every job.

`replication_lags` reads how far they are behind from `_scheduler/docs`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from . import protocol
from .couch import Couch, Database, NotFound, safe_url
from .jobs import DEFAULTS

ORIGIN = DEFAULTS["origin_field"]
REPLICATOR = "_replicator"
PUSH, PULL = "push", "pull"


def selector(producer: str) -> dict[str, Any]:
    """The jobs of `producer`: what both replications carry."""
    return {ORIGIN: producer}


def replication_id(direction: str, producer: str, queue_db: Database) -> str:
    return f"queshot-{direction}:{producer}:{queue_db.name}"


def _endpoint(db: Database, credentials: tuple[str, str] | None) -> dict[str, Any]:
    """A replication endpoint: the database's URL, credentials apart (CouchDB
    3 keeps `auth` out of what `_scheduler/docs` shows)."""
    endpoint: dict[str, Any] = {"url": db.url}
    if credentials:
        user, password = credentials
        endpoint["auth"] = {"basic": {"username": user, "password": password}}
    return endpoint


def replication_docs(
    producer_db: Database,
    queue_db: Database,
    producer: str,
    password: str,
) -> list[dict[str, Any]]:
    """The push and pull `_replicator` documents of `producer` (its account on
    the queue's server and that account's password). The producer database
    is reached with its own client's credentials, as the replicator runs on
    its server."""
    local = _endpoint(producer_db, producer_db.couch.credentials)
    remote = _endpoint(queue_db, (producer, password))
    common = {"continuous": True, "selector": selector(producer)}
    return [
        {"_id": replication_id(PUSH, producer, queue_db), "source": local, "target": remote}
        | common,
        {"_id": replication_id(PULL, producer, queue_db), "source": remote, "target": local}
        | common,
    ]


def set_up(producer_db: Database, queue_db: Database, producer: str, password: str) -> list[str]:
    """Write (or rewrite) the producer's two replications on the producer
    database's server, creating that database if it is missing; their ids."""
    producer_db.create()
    replicator = producer_db.couch.database(REPLICATOR)
    replicator.create()
    ids = []
    for doc in replication_docs(producer_db, queue_db, producer, password):
        stored = replicator.get_or_none(doc["_id"])
        if stored is not None:
            doc["_rev"] = stored["_rev"]
        replicator.save(doc)
        ids.append(doc["_id"])
    return ids


@dataclass(frozen=True)
class Lag:
    """One replication into or out of the queue database, as its server's
    scheduler reports it."""

    doc_id: str
    direction: str  # push (into the queue database) or pull
    state: str  # running, pending, crashing, failed, completed...
    changes_pending: int | None  # changes of the source not yet replicated
    docs_written: int
    doc_write_failures: int  # revisions the queue's rules refused (pushes)
    last_updated: str | None
    error: str | None


def replication_lags(couch: Couch, queue_db: Database) -> list[Lag]:
    """The replications `couch`'s scheduler runs that write or read the queue
    database (matched by its name in their source or target URL)."""
    try:
        answer = couch.json("GET", "/_scheduler/docs")
    except NotFound:  # pouchdb-server has no scheduler
        return []
    tail = "/" + quote(queue_db.name, safe="")
    lags = []
    for doc in answer.get("docs") or []:
        ends = {side: _shown_url(doc.get(side)) for side in ("source", "target")}
        if not (ends["target"].endswith(tail) or ends["source"].endswith(tail)):
            continue
        info = doc.get("info") if isinstance(doc.get("info"), dict) else {}
        pending = info.get("changes_pending")
        lags.append(
            Lag(
                doc_id=str(doc.get("doc_id")),
                direction=PUSH if ends["target"].endswith(tail) else PULL,
                state=str(doc.get("state")),
                changes_pending=pending if isinstance(pending, int) else None,
                docs_written=int(info.get("docs_written") or 0),
                doc_write_failures=int(info.get("doc_write_failures") or 0),
                last_updated=doc.get("last_updated"),
                error=info.get("error") if isinstance(info.get("error"), str) else None,
            )
        )
    return lags


def _shown_url(endpoint: Any) -> str:
    """An endpoint as `_scheduler/docs` shows it (a URL, its password starred)."""
    return safe_url(str(endpoint or "")).rstrip("/")


def origin_counts(db: Database) -> dict[str, dict[str, int]]:
    """Jobs per producer and state."""
    counts: dict[str, dict[str, int]] = {}
    for row in protocol.listing(db, protocol.ORIGINS, group_level=2):
        origin, state = row["key"]
        counts.setdefault(str(origin), {})[str(state)] = int(row["value"])
    return counts
