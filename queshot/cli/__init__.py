"""The `queshot` command: argument parsing and output only; the work is in the
library. Each command is registered once; bench and demo are imported only
for their own commands."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from .. import admin, config, designdocs, sync
from ..couch import CouchError, Forbidden, safe_url
from ..jobs import LEASE_SECONDS, QueueError
from ..queue import Queue
from . import common, output, schedules, steering

log = logging.getLogger("queshot")


def cmd_worker(args: argparse.Namespace) -> int:
    from ..reload import load_handler

    if os.getcwd() not in sys.path:  # a console script does not put it there; handlers live here
        sys.path.insert(0, os.getcwd())
    from ..worker import Worker

    hooks = [load_handler(spec)() for spec in args.hook]
    if args.metrics_port is not None:
        from ..metrics import WorkerMetrics

        hooks.append(WorkerMetrics(args.metrics_port, args.metrics_host))
    with common.open_couch(args) as couch:
        db = common.database(args, couch)
        options = {
            "limit": args.limit,
            "autoremove": args.autoremove,
            "lease_seconds": args.lease_seconds,
        }
        queues = [Queue(common.queue_name(name), db, **options) for name in args.queue]
        worker = Worker(
            queues,
            args.handler,
            hooks=hooks,
            reload=args.reload,
            name=args.name,
            concurrency=args.concurrency,
            shutdown_grace=args.grace,
            poll_interval=args.poll_interval,
        )
        scheduler = None
        if args.schedules:
            from ..scheduler import Scheduler

            scheduler = Scheduler(db, name=worker.name)
            scheduler.start()
        try:
            worker.run()
        finally:
            if scheduler is not None:
                scheduler.stop()
    return 0


def cmd_metrics(args: argparse.Namespace) -> int:
    """Serve the database's queue metrics until interrupted."""
    from ..metrics import database_registry, serve

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with common.open_couch(args) as couch:
        db = common.database(args, couch)
        db.info()  # an unreachable server or a missing database says so now, not at a scrape
        serve(database_registry(db), args.port, args.host)
        stop.wait()
    return 0


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
    for name in ("delay", "run_at", "max_attempts", "timeout", "max_stalls"):
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
    print("\n".join(ids))
    return 0


def _print_result(result: sync.PushResult) -> None:
    print(result, flush=True)
    if result.diff:
        print(result.diff)


def cmd_push(args: argparse.Namespace) -> int:
    """Push the design docs (or watch and push on every save), then check the
    server setting the dashboard needs (see admin.dashboard_csp)."""
    databases = config.database_names(args.db)
    with common.open_couch(args) as couch:
        if args.watch:
            try:
                sync.watch(couch, databases, args.source, on_result=_print_result)
            except KeyboardInterrupt:
                log.info("stopped watching")
        else:
            bundle = designdocs.load(args.source)
            for result in sync.push(couch, databases, bundle, dry_run=args.dry_run):
                _print_result(result)
        message = admin.dashboard_csp(couch, enable=args.dashboard_csp and not args.dry_run)
        urls = [admin.dashboard_url(couch.database(name)) for name in databases]
        login = None if args.dry_run else admin.dashboard_login_note(couch.database(databases[0]))
    if message:
        print(message)
    if login:
        print(login)
    for url in urls:
        print(f"dashboard: {url}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .. import demo

    url = config.server_url(args.url)
    interactive = sys.stdout.isatty()
    last_print = 0.0

    def show(rows: list[Any]) -> None:
        nonlocal last_print
        line = "  ".join(
            f"{r.name} [{output.bar(r.done, r.total)}] {r.counts['complete']} ok "
            f"{r.counts['failed']} failed {r.counts['active']} running"
            for r in rows
        )
        if interactive:
            print("\r" + line, end="", flush=True)
        elif time.monotonic() - last_print >= 1 or all(r.done >= r.total for r in rows):
            print(line, flush=True)
            last_print = time.monotonic()

    print(f"queshot demo on {safe_url(url)} (database {demo.DATABASE})")
    rows = demo.run(url, show, concurrency=args.concurrency)
    if interactive:
        print()
    print(f"\n{'queue':<16}{'complete':>10}{'failed':>8}{'jobs/s':>9}")
    for row in rows:
        counts = row.counts
        print(f"{row.name:<16}{counts['complete']:>10}{counts['failed']:>8}{row.rate:>9.1f}")
    base = safe_url(url)
    print(
        f"\nThe failures are on purpose (bad addresses). Look at the jobs in Fauxton:\n"
        f"  {base}_utils/#database/{demo.DATABASE}/_all_docs\n"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="queshot", description="A job queue on CouchDB.")
    parser.add_argument("--version", action="version", version=f"queshot {_version()}")
    common.verbosity(parser, default=0)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    push = commands.add_parser("push", help="render and push design docs and _security")
    common.connection_options(push)
    push.add_argument("--source", help="design-doc folder (default: queshot's own)")
    mode = push.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true", help="show the diff, write nothing")
    mode.add_argument(
        "--watch", action="store_true", help="push again on every save until Ctrl-C (dev loop)"
    )
    push.add_argument(
        "--dashboard-csp",
        action="store_true",
        help="let the dashboard's script run on CouchDB 3: set the server-wide "
        f'[csp] attachments_header_value to "{admin.DASHBOARD_CSP}" (server admin)',
    )
    push.set_defaults(func=cmd_push)

    worker = commands.add_parser(
        "worker",
        help="run a worker: MODULE:CALLABLE handles each job, or MODULE's Tasks run them by name",
    )
    common.connection_options(worker)
    worker.add_argument("handler", metavar="MODULE[:CALLABLE]")
    worker.add_argument(
        "--queue",
        action="append",
        required=True,
        help="queue name, or a path like email/welcome; repeat for several, "
        "taken in the order given (the first while it has due jobs)",
    )
    worker.add_argument("--concurrency", type=int, default=1, help="jobs at once (default 1)")
    worker.add_argument("--name", help="worker name (default host-pid)")
    worker.add_argument(
        "--lease-seconds",
        type=float,
        default=LEASE_SECONDS,
        help=f"lease (default {LEASE_SECONDS:g})",
    )
    worker.add_argument("--limit", type=int, default=10, help="pending rows read per round")
    worker.add_argument("--autoremove", action="store_true", help="delete completed jobs")
    worker.add_argument("--grace", type=float, default=30.0, help="seconds to finish on SIGTERM")
    worker.add_argument("--poll-interval", type=float, default=5.0, help="fallback poll (s)")
    worker.add_argument("--reload", action="store_true", help="re-import the handler on change")
    worker.add_argument(
        "--hook",
        action="append",
        default=[],
        metavar="MODULE:FACTORY",
        help="a worker hook: FACTORY() gives a queshot.Hook (repeatable)",
    )
    worker.add_argument(
        "--metrics-port", type=int, help="serve Prometheus metrics at :PORT/metrics"
    )
    worker.add_argument(
        "--metrics-host", default="127.0.0.1", help="address for --metrics-port (127.0.0.1)"
    )
    worker.add_argument(
        "--schedules", action="store_true", help="also run a scheduler (queshot scheduler)"
    )
    worker.set_defaults(func=cmd_worker)

    metrics = commands.add_parser(
        "metrics", help="serve Prometheus metrics of a database's queues at :PORT/metrics"
    )
    common.connection_options(metrics)
    metrics.add_argument("--port", type=int, required=True, help="port to serve /metrics on")
    metrics.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    metrics.set_defaults(func=cmd_metrics)

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

    demo_cmd = commands.add_parser("demo", help="run the demo end to end (make demo)")
    demo_cmd.add_argument("--url", help="CouchDB URL (default: $COUCHDB_URL, else the dev server)")
    demo_cmd.add_argument("--concurrency", type=int, default=4, help="jobs at once per worker")
    demo_cmd.set_defaults(func=cmd_demo)
    steering.add_commands(commands)
    schedules.add_commands(commands)

    bench = commands.add_parser(
        "bench", help="measure throughput, latency and contention on a throwaway database"
    )
    bench.add_argument(
        "--url",
        help="CouchDB URL (default: $COUCHDB_URL, else a node started from $COUCHDB_BIN, "
        "else an embedded pouchdb-server)",
    )
    bench.add_argument(
        "--cluster", action="store_true", help="with $COUCHDB_BIN: a 3-node cluster, workers spread"
    )
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
    for command in commands.choices.values():
        common.verbosity(command)
    return parser


def _version() -> str:
    try:
        return metadata.version("queshot")
    except metadata.PackageNotFoundError:  # run from a checkout that is not installed
        return "(not installed)"


def cmd_bench(args: argparse.Namespace) -> int:
    from .. import bench

    settings = bench.BenchConfig(
        jobs=args.jobs,
        workers=args.workers,
        concurrency=args.concurrency,
        seconds=args.seconds,
        contention=tuple(int(n) for n in args.contention.split(",") if n.strip()),
        contention_jobs=args.contention_jobs,
        latency_jobs=args.latency_jobs,
        cluster=args.cluster,
    )
    results = bench.run(settings, args.url or os.environ.get("COUCHDB_URL"))
    print(bench.format_table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


# Libraries whose debug lines (every HTTP request, every file event) only -vv shows.
CHATTY_LOGGERS = ("httpx", "httpcore", "watchdog")


def _configure_logging(verbosity: int) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbosity else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if verbosity >= 2 else logging.WARNING)


def _output_closed() -> int:
    """stdout's reader went away (`queshot jobs | head`): stop quietly, as
    other Unix tools do, instead of a BrokenPipeError traceback at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 128 + 13  # killed by SIGPIPE, as the shell reports it


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _configure_logging(args.verbose)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        status = func(args)
        sys.stdout.flush()
        return status
    except BrokenPipeError:
        return _output_closed()
    except Forbidden as exc:  # validate_doc_update's reason is the whole story
        print(f"queshot: error: refused: {exc.reason}", file=sys.stderr)
        return 1
    except (CouchError, designdocs.DesignDocError, QueueError, ValueError, RuntimeError) as exc:
        print(f"queshot: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
