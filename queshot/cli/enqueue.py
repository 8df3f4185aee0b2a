"""`queshot enqueue`: one job from JSON on the command line, a task call by
name, or many from a JSON-lines file (one `_bulk_docs` round trip per
chunk)."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from . import common, output


def add_commands(commands: Any) -> None:
    """enqueue."""
    enqueue = commands.add_parser("enqueue", help="add a job (JSON) or many (--file jobs.jsonl)")
    common.connection_options(enqueue)
    enqueue.add_argument("queue", help="queue name, or a path like email/welcome")
    enqueue.add_argument("data", nargs="?", help="the job's data as JSON")
    enqueue.add_argument("--file", help="JSON lines, one job's data per line ('-' for stdin)")
    enqueue.add_argument("--id", help="job id (unique jobs: a second enqueue is refused)")
    enqueue.add_argument("--priority", type=int, default=0, help="higher runs first")
    enqueue.add_argument("--delay", type=float, help="seconds before it may run")
    enqueue.add_argument(
        "--run-at", type=run_at, help="not before then: epoch seconds, or a local ISO time"
    )
    enqueue.add_argument("--max-attempts", type=int, help="attempts before it fails for good")
    enqueue.add_argument("--timeout", type=float, help="seconds a run may take")
    enqueue.add_argument(
        "--max-stalls", type=int, help="times it may be taken back from a dead worker, unused"
    )
    enqueue.add_argument("--limit-key", help="the key its queue's per-key limits count it by")
    enqueue.add_argument(
        "--backoff",
        type=float,
        help="seconds before the first retry, doubled for each next one (default 2)",
    )
    enqueue.add_argument("--task", help="the task that runs it, by name (a worker of tasks)")
    enqueue.add_argument("--args", help="with --task: its positional arguments, a JSON array")
    enqueue.add_argument("--kwargs", help="with --task: its keyword arguments, a JSON object")
    enqueue.add_argument(
        "--depends-on",
        action="append",
        default=[],
        metavar="ID",
        help="a job it waits for (repeatable): blocked until they complete",
    )
    enqueue.add_argument(
        "--on-dependency-failure",
        choices=("fail", "run"),
        default="fail",
        help="if a job it waits for fails: fail too (default), or run anyway",
    )
    enqueue.set_defaults(func=cmd_enqueue)


def _read_jobs(path: str) -> list[Any]:
    jobs = []
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path} is not UTF-8 text: {exc.reason}") from None
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                jobs.append(json.loads(line))
            except ValueError as exc:
                raise ValueError(f"{path}:{number}: not JSON: {exc}") from None
    return jobs


def run_at(text: str) -> float:
    """`--run-at`: epoch seconds (as `run_at=` in the API), or a local ISO time."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a time: {text!r} (epoch seconds, or e.g. 2030-01-31T09:00)"
        ) from None


def cmd_enqueue(args: argparse.Namespace) -> int:
    if args.task is None and (args.args is not None or args.kwargs is not None):
        raise ValueError("--args and --kwargs go with --task")
    if args.task is None and (args.data is None) == (args.file is None):
        raise ValueError("give the job data as JSON, or --file jobs.jsonl (one JSON per line)")
    if args.task is not None and args.file is not None:
        raise ValueError("--task enqueues one job: no --file")
    if args.delay is not None and args.run_at is not None:
        raise ValueError("give --delay or --run-at, not both")
    options: dict[str, Any] = {"priority": args.priority}
    for name in ("delay", "run_at", "max_attempts", "timeout", "max_stalls", "limit_key"):
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    if args.depends_on:
        options.update(depends_on=args.depends_on, on_dependency_failure=args.on_dependency_failure)
    if args.task is not None:
        options.update(
            task=args.task,
            args=common.json_option(args.args, "--args", list) or [],
            kwargs=common.json_option(args.kwargs, "--kwargs", dict) or {},
        )
    with common.open_couch(args) as couch:
        queue = common.queue(args, couch, backoff_seconds=args.backoff)
        if args.file is not None:
            ids = queue.create_jobs(_read_jobs(args.file), **options)
        else:
            data = None
            if args.data is not None:
                try:
                    data = json.loads(args.data)
                except ValueError as exc:
                    raise ValueError(f"job data is not JSON: {exc}") from None
            ids = [queue.create_job(data, id=args.id, **options)]
    print("\n".join(map(output.escape, ids)))
    return 0
