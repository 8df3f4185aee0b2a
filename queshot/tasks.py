"""Tasks by name: a job names what runs it (`"task": "send_email"`, with
`args` and `kwargs`), and a worker started on a module of tasks dispatches
each job to the function registered under that name (Huey/Celery style).

    tasks = Tasks()

    @tasks.task
    def send_email(to, subject=""): ...

    @tasks.task(name="thumbnails.resize")
    async def resize(url, width=200): ...

A task is registered under its name and under "module:function", the form
`queue.enqueue(send_email, ...)` stores for a function passed by reference.
A worker runs only registered tasks: a job document (which any producer
may write) never makes it import and call an arbitrary function. Inside a
task, `current_job()` is the running job (progress, log, cancel checks).
No other queshot module is imported here: producers use it too.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from types import ModuleType
from typing import Any, overload

_CURRENT_JOB: contextvars.ContextVar[Any] = contextvars.ContextVar("queshot_job")


class UnknownTask(LookupError):
    """A job names a task that this worker does not have."""


def current_job() -> Any:
    """The job the calling task runs for (a `queshot.worker.Job`); in sync
    and async tasks alike. LookupError outside a job."""
    try:
        return _CURRENT_JOB.get()
    except LookupError:
        raise LookupError("current_job() is only available inside a running job") from None


def running_as(job: Any) -> contextvars.Token:
    """Make `job` the current job of this thread or asyncio task (the worker's part)."""
    return _CURRENT_JOB.set(job)


def reference_name(function: Callable[..., Any]) -> str:
    """The name a function passed by reference is enqueued under: its task
    name if it is a registered task, else "module:qualname"."""
    name = getattr(function, "task_name", None)
    if isinstance(name, str):
        return name
    return f"{function.__module__}:{function.__qualname__}"


class Tasks:
    """A registry of task functions; calling it with a job runs the job's
    task (a worker handler, like a single function)."""

    def __init__(self) -> None:
        self._by_name: dict[str, Callable[..., Any]] = {}

    def __repr__(self) -> str:
        return f"Tasks({sorted(self.names())})"

    @overload
    def task(self, function: Callable[..., Any]) -> Callable[..., Any]: ...

    @overload
    def task(
        self, function: None = None, *, name: str | None = None
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]: ...

    def task(self, function: Callable[..., Any] | None = None, *, name: str | None = None) -> Any:
        """Register a function (sync or `async def`) as a task, under `name`
        (default: its own name) and under "module:qualname". The function
        itself is returned unchanged, so it can still be called directly."""

        def register(fn: Callable[..., Any]) -> Callable[..., Any]:
            full = f"{fn.__module__}:{fn.__qualname__}"
            own = name or fn.__name__
            for key in {own, full}:
                other = self._by_name.get(key)
                if other is not None and reference_name(other) != own:
                    taken = reference_name(other)
                    raise ValueError(f"task name {key!r} is already taken by {taken}")
                self._by_name[key] = fn
            fn.task_name = own  # type: ignore[attr-defined]
            return fn

        return register(function) if function is not None else register

    def names(self) -> set[str]:
        """The names jobs may use, short and "module:qualname"."""
        return set(self._by_name)

    def get(self, name: str) -> Callable[..., Any]:
        try:
            return self._by_name[name]
        except KeyError:
            known = ", ".join(sorted(n for n in self._by_name if ":" not in n)) or "none"
            raise UnknownTask(
                f"task {name!r} is not registered with this worker (its tasks: {known})"
            ) from None

    def __call__(self, job: Any) -> Any:
        """Run the job's task with its args and kwargs; a job that names no
        task (the seed's shape) is refused with that reason."""
        doc = job.doc
        name = doc.get("task")
        if not isinstance(name, str) or not name:
            raise UnknownTask("this job names no 'task', and this worker runs tasks by name")
        return self.get(name)(*(doc.get("args") or []), **(doc.get("kwargs") or {}))


def find_tasks(module: ModuleType) -> Tasks:
    """The one Tasks registry a module defines (`queshot worker myapp.tasks`)."""
    found = [value for value in vars(module).values() if isinstance(value, Tasks)]
    if len(found) != 1:
        what = "no Tasks registry" if not found else f"{len(found)} Tasks registries"
        raise LookupError(
            f"module {module.__name__} has {what}: name one as module:attribute, "
            "or a handler function as module:function"
        )
    return found[0]
