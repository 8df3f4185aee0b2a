"""The queue's documents that only queue admins write - retention rules,
limits, schedules: one document an id, written over whatever revision is
there, removed only when it is of the kind asked for. validate_doc_update
judges each write; its refusal comes back as one QueueError line."""

from __future__ import annotations

from typing import Any

from .couch import Database, Forbidden, Unauthorized
from .jobs import QueueError


def typed_doc(db: Database, doc_id: str, doc_type: str, missing: str) -> dict[str, Any]:
    """The document `doc_id` if it is a `doc_type`; else QueueError(`missing`)."""
    doc = db.get_or_none(doc_id)
    if doc is None or doc.get("type") != doc_type:
        raise QueueError(missing)
    return doc


def save(db: Database, doc: dict[str, Any]) -> None:
    """Write `doc` (its `_rev`, if any, says which revision it replaces)."""
    try:
        db.save(doc)
    except (Forbidden, Unauthorized) as exc:
        raise QueueError(exc.reason or exc.error) from None


def write_over(db: Database, doc: dict[str, Any]) -> None:
    """Write `doc` in place of the current revision of its id, if any."""
    existing = db.get_or_none(doc["_id"])
    if existing is not None:
        doc["_rev"] = existing["_rev"]
    save(db, doc)


def remove(db: Database, doc_id: str, doc_type: str, missing: str) -> None:
    """Delete `doc_id` if it is a `doc_type`; else QueueError(`missing`)."""
    doc = typed_doc(db, doc_id, doc_type, missing)
    try:
        db.delete(doc["_id"], doc["_rev"])
    except (Forbidden, Unauthorized) as exc:
        raise QueueError(exc.reason or exc.error) from None
