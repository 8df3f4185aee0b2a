"""The `queshot` command: argument parsing and output only; the work is in the library."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import config, designdocs
from .couch import Couch, CouchError
from .queue import Queue, QueueError

log = logging.getLogger("queshot")


def _connection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="CouchDB URL (default: $COUCHDB_URL, else the dev server)")
    parser.add_argument(
        "--db",
        action="append",
        help="database (repeatable or comma-separated; default: $QUESHOT_DB or 'queshot')",
    )


def _couch(args: argparse.Namespace) -> Couch:
    return Couch(config.server_url(args.url))


def queue_name(text: str) -> str | list[str]:
    """`email` is the queue "email"; `email/welcome` the path ["email", "welcome"]."""
    parts = [p for p in text.split("/") if p]
    if not parts:
        raise ValueError(f"invalid queue name {text!r}")
    return parts[0] if len(parts) == 1 else parts


def _queue(args: argparse.Namespace, couch: Couch, **options: Any) -> Queue:
    databases = config.database_names(args.db)
    if len(databases) != 1:
        raise ValueError("this command works on one database: give a single --db")
    return Queue(queue_name(args.queue), couch.database(databases[0]), **options)


def load_handler(spec: str) -> Any:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"handler {spec!r} must look like package.module:function")
    module = importlib.import_module(module_name)
    return getattr(module, attr)


def cmd_worker(args: argparse.Namespace) -> int:
    handler = load_handler(args.handler)
    with _couch(args) as couch:
        queue = _queue(
            args,
            couch,
            limit=args.limit,
            autoremove=args.autoremove,
            lease_seconds=args.lease_seconds,
        )
        worker = queue.create_worker(
            handler,
            name=args.name,
            concurrency=args.concurrency,
            shutdown_grace=args.grace,
            poll_interval=args.poll_interval,
        )
        worker.run()
    return 0


def _read_jobs(path: str) -> list[Any]:
    jobs = []
    text = sys.stdin.read() if path == "-" else Path(path).read_text()
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                jobs.append(json.loads(line))
            except ValueError as exc:
                raise ValueError(f"{path}:{number}: not JSON: {exc}") from None
    return jobs


def cmd_enqueue(args: argparse.Namespace) -> int:
    if (args.data is None) == (args.file is None):
        raise ValueError("give the job data as JSON, or --file jobs.jsonl (one JSON per line)")
    options: dict[str, Any] = {"priority": args.priority}
    for name in ("delay", "max_attempts", "timeout"):
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    with _couch(args) as couch:
        queue = _queue(args, couch)
        if args.file is not None:
            ids = queue.create_jobs(_read_jobs(args.file), **options)
        else:
            try:
                data = json.loads(args.data)
            except ValueError as exc:
                raise ValueError(f"job data is not JSON: {exc}") from None
            ids = [queue.create_job(data, id=args.id, **options)]
    print("\n".join(ids))
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    bundle = designdocs.load(args.source)
    with _couch(args) as couch:
        results = designdocs.push(
            couch, config.database_names(args.db), bundle, dry_run=args.dry_run
        )
    for result in results:
        print(result)
        if result.diff:
            print(result.diff)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="queshot", description="A job queue on CouchDB.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    push = commands.add_parser("push", help="render and push design docs and _security")
    _connection_options(push)
    push.add_argument("--source", help="design-doc folder (default: queshot's own)")
    push.add_argument("--dry-run", action="store_true", help="show the diff, write nothing")
    push.set_defaults(func=cmd_push)

    worker = commands.add_parser("worker", help="run a worker: MODULE:CALLABLE handles each job")
    _connection_options(worker)
    worker.add_argument("handler", metavar="MODULE:CALLABLE")
    worker.add_argument("--queue", required=True, help="queue name, or a path like email/welcome")
    worker.add_argument("--concurrency", type=int, default=1, help="jobs at once (default 1)")
    worker.add_argument("--name", help="worker name (default host-pid)")
    worker.add_argument("--lease-seconds", type=float, default=60.0, help="lease (default 60)")
    worker.add_argument("--limit", type=int, default=10, help="pending rows read per round")
    worker.add_argument("--autoremove", action="store_true", help="delete completed jobs")
    worker.add_argument("--grace", type=float, default=30.0, help="seconds to finish on SIGTERM")
    worker.add_argument("--poll-interval", type=float, default=5.0, help="fallback poll (s)")
    worker.set_defaults(func=cmd_worker)

    enqueue = commands.add_parser("enqueue", help="add a job (JSON) or many (--file jobs.jsonl)")
    _connection_options(enqueue)
    enqueue.add_argument("queue", help="queue name, or a path like email/welcome")
    enqueue.add_argument("data", nargs="?", help="the job's data as JSON")
    enqueue.add_argument("--file", help="JSON lines, one job's data per line ('-' for stdin)")
    enqueue.add_argument("--id", help="job id (unique jobs: a second enqueue is refused)")
    enqueue.add_argument("--priority", type=int, default=0, help="higher runs first")
    enqueue.add_argument("--delay", type=float, help="seconds before it may run")
    enqueue.add_argument("--max-attempts", type=int, help="attempts before it fails for good")
    enqueue.add_argument("--timeout", type=float, help="seconds a run may take")
    enqueue.set_defaults(func=cmd_enqueue)

    bench = commands.add_parser(
        "bench", help="measure throughput, latency and contention on a throwaway database"
    )
    bench.add_argument("--url", help="CouchDB URL (default: $COUCHDB_URL, else embedded)")
    bench.add_argument("--jobs", type=int, default=10_000, help="jobs per bulk run")
    bench.add_argument("--workers", type=int, default=4, help="worker processes")
    bench.add_argument("--concurrency", type=int, default=4, help="jobs at once per worker")
    bench.add_argument("--seconds", type=float, default=10.0, help="length of timed runs")
    bench.add_argument(
        "--contention", default="1,2,4,8", help="worker counts for claims per job (1,2,4,8)"
    )
    bench.add_argument("--contention-jobs", type=int, default=500, help="jobs per such run")
    bench.add_argument("--latency-jobs", type=int, default=100, help="jobs sent one at a time")
    bench.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    bench.set_defaults(func=cmd_bench)
    return parser


def cmd_bench(args: argparse.Namespace) -> int:
    from . import bench

    config = bench.BenchConfig(
        jobs=args.jobs,
        workers=args.workers,
        concurrency=args.concurrency,
        seconds=args.seconds,
        contention=tuple(int(n) for n in args.contention.split(",") if n.strip()),
        contention_jobs=args.contention_jobs,
        latency_jobs=args.latency_jobs,
    )
    results = bench.run(config, args.url or os.environ.get("COUCHDB_URL"))
    print(bench.format_table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except (CouchError, designdocs.DesignDocError, QueueError, ValueError, RuntimeError) as exc:
        print(f"queshot: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
