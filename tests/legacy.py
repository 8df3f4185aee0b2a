"""Documents stored before the rules: a database whose documents are written
first and whose design docs are pushed after, as a database holds documents
written before a release of queshot's rules refused them. A worker must
still survive every one of them."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import httpx

from queshot import designdocs, sync
from queshot.couch import Couch, Database, safe_url
from queshot.jobs import now_ms


def nested(levels: int) -> list[Any]:
    """A list nested `levels` deep: [[[...]]]."""
    value: list[Any] = []
    for _ in range(levels - 1):
        value = [value]
    return value


@contextlib.contextmanager
def deep_recursion(limit: int = 10_000) -> Iterator[None]:
    """Let json encode and decode documents nested deeper than Python's
    default recursion limit. The limit is the process's: while a worker runs
    in it, write such documents with `put_nested` instead."""
    before = sys.getrecursionlimit()
    sys.setrecursionlimit(max(before, limit))
    try:
        yield
    finally:
        sys.setrecursionlimit(before)


def legacy_job(job_id: str, queue: str, **fields: Any) -> dict[str, Any]:
    """A waiting job as the seed writes one, with `fields` over it."""
    doc = {
        "_id": job_id,
        "queues": queue,
        "state": "inactive",
        "worker_id": None,
        "priority": 0,
        "log": [],
        "data": {},
        "created_at": now_ms(),
        "attempts": 0,
        "max_attempts": 1,
    }
    doc.update(fields)
    return doc


def padded_to(doc: dict[str, Any], chars: int) -> dict[str, Any]:
    """`doc` with data {"pad": "xxx..."} making its JSON `chars` characters long."""
    padded = {**doc, "data": {"pad": ""}}
    padded["data"]["pad"] = "x" * (chars - len(json.dumps(padded, separators=(",", ":"))))
    return padded


def legacy_database(couch: Couch, name: str, docs: list[dict[str, Any]]) -> Database:
    """Database `name`, created with `docs` in it, then provisioned (`push`)."""
    db = couch.database(name)
    db.create()
    with deep_recursion():
        for doc in docs:
            db.save(dict(doc))
    sync.push(couch, [name], designdocs.load())
    return db


def read(db: Database, doc_id: str) -> dict[str, Any]:
    """A document however deep it nests."""
    with deep_recursion():
        return db.get(doc_id)


def put_nested(server_url: str, db_name: str, doc: dict[str, Any], field: str, levels: int) -> None:
    """Store `doc` with `field` a list nested `levels` deep, its JSON written
    out by hand: no recursion limit raised under a worker of this process."""
    text = json.dumps(doc)[:-1] + f', "{field}": ' + "[" * levels + "]" * levels + "}"
    parts = urlsplit(server_url)
    auth = (unquote(parts.username), unquote(parts.password or "")) if parts.username else None
    url = f"{safe_url(server_url).rstrip('/')}/{quote(db_name)}/{quote(doc['_id'], safe='/')}"
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    httpx.put(url, content=text, headers=headers, auth=auth).raise_for_status()
