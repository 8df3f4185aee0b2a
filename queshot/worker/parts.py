"""The threads the worker's parts run in: a part whose loop dies of an error
nothing handled takes the worker down (`PartDied`), with one log line naming
the part and the error, rather than leave a worker that says it is alive and
claims nothing (`queshot worker` then exits 1, so that a supervisor starts it
again)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class PartDied(RuntimeError):
    """A part of the worker (its dispatch, feed, heartbeat... thread) died of
    an error nothing handles."""


def start_part(
    target: Callable[[], None], name: str, on_death: Callable[[PartDied], None]
) -> threading.Thread:
    """Run a part's loop `target` in a daemon thread named after the part;
    if it raises, log it (with its traceback) and tell `on_death`."""

    def guarded() -> None:
        try:
            target()
        except BaseException as exc:
            log.exception("the worker's %s thread died of %s", name, said(exc))
            on_death(PartDied(f"the worker's {name} thread died of {said(exc)}"))

    thread = threading.Thread(target=guarded, name=f"queshot-{name}", daemon=True)
    thread.start()
    return thread


def said(exc: BaseException) -> str:
    """An exception in one line: its type and the start of its message."""
    text = str(exc)
    message = text.splitlines()[0][:300] if text.strip() else ""
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
