"""Workflows on top of dependencies: `chain` (each step waits for the one
before) and `fan_in` (one step waits for a group), from steps described with
`Queue.step(task, *args, **kwargs)` and enqueued here. A step's task sees
the results of the jobs it waited for as `current_job().dependency_results`
(job id -> result); `previous_result()` is the one result of a chain's
previous step."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .tasks import current_job

if TYPE_CHECKING:
    from .queue import Queue
    from .results import JobHandle


@dataclass(frozen=True)
class Step:
    """A task call not yet enqueued: `queue.step(send_email, "ada@…", priority=5)`."""

    queue: Queue
    task: Callable[..., Any] | str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)

    def enqueue(self, *, after: Sequence[JobHandle] = ()) -> JobHandle:
        """Enqueue the call, waiting for `after` (and any depends_on of its own)."""
        waits = [*self.options.get("depends_on", ()), *after]
        options = {**self.options, "depends_on": waits}
        return self.queue.enqueue_call(self.task, args=self.args, kwargs=self.kwargs, **options)


def chain(*steps: Step) -> list[JobHandle]:
    """Enqueue steps that run one after another; their handles, in order
    (wait on the last for the chain's result)."""
    handles: list[JobHandle] = []
    for step in steps:
        handles.append(step.enqueue(after=handles[-1:]))
    return handles


def fan_in(group: Sequence[Step], then: Step) -> tuple[list[JobHandle], JobHandle]:
    """Enqueue a group of steps that run side by side and one step that runs
    once every one of them has completed; (the group's handles, its handle)."""
    handles = [step.enqueue() for step in group]
    return handles, then.enqueue(after=handles)


def previous_result() -> Any:
    """Inside a task: the result of the one job it waited for (a chain's
    previous step). LookupError if it waited for none or for several."""
    results = current_job().dependency_results
    if len(results) != 1:
        raise LookupError(
            f"previous_result() needs exactly one dependency (this job has {len(results)})"
        )
    return next(iter(results.values()))
