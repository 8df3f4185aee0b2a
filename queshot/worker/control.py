"""Which queues are paused, as the worker knows it: read from the design
document when the worker starts and followed through its changes feed. The
claim handler refuses a paused queue's jobs whatever a worker knows; this
only spares the worker claims it would lose."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from .. import protocol

log = logging.getLogger(__name__)


class QueueControl:
    """The pauses that concern a worker on `path`. `on_change` is called when
    they change (the dispatcher wakes up to claim again on a resume)."""

    def __init__(self, path: list[str], on_change: Callable[[], None] = lambda: None) -> None:
        self.path = path
        self._on_change = on_change
        self._lock = threading.Lock()
        self._pauses: list[dict[str, Any]] = []

    def heard(self, ddoc: dict[str, Any] | None) -> None:
        """The design document as read or as the feed brought it."""
        pauses = protocol.paused_queues(ddoc)
        with self._lock:
            changed = pauses != self._pauses
            before = protocol.pause_of(self._pauses, self.path)
            self._pauses = pauses
            after = protocol.pause_of(pauses, self.path)
        if not changed:
            return
        if (before is None) != (after is None):
            if after is not None:
                log.info("queue %s is paused: claiming nothing until it is resumed", after["queue"])
            else:
                log.info("queue %s resumed: claiming again", "/".join(self.path))
        self._on_change()

    @property
    def paused(self) -> bool:
        """Whether this worker's whole queue is paused (its own path, or one above)."""
        with self._lock:
            return protocol.pause_of(self._pauses, self.path) is not None

    def holds(self, queues: Any) -> bool:
        """Whether a job whose `queues` field is `queues` is held back by a pause."""
        with self._lock:
            return protocol.pause_of(self._pauses, queues) is not None
