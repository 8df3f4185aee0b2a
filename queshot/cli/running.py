"""Long-running commands: `queshot worker` (a worker, optionally with a
scheduler beside it) and `queshot metrics` (a database's queues for
Prometheus). Each imports what it runs only when it runs."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from typing import Any

from ..jobs import LEASE_SECONDS
from ..queue import Queue
from . import common


def add_commands(commands: Any) -> None:
    """worker, metrics."""
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
    worker.add_argument(
        "--concurrency",
        type=int,
        help="jobs at once (default 1; with --processes, the number of processes)",
    )
    worker.add_argument(
        "--processes",
        type=int,
        help="run handlers in N child processes, one job each at a time (default: threads)",
    )
    worker.add_argument(
        "--max-jobs-per-child", type=int, help="replace a child process after K jobs"
    )
    worker.add_argument(
        "--max-memory-per-child",
        type=float,
        metavar="MB",
        help="replace a child process once its peak memory passes MB",
    )
    worker.add_argument(
        "--share-feed",
        action="store_true",
        help="share one _changes feed with this host's other --share-feed workers "
        "on the same server, database and user (one listener for the server, not one each)",
    )
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
    worker.add_argument(
        "--poll-interval",
        type=float,
        default=5.0,
        help="idle re-read of the queues (s); up to 8x that apart while the feed is live",
    )
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
            processes=args.processes,
            max_jobs_per_child=args.max_jobs_per_child,
            max_memory_per_child=args.max_memory_per_child,
            shutdown_grace=args.grace,
            poll_interval=args.poll_interval,
            share_feed=args.share_feed,
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
