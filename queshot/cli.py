"""The `queshot` command: argument parsing and output only; the work is in the library."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from . import config, designdocs
from .couch import Couch, CouchError

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
    return parser


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
    except (CouchError, designdocs.DesignDocError, ValueError, RuntimeError) as exc:
        print(f"queshot: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
