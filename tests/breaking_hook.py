"""A hook for `queshot worker --hook breaking_hook:DispatchBreaker` in tests:
it breaks the worker's claim rounds (each raises), as a bug would, so that a
test can see the worker stop rather than linger alive and deaf."""

from __future__ import annotations

from typing import Any

from queshot import Hook


class DispatchBreaker(Hook):
    def on_start(self, worker: Any) -> None:
        def broken(free: int) -> Any:
            raise RuntimeError("a bug in the claim round")

        worker.picker.next_round = broken
