"""The `queshot` command: argument parsing and output only; the work is in the
library. Each command is registered once; bench and demo are imported only
for their own commands."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import config, dashboard, designdocs, sync
from ..couch import CouchError, Forbidden, safe_url
from ..jobs import QueueError, queshot_version
from . import (
    acting,
    common,
    enqueue,
    limits,
    output,
    replicating,
    retention,
    running,
    schedules,
    steering,
)

log = logging.getLogger("queshot")


def _print_result(result: sync.PushResult) -> None:
    print(result, flush=True)
    if result.diff:
        print(result.diff)


def cmd_push(args: argparse.Namespace) -> int:
    """Push the design docs (or watch and push on every save), then check the
    server setting the dashboard needs (see dashboard.dashboard_csp)."""
    databases = config.database_names(args.db)
    with common.open_couch(args) as couch:
        if args.watch:
            try:
                sync.watch(
                    couch,
                    databases,
                    args.source,
                    on_result=_print_result,
                    dashboard_db=args.dashboard_db,
                )
            except KeyboardInterrupt:
                log.info("stopped watching")
        else:
            bundle = designdocs.load(args.source)
            pushed = sync.push(
                couch, databases, bundle, dry_run=args.dry_run, dashboard_db=args.dashboard_db
            )
            for result in pushed:
                _print_result(result)
        message = dashboard.dashboard_csp(couch, enable=args.dashboard_csp and not args.dry_run)
        if args.dashboard_db:  # a public page with its own login form: nothing to do first
            app_db = couch.database(args.dashboard_db)
            urls = [dashboard.public_dashboard_url(app_db, name) for name in databases]
            login = None
        else:
            urls = [dashboard.dashboard_url(couch.database(name)) for name in databases]
            login = (
                None
                if args.dry_run
                else dashboard.dashboard_login_note(couch.database(databases[0]))
            )
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
    parser.add_argument("--version", action="version", version=f"queshot {queshot_version()}")
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
        f'[csp] attachments_header_value to "{dashboard.DASHBOARD_CSP}" (server admin)',
    )
    push.add_argument(
        "--dashboard-db",
        metavar="NAME",
        help="also serve the dashboard from public database NAME (created if missing; code "
        "only, anyone may read it), so a browser without a session gets the page and its "
        "login form instead of CouchDB's 401",
    )
    push.set_defaults(func=cmd_push)
    running.add_commands(commands)
    enqueue.add_commands(commands)

    demo_cmd = commands.add_parser("demo", help="run the demo end to end (make demo)")
    demo_cmd.add_argument("--url", help="CouchDB URL (default: $COUCHDB_URL, else the dev server)")
    demo_cmd.add_argument("--concurrency", type=int, default=4, help="jobs at once per worker")
    demo_cmd.set_defaults(func=cmd_demo)
    steering.add_commands(commands)
    acting.add_commands(commands)
    schedules.add_commands(commands)
    retention.add_commands(commands)
    limits.add_commands(commands)
    replicating.add_commands(commands)

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
    bench.add_argument(
        "--small-backlog", type=int, default=2_000, help="waiting jobs of the fresh database"
    )
    bench.add_argument(
        "--large-backlog", type=int, default=20_000, help="waiting jobs set against it"
    )
    bench.add_argument(
        "--history", type=int, default=40_000, help="removed jobs of the database that ran them"
    )
    bench.add_argument(
        "--listeners",
        type=_listener_counts,
        default=(8, 32),
        metavar="FEW,MANY",
        help="idle listeners beside the drain (8,32); empty to leave them out",
    )
    bench.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    bench.set_defaults(func=cmd_bench)
    for command in commands.choices.values():
        common.verbosity(command)
    return parser


def _listener_counts(text: str) -> tuple[int, ...]:
    """`--listeners`: two counts, few then many (the bench's rows use both), or none."""
    try:
        counts = tuple(int(n) for n in text.split(",") if n.strip())
    except ValueError:
        counts = (0,)
    if counts and (len(counts) != 2 or min(counts) < 1):
        raise argparse.ArgumentTypeError(f"{text!r}: two positive counts, as 8,32 (or empty)")
    return counts


def worker_takes(flag: str) -> bool:
    """Whether `queshot worker` takes the switch `flag`, asked of its own
    parser: the bench runs the rows a worker option allows where it exists."""
    _, unknown = build_parser().parse_known_args(["worker", "module", "--queue", "q", flag])
    return flag not in unknown


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
        small_backlog=args.small_backlog,
        large_backlog=args.large_backlog,
        history=args.history,
        listeners=args.listeners,
        share_feed=worker_takes("--share-feed"),
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
    for stream in (sys.stdout, sys.stderr):  # a terminal that is not UTF-8 gets escapes
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    _configure_logging(args.verbose)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        status = func(args)
        sys.stdout.flush()
        return status
    except BrokenPipeError:
        return _output_closed()
    except Forbidden as exc:  # validate_doc_update's reason is the whole story
        print(f"queshot: error: refused: {output.escape_lines(exc.reason)}", file=sys.stderr)
        return 1
    except (CouchError, designdocs.DesignDocError, QueueError, ValueError, RuntimeError) as exc:
        print(f"queshot: error: {output.escape_lines(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
