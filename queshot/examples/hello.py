"""The handler `make dev` runs. Change the greeting, save, and enqueue a job:
`queshot enqueue dev '{"name": "Ada"}'` - the worker reloads this module."""

from __future__ import annotations

from typing import Any


def handle(job: Any) -> dict[str, str]:
    greeting = f"Hello, {job.data.get('name', 'world')}!"
    job.log(greeting)
    return {"greeting": greeting}
