"""Watching source files for the development loop: one callback per burst of saves.

Shared by `queshot push --watch` (design docs) and the worker's `--reload`
(handler modules). Uses watchdog's native observer (inotify on Linux), so an
idle watch wakes nothing up: no polling.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch
from watchdog.observers.polling import PollingObserver

log = logging.getLogger(__name__)

# Writes, renames (editors save by renaming a temporary file over the original)
# and deletions. Not opens and reads: the callbacks read the watched files.
EVENTS: list[type[FileSystemEvent]] = [
    FileCreatedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileDeletedEvent,
    DirCreatedEvent,
    DirMovedEvent,
    DirDeletedEvent,
]


class FileWatcher:
    """Calls `on_change(paths)` on its own thread once per burst of changes to
    accepted paths; a burst ends when `debounce` seconds pass without another
    change, so an editor's several writes per save make one call. Changes that
    arrive while `on_change` runs make the next burst."""

    def __init__(
        self,
        on_change: Callable[[set[Path]], None],
        *,
        debounce: float,
        accept: Callable[[Path], bool] = lambda path: True,
    ) -> None:
        self._on_change = on_change
        self._debounce = debounce
        self._accept = accept
        self._events = _Events(self._notify)
        self._observer: BaseObserver = Observer()
        self._watches: dict[Path, ObservedWatch] = {}
        self._changed: set[Path] = set()
        self._last_change = 0.0
        self._closed = False
        self._wakeup = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="queshot-filewatch", daemon=True)

    def watch(self, directories: Iterable[Path], *, recursive: bool = False) -> None:
        """Watch exactly these directories, adding and dropping watches as needed."""
        wanted = {Path(d).resolve() for d in directories}
        for directory in self._watches.keys() - wanted:
            self._observer.unschedule(self._watches.pop(directory))
        for directory in wanted - self._watches.keys():
            self._watches[directory] = self._observer.schedule(
                self._events, str(directory), recursive=recursive, event_filter=EVENTS
            )

    def start(self) -> None:
        if isinstance(self._observer, PollingObserver):
            log.warning("no native file-system events here: watchdog falls back to polling")
        self._observer.start()
        self._thread.start()

    def close(self) -> None:
        """Stop watching; waits for a running `on_change` to return."""
        with self._wakeup:
            self._closed = True
            self._wakeup.notify()
        if self._observer.is_alive():
            self._observer.stop()
            self._observer.join()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    def __enter__(self) -> FileWatcher:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _notify(self, path: Path) -> None:
        if not self._accept(path):
            return
        with self._wakeup:
            self._changed.add(path)
            self._last_change = time.monotonic()
            self._wakeup.notify()

    def _next_burst(self) -> set[Path] | None:
        """Sleep until a burst of changes has gone quiet; None once closed."""
        with self._wakeup:
            while not self._closed:
                if not self._changed:
                    self._wakeup.wait()
                    continue
                quiet_in = self._last_change + self._debounce - time.monotonic()
                if quiet_in <= 0:
                    changed, self._changed = self._changed, set()
                    return changed
                self._wakeup.wait(quiet_in)
            return None

    def _run(self) -> None:
        while (changed := self._next_burst()) is not None:
            try:
                self._on_change(changed)
            except Exception:
                log.exception("handling a change to %s failed", ", ".join(map(str, changed)))


class _Events(FileSystemEventHandler):
    def __init__(self, notify: Callable[[Path], None]) -> None:
        self._notify = notify

    def on_any_event(self, event: FileSystemEvent) -> None:
        for path in (event.src_path, event.dest_path):
            if path:
                self._notify(Path(os.fsdecode(path)))
