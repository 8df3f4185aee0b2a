"""Stopping on a signal, as container runtimes send them: the first SIGTERM
or SIGINT asks the worker to finish its running jobs within its grace; a
second (`docker stop`'s or Kubernetes' kill is near) gives them back at once,
bounded by LAST_RELEASE_SECONDS, and exits, rather than leave them to a lease."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

LAST_RELEASE_SECONDS = 1.5  # what a second signal leaves for giving running jobs back


class StopSignals:
    """`requested` is set by a signal, `request()` or a fatal error;
    `release_all(within)` gives the running jobs back on the second signal."""

    def __init__(self, release_all: Callable[[float], None], grace: float) -> None:
        self.requested = threading.Event()
        self._release_all = release_all
        self._grace = grace

    def install(self) -> None:
        """Handle SIGTERM/SIGINT, when called from the main thread (only it may)."""
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, self._on_signal)

    def request(self) -> None:
        self.requested.set()

    def wait(self) -> None:
        """Block until a stop is requested (in steps, so signals are handled)."""
        while not self.requested.wait(0.5):
            pass

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self.requested.is_set():
            log.warning("second signal: giving back the running jobs, then exiting")
            self._release_all(LAST_RELEASE_SECONDS)
            os._exit(1)
        log.info("signal %d: finishing running jobs (up to %ss)", signum, self._grace)
        self.requested.set()
