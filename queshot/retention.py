"""Retention rules: how long, and how many, of a queue's finished jobs are
kept, per finished state (RQ's `result_ttl`/`failure_ttl`, BullMQ's
`removeOnComplete`/`removeOnFail` {age, count}). A rule is a document per
queue (`queshot-retention:<path>`, its schema checked by validate_doc_update,
queue admins only), so every worker reads the same numbers and a change
reaches them at their next pass, without a restart. A rule covers its queue
and the queues under it that have no rule of their own; each queue path
keeps its own newest `count`.

`apply` removes what the rules no longer keep, oldest first, in `_bulk_docs`
batches, at most `budget` jobs per call: workers call it on their queues
every pass (worker/retention.py), `queshot retention apply` on all queues.
Any number may run at once: a job deleted by another is a conflict, not an
error. The rows come from the `stats` view ([path, state, since] -> rev),
which has them anyway, so no index is added for this."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from . import admin_docs, protocol
from .couch import (
    BadRequest,
    Database,
    Forbidden,
    NotFound,
    ServerError,
    Unauthorized,
)
from .couch import (
    purge as purge_revisions,
)
from .jobs import (
    FINISHED_STATES,
    RETENTION_DOC_PREFIX,
    RETENTION_TYPE,
    QueueError,
    now_ms,
    queue_path,
)

log = logging.getLogger(__name__)

BATCH = 500  # deletes per _bulk_docs
PURGE_BATCH = 100  # CouchDB's default [purge] max_document_id_number
BUDGET = 2000  # jobs removed per pass at most: a pass stays short, the next goes on


@dataclass(frozen=True)
class Keep:
    """What one finished state keeps: jobs that finished within `age`
    seconds and/or the newest `count`; a job goes once either says so."""

    age: float | None = None
    count: int | None = None

    def as_doc(self) -> dict[str, Any]:
        return {k: v for k, v in (("age", self.age), ("count", self.count)) if v is not None}


@dataclass(frozen=True)
class Rule:
    """A queue's retention rule: a Keep per finished state it limits (a
    state it does not name is kept for ever)."""

    queue: list[str]
    keep: dict[str, Keep] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return rule_id(self.queue)

    def as_doc(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"_id": self.id, "type": RETENTION_TYPE, "queue": self.queue}
        return doc | {state: keep.as_doc() for state, keep in self.keep.items()}

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Rule:
        """A stored rule (validate_doc_update checked its schema)."""
        keep = {
            state: Keep(doc[state].get("age"), doc[state].get("count"))
            for state in FINISHED_STATES
            if isinstance(doc.get(state), dict)
        }
        return cls(queue_path(doc["queue"]), keep)


def rule_id(queue: str | list[str]) -> str:
    return RETENTION_DOC_PREFIX + "/".join(queue_path(queue))


def set_rule(db: Database, queue: str | list[str], **keep: Keep) -> Rule:
    """Write (or replace) a queue's rule: `complete=Keep(age=86400)`, ...
    The rules check it, and only queue admins may."""
    unknown = set(keep) - set(FINISHED_STATES)
    if unknown:
        raise QueueError(
            f"retention is per finished state ({', '.join(FINISHED_STATES)}), "
            f"not {', '.join(sorted(unknown))}"
        )
    rule = Rule(queue_path(queue), keep)
    doc = rule.as_doc()
    admin_docs.write_over(db, doc)
    return rule


def remove_rule(db: Database, queue: str | list[str]) -> None:
    """Remove a queue's rule: its finished jobs are kept again (or go by
    the rule of a queue above it)."""
    missing = f"no retention rule for queue {'/'.join(queue_path(queue))!r}"
    admin_docs.remove(db, rule_id(queue), RETENTION_TYPE, missing)


def rules(db: Database) -> list[Rule]:
    """Every queue's rule. One the schema did not check (written before it)
    and that cannot be read is left out, with a warning."""
    found = []
    for doc in protocol.docs_by_prefix(db, RETENTION_DOC_PREFIX):
        try:
            found.append(Rule.from_doc(doc))
        except (QueueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("retention rule %s cannot be read, left out: %s", doc.get("_id"), exc)
    return found


def rule_for(by_queue: dict[tuple[str, ...], Rule], path: list[str]) -> Rule | None:
    """The rule of a queue path: its own, else the nearest queue above it."""
    for length in range(len(path), 0, -1):
        rule = by_queue.get(tuple(path[:length]))
        if rule is not None:
            return rule
    return None


@dataclass
class Removal:
    """What one pass did: jobs `removed`; `conflicts`, jobs changed or
    removed by someone else meanwhile (left alone); `refused`, why others
    could not be removed; `more` when the budget ran out first."""

    removed: int = 0
    conflicts: int = 0
    refused: list[str] = field(default_factory=list)
    more: bool = False


def apply(
    db: Database,
    *,
    under: list[list[str]] | None = None,
    budget: int = BUDGET,
    now: int | None = None,
    purge: bool = False,
) -> Removal:
    """Remove the finished jobs the rules no longer keep, of the queues
    `under` these paths (or all), at most `budget` of them, oldest first;
    with `purge`, their tombstones too (CouchDB 3, a database admin)."""
    by_queue = {tuple(rule.queue): rule for rule in rules(db)}
    done = Removal()
    if not by_queue:
        return done
    now = now_ms() if now is None else now
    paths = {
        tuple(p)
        for top in under or [None]
        for p in protocol.queue_paths(db, top)
        if isinstance(p, list) and all(isinstance(part, str) for part in p)
    }
    for path in sorted(paths):
        rule = rule_for(by_queue, list(path))
        for state, keep in rule.keep.items() if rule else ():
            end = _boundary(db, list(path), state, keep, now)
            after = None
            while end is not None and not done.more:
                rows = protocol.oldest_in_state(
                    db, list(path), state, min(BATCH, budget), end=end, after=after
                )
                if not rows:
                    break
                removed = _delete(db, rows, done)
                if purge:
                    purge_tombstones(db, removed)
                after = rows[-1]
                budget -= len(rows)
                done.more = budget <= 0
    return done


def _boundary(
    db: Database, path: list[str], state: str, keep: Keep, now: int
) -> dict[str, Any] | None:
    """Where the jobs the rule removes end, as a row of the `stats` view
    ({key, id}: before it; id None: up to and with its key), or None if it
    removes none. Both limits cut from the oldest end, so the larger cut
    counts. A count is turned into the row of the newest job it keeps,
    never into a number to remove: passes running at once (other workers)
    then never cut into the newest `count`, whatever the others removed."""
    by_count = by_age = 0
    if keep.count is not None:
        by_count = protocol.state_count(db, path, state) - keep.count
    if keep.age is not None:
        cutoff = now - keep.age * 1000
        by_age = protocol.state_count(db, path, state, until=cutoff)
    if max(by_count, by_age) <= 0:
        return None
    if by_age >= by_count:
        return {"key": [path, state, cutoff], "id": None}
    if keep.count == 0:
        return {"key": [path, state, {}], "id": None}
    return protocol.nth_newest(db, path, state, keep.count)


def _delete(db: Database, rows: list[dict[str, Any]], done: Removal) -> dict[str, list[str]]:
    """Delete the rows' jobs; the tombstones made ({id: [rev]})."""
    docs = [{"_id": row["id"], "_rev": row["value"], "_deleted": True} for row in rows]
    tombstones = {}
    for result in db.bulk_docs(docs):
        if "error" not in result:
            done.removed += 1
            tombstones[result["id"]] = [result["rev"]]
        elif result["error"] == "conflict":
            done.conflicts += 1
        else:
            done.refused.append(f"{result.get('id')}: {result.get('reason') or result['error']}")
    return tombstones


def purge_tombstones(db: Database, tombstones: dict[str, list[str]]) -> None:
    """`_purge` removed jobs' tombstones, so that they leave the database's
    by-id and by-seq trees for good. pouchdb-server has no `_purge`."""
    ids = list(tombstones)
    for start in range(0, len(ids), PURGE_BATCH):
        try:
            purge_revisions(db, {i: tombstones[i] for i in ids[start : start + PURGE_BATCH]})
        except (NotFound, BadRequest, ServerError) as exc:
            raise QueueError(
                f"{db.name}: the server cannot purge ({exc.reason or exc.error}): "
                "_purge needs Apache CouchDB 3 (pouchdb-server has none); the removed jobs "
                "stay as tombstones"
            ) from None
        except (Forbidden, Unauthorized) as exc:
            raise QueueError(
                f"{db.name}: purging needs a database admin ({exc.reason or exc.error}); "
                "the removed jobs stay as tombstones"
            ) from None


__all__ = ["Keep", "Removal", "Rule", "apply", "remove_rule", "rule_for", "rules", "set_rule"]
