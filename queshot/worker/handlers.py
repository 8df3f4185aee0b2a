"""Where a worker gets the handler it runs for each job: one callable for
good, or (dev mode) the current version of a module re-imported on change."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from ..reload import ReloadingHandler, load_handler

if TYPE_CHECKING:
    from .job import Job


class HandlerSource(Protocol):
    """`get()` the handler for the next job; `start()` / `close()` any watching;
    `reloads` counts the code changes taken (child processes started before
    the last one are replaced)."""

    reloads: int

    def get(self) -> Callable[..., Any]: ...

    def start(self) -> None: ...

    def close(self) -> None: ...


class Execution(Protocol):
    """Where handlers run: `run(job)` returns the handler's result or raises
    what it raised; `start()` before the first job, `close()` at the end."""

    def run(self, job: Job) -> Any: ...

    def start(self) -> None: ...

    def close(self) -> None: ...


class StaticHandler:
    reloads = 0

    def __init__(self, handler: Callable[..., Any]) -> None:
        self._handler = handler

    def get(self) -> Callable[..., Any]:
        return self._handler

    def start(self) -> None:
        pass

    def close(self) -> None:
        pass


def handler_source(handler: Callable[..., Any] | str, reload: bool) -> HandlerSource:
    """A handler given as a callable or as "package.module:callable"; with
    `reload`, its module (and the project modules it imports) are re-imported
    on change: running jobs keep the code they started with."""
    if not reload:
        return StaticHandler(load_handler(handler) if isinstance(handler, str) else handler)
    if not isinstance(handler, str):
        handler = f"{handler.__module__}:{handler.__qualname__}"
    return ReloadingHandler(handler)
