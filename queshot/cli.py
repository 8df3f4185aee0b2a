"""The `queshot` command: argument parsing and output only; the work is in the library."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from . import admin, bench, config, demo, designdocs
from .couch import Couch, CouchError, Database, safe_url
from .queue import STATES, Queue, QueueError, now_ms

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


def _database(args: argparse.Namespace, couch: Couch) -> Database:
    databases = config.database_names(args.db)
    if len(databases) != 1:
        raise ValueError("this command works on one database: give a single --db")
    return couch.database(databases[0])


def _queue(args: argparse.Namespace, couch: Couch, **options: Any) -> Queue:
    return Queue(queue_name(args.queue), _database(args, couch), **options)


def cmd_worker(args: argparse.Namespace) -> int:
    if os.getcwd() not in sys.path:  # a console script does not put it there; handlers live here
        sys.path.insert(0, os.getcwd())
    with _couch(args) as couch:
        queue = _queue(
            args,
            couch,
            limit=args.limit,
            autoremove=args.autoremove,
            lease_seconds=args.lease_seconds,
        )
        worker = queue.create_worker(
            args.handler,
            reload=args.reload,
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


def _stalls_text(doc: dict[str, Any]) -> str:
    """How often the job was taken back from a worker that stopped renewing its lease."""
    limit = doc.get("max_stalls")
    return f"{doc.get('stalls') or 0}" + ("" if limit is None else f" of {limit} allowed")


def cmd_enqueue(args: argparse.Namespace) -> int:
    if (args.data is None) == (args.file is None):
        raise ValueError("give the job data as JSON, or --file jobs.jsonl (one JSON per line)")
    options: dict[str, Any] = {"priority": args.priority}
    for name in ("delay", "max_attempts", "timeout", "max_stalls"):
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


def _print_result(result: designdocs.PushResult) -> None:
    print(result, flush=True)
    if result.diff:
        print(result.diff)


def cmd_push(args: argparse.Namespace) -> int:
    databases = config.database_names(args.db)
    if args.watch:
        with _couch(args) as couch:
            try:
                designdocs.watch(couch, databases, args.source, on_result=_print_result)
            except KeyboardInterrupt:
                log.info("stopped watching")
        return 0
    bundle = designdocs.load(args.source)
    with _couch(args) as couch:
        results = designdocs.push(couch, databases, bundle, dry_run=args.dry_run)
    for result in results:
        _print_result(result)
    return 0


def _bar(done: int, total: int, width: int = 20) -> str:
    filled = width * done // total if total else width
    return "#" * filled + "." * (width - filled)


def cmd_demo(args: argparse.Namespace) -> int:
    url = config.server_url(args.url)
    interactive = sys.stdout.isatty()
    last_print = 0.0

    def show(rows: list[demo.QueueProgress]) -> None:
        nonlocal last_print
        line = "  ".join(
            f"{r.name} [{_bar(r.done, r.total)}] {r.counts['complete']} ok "
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


# -- watching and steering jobs: stats, jobs, show, requeue, clean, workers ------------


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=lambda o: o.__dict__))


def _age(ms: float) -> str:
    """A duration for humans: 45s, 12m 5s, 3h 20m, 2d 4h."""
    seconds = int(max(0, ms) // 1000)
    for big, big_size, small, small_size in (
        ("d", 86400, "h", 3600),
        ("h", 3600, "m", 60),
        ("m", 60, "s", 1),
    ):
        if seconds >= big_size:
            rest = seconds % big_size // small_size
            return f"{seconds // big_size}{big}" + (f" {rest}{small}" if rest else "")
    return f"{seconds}s"


def _when(ms: Any) -> str:
    if not isinstance(ms, int | float):
        return "-"
    stamp = datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S")
    delta = ms - now_ms()
    return f"{stamp} (in {_age(delta)})" if delta > 0 else f"{stamp} ({_age(-delta)} ago)"


def _queue_text(queues: Any) -> str:
    return "/".join(map(str, queues)) if isinstance(queues, list) else str(queues)


def _json_or_nothing(args: argparse.Namespace, result: Any, *, empty: bool, nothing: str) -> bool:
    """Print `result` as JSON (--json), or `nothing` when there is nothing to
    list; whether it did, i.e. the command's output is complete."""
    if args.json:
        _print_json(result)
    elif empty:
        print(nothing)
    else:
        return False
    return True


def _table(headers: list[str], rows: list[list[Any]]) -> None:
    cells = [headers, *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def cmd_stats(args: argparse.Namespace) -> int:
    with _couch(args) as couch:
        result = admin.stats(_database(args, couch))
    if _json_or_nothing(args, result, empty=not result.queues, nothing="no jobs"):
        return 0
    now = now_ms()

    def waiting(since: int | None) -> str:
        return "-" if since is None else _age(now - since)

    rows = [
        [
            _queue_text(q.queue),
            *(q.counts[s] for s in STATES),
            q.total,
            waiting(q.oldest_waiting_since),
        ]
        for q in result.queues
    ]
    rows.append(
        [
            "total",
            *(result.totals[s] for s in STATES),
            result.total,
            waiting(result.oldest_waiting_since),
        ]
    )
    _table(["QUEUE", *(s.upper() for s in STATES), "TOTAL", "OLDEST WAITING"], rows)
    return 0


def cmd_jobs(args: argparse.Namespace) -> int:
    with _couch(args) as couch:
        jobs = admin.list_jobs(
            _database(args, couch),
            queue=queue_name(args.queue) if args.queue else None,
            state=args.state,
            limit=args.limit,
            newest_first=args.newest,
        )
    if _json_or_nothing(args, jobs, empty=not jobs, nothing="no jobs"):
        return 0
    now = now_ms()
    rows = [
        [
            job.id,
            job.state,
            _queue_text(job.queues),
            _age(now - job.since),
            job.priority,
            f"{job.attempts}/{job.max_attempts or '-'}",
            "-" if job.progress is None else f"{job.progress:g}%",
            (job.error or "")[:60] if job.state != "active" else job.worker_id,
        ]
        for job in jobs
    ]
    _table(["ID", "STATE", "QUEUE", "FOR", "PRI", "ATTEMPTS", "PROGRESS", "WORKER/ERROR"], rows)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    with _couch(args) as couch:
        doc = admin.get_job(_database(args, couch), args.id)
    if args.json:
        _print_json(doc)
        return 0
    print(f"job {doc['_id']} (rev {doc.get('_rev')})")
    state = doc.get("state")
    since = {"active": "claimed_at", "complete": "completed_at", "failed": "failed_at"}
    fields = [
        ("queue", _queue_text(doc.get("queues"))),
        ("state", f"{state}, since {_when(doc.get(since.get(state, 'created_at')))}"),
        ("priority", doc.get("priority", 0)),
        ("attempts", f"{doc.get('attempts', 0)} of {doc.get('max_attempts', '-')}"),
        ("stalls", _stalls_text(doc)),
        ("progress", f"{doc.get('progress') or 0}%"),
        ("worker", doc.get("worker_id") or "-"),
        ("lease until", _when(doc.get("lease_expires_at"))),
        ("run at", _when(doc.get("run_at"))),
        ("created", _when(doc.get("created_at"))),
    ]
    for name, value in fields:
        print(f"  {name:<12} {value}")
    print("data:")
    print("  " + json.dumps(doc.get("data"), indent=2).replace("\n", "\n  "))
    lines = doc.get("log") or []
    print(f"log ({len(lines)} lines):" if lines else "log: empty")
    for line in lines:
        if isinstance(line, dict):
            stamp = datetime.fromtimestamp(line.get("at", 0) / 1000).strftime("%H:%M:%S")
            print(f"  {stamp}  {line.get('msg')}")
        else:
            print(f"  {line}")
    error = doc.get("error")
    if isinstance(error, dict):
        print(f"last error (attempt {error.get('attempt', '?')}, {error.get('type', 'Error')}):")
        print(f"  {error.get('message')}")
        if error.get("traceback"):
            print("  " + error["traceback"].rstrip().replace("\n", "\n  "))
    return 0


def _report(outcomes: list[admin.Outcome], done: str, args: argparse.Namespace) -> int:
    """Print what a bulk command did; exit status 1 if any job was not done."""
    failed = [o for o in outcomes if not o.ok]
    if args.json:
        _print_json({done: sum(o.ok for o in outcomes), "not_" + done: failed})
    else:
        print(f"{done} {len(outcomes) - len(failed)} job(s)")
        for outcome in failed:
            print(f"  {outcome.id}: not {done}: {outcome.detail}")
    return 1 if failed else 0


def cmd_requeue(args: argparse.Namespace) -> int:
    if bool(args.ids) == args.failed:
        raise ValueError("give job ids, or --failed (optionally with --queue)")
    if args.queue and not args.failed:
        raise ValueError("--queue goes with --failed")
    with _couch(args) as couch:
        db = _database(args, couch)
        if args.failed:
            queue = queue_name(args.queue) if args.queue else None
            outcomes = admin.requeue_failed(db, queue=queue)
        else:
            outcomes = admin.requeue(db, args.ids)
    return _report(outcomes, "requeued", args)


def cmd_clean(args: argparse.Namespace) -> int:
    with _couch(args) as couch:
        outcomes = admin.clean(
            _database(args, couch),
            state=args.state,
            older_than=admin.parse_duration(args.older_than),
            queue=queue_name(args.queue) if args.queue else None,
        )
    return _report(outcomes, "deleted", args)


def cmd_workers(args: argparse.Namespace) -> int:
    with _couch(args) as couch:
        found = admin.workers(_database(args, couch))
    if _json_or_nothing(args, found, empty=not found, nothing="no workers"):
        return 0
    now = now_ms()
    rows = [
        [
            w.name,
            w.host or "-",
            w.pid or "-",
            _queue_text(w.queues),
            f"{len(w.jobs)}/{w.concurrency or '-'}",
            f"{_age(now - w.last_seen)} ago",
            "GONE" if w.gone else ("paused" if w.paused else "alive"),
        ]
        for w in found
    ]
    _table(["NAME", "HOST", "PID", "QUEUE", "JOBS", "LAST SEEN", "STATUS"], rows)
    return 0


def cmd_push_checking_dashboard(args: argparse.Namespace) -> int:
    """`queshot push`, then the server setting the dashboard needs (see admin.dashboard_csp)."""
    status = cmd_push(args)
    with _couch(args) as couch:
        message = admin.dashboard_csp(couch, enable=args.dashboard_csp and not args.dry_run)
        urls = [admin.dashboard_url(couch.database(n)) for n in config.database_names(args.db)]
    if message:
        print(message)
    for url in urls:
        print(f"dashboard: {url}")
    return status


def _add_admin_commands(commands: Any) -> None:
    """Watching and steering jobs (issue #6)."""

    def command(name: str, help: str, func: Callable[[argparse.Namespace], int]) -> Any:
        parser = commands.add_parser(name, help=help)
        _connection_options(parser)
        parser.add_argument("--json", action="store_true", help="JSON for scripts")
        parser.set_defaults(func=func)
        return parser

    command("stats", "jobs per queue and state, oldest waiting job", cmd_stats)

    jobs = command("jobs", "list jobs by queue and/or state", cmd_jobs)
    jobs.add_argument("--queue", help="queue name, or a path like email/welcome")
    jobs.add_argument("--state", choices=STATES)
    jobs.add_argument("--limit", type=int, default=20, help="at most this many (default 20)")
    jobs.add_argument("--newest", action="store_true", help="most recent first")

    show = command("show", "one job: its fields, data, log and last error", cmd_show)
    show.add_argument("id", help="job id")

    requeue = command("requeue", "put failed (or complete) jobs back to waiting", cmd_requeue)
    requeue.add_argument("ids", nargs="*", metavar="ID", help="job ids")
    requeue.add_argument("--failed", action="store_true", help="every failed job")
    requeue.add_argument("--queue", help="with --failed: only this queue")

    clean = command("clean", "delete finished jobs older than a given age", cmd_clean)
    clean.add_argument("--state", choices=("complete", "failed"), default="complete")
    clean.add_argument("--older-than", required=True, help="age, e.g. 7d, 12h, 30m")
    clean.add_argument("--queue", help="only this queue")

    command("workers", "workers' status documents (gone ones marked)", cmd_workers)

    push = commands.choices["push"]
    push.add_argument(
        "--dashboard-csp",
        action="store_true",
        help="let the dashboard's script run on CouchDB 3: set the server-wide "
        f'[csp] attachments_header_value to "{admin.DASHBOARD_CSP}" (server admin)',
    )
    push.set_defaults(func=cmd_push_checking_dashboard)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="queshot", description="A job queue on CouchDB.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    push = commands.add_parser("push", help="render and push design docs and _security")
    _connection_options(push)
    push.add_argument("--source", help="design-doc folder (default: queshot's own)")
    mode = push.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true", help="show the diff, write nothing")
    mode.add_argument(
        "--watch", action="store_true", help="push again on every save until Ctrl-C (dev loop)"
    )
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
    worker.add_argument("--reload", action="store_true", help="re-import the handler on change")
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
    enqueue.add_argument(
        "--max-stalls", type=int, help="times it may be taken back from a dead worker, unused"
    )
    enqueue.set_defaults(func=cmd_enqueue)

    demo_cmd = commands.add_parser("demo", help="run the demo end to end (make demo)")
    demo_cmd.add_argument("--url", help="CouchDB URL (default: $COUCHDB_URL, else the dev server)")
    demo_cmd.add_argument("--concurrency", type=int, default=4, help="jobs at once per worker")
    demo_cmd.set_defaults(func=cmd_demo)
    _add_admin_commands(commands)

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
    settings = bench.BenchConfig(
        jobs=args.jobs,
        workers=args.workers,
        concurrency=args.concurrency,
        seconds=args.seconds,
        contention=tuple(int(n) for n in args.contention.split(",") if n.strip()),
        contention_jobs=args.contention_jobs,
        latency_jobs=args.latency_jobs,
    )
    results = bench.run(settings, args.url or os.environ.get("COUCHDB_URL"))
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
