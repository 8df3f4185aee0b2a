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
    """The pauses that concern a worker on the queues `paths`. `on_change` is
    called when they change (the dispatcher wakes up to claim again on a resume)."""

    def __init__(
        self, paths: list[list[str]], on_change: Callable[[], None] = lambda: None
    ) -> None:
        self.paths = paths
        self._on_change = on_change
        self._lock = threading.Lock()
        self._pauses: list[dict[str, Any]] = []

    def heard(self, ddoc: dict[str, Any] | None) -> None:
        """The design document as read or as the feed brought it."""
        pauses = protocol.paused_queues(ddoc)
        with self._lock:
            changed = pauses != self._pauses
            before = [protocol.pause_of(self._pauses, path) for path in self.paths]
            self._pauses = pauses
            after = [protocol.pause_of(pauses, path) for path in self.paths]
        if not changed:
            return
        for path, was, now in zip(self.paths, before, after, strict=True):
            if (was is None) == (now is None):
                continue
            if now is not None:
                log.info("queue %s is paused: claiming nothing until it is resumed", now["queue"])
            else:
                log.info("queue %s resumed: claiming again", "/".join(path))
        self._on_change()

    @property
    def paused(self) -> bool:
        """Whether all of this worker's queues are paused (each its own path,
        or one above): then it claims nothing."""
        with self._lock:
            return all(protocol.pause_of(self._pauses, path) is not None for path in self.paths)

    def holds(self, queues: Any) -> bool:
        """Whether a job whose `queues` field is `queues` is held back by a pause."""
        with self._lock:
            return protocol.pause_of(self._pauses, queues) is not None
