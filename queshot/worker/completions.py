"""Batched completions: the finished jobs of a worker written back many per
`_bulk_docs` round trip instead of one `complete` handler call each.

Each document goes against the revision its worker claimed, so a job someone
else changed meanwhile still answers 409, and validate_doc_update still rules
every document; only the round trips are shared.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from queue import Empty, SimpleQueue
from typing import Any

from ..couch import CouchError, Database

COMPLETE_BATCH = 100  # completions written per _bulk_docs round trip, at most
COMPLETE_LINGER = 0.005  # seconds a completion waits for those of other running jobs


@dataclass
class _Completion:
    """A completed job document waiting for the next batch."""

    doc: dict[str, Any]
    done: threading.Event = field(default_factory=threading.Event)
    result: dict[str, Any] = field(default_factory=dict)


class CompletionWriter:
    """Writes completed job documents in batches from its own thread (`run`).
    `retrying` retries a call through connection faults until `halt`;
    `running` says how many jobs are still running (whose completions may be
    worth waiting for)."""

    def __init__(
        self,
        db: Database,
        *,
        retrying: Callable[[Callable[[], Any]], Any],
        halt: threading.Event,
        running: Callable[[], int],
    ) -> None:
        self.db = db
        self._retrying = retrying
        self._halt = halt
        self._running = running
        self._queue: SimpleQueue[_Completion] = SimpleQueue()

    def write(self, doc: dict[str, Any]) -> dict[str, Any]:
        """Store `doc` with the next batch; its `_bulk_docs` result (`rev`, or
        `error`), or {} if the worker halted before the batch was written."""
        completion = _Completion(doc)
        self._queue.put(completion)
        while not completion.done.wait(0.5) and not self._halt.is_set():
            pass
        return completion.result if completion.done.is_set() else {}

    def run(self) -> None:
        """Write queued completions until halted: each batch takes what arrived
        while the previous one was in flight, and while other jobs are running
        it waits up to COMPLETE_LINGER for them."""
        while not self._halt.is_set():
            try:
                batch = [self._queue.get(timeout=0.5)]
            except Empty:
                continue
            deadline = time.monotonic() + COMPLETE_LINGER
            while len(batch) < COMPLETE_BATCH:
                wait = deadline - time.monotonic() if self._running() > len(batch) else 0
                try:
                    batch.append(self._queue.get(timeout=max(wait, 0.0)))
                except Empty:
                    break
            docs = [completion.doc for completion in batch]
            try:
                written = self._retrying(functools.partial(self.db.bulk_docs, docs))
                results = {result.get("id"): result for result in written}
            except CouchError as exc:
                results = {doc["_id"]: {"error": type(exc).__name__} for doc in docs}
            for completion in batch:
                completion.result = results.get(completion.doc["_id"]) or {"error": "no result"}
                completion.done.set()
