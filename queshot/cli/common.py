"""What every `queshot` command shares: where to connect, and which queue."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from .. import config, protocol
from ..couch import Couch, Database
from ..jobs import SHOWN_STATES, STATES, queue_path
from ..queue import Queue


def connection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="CouchDB URL (default: $COUCHDB_URL, else the dev server)")
    parser.add_argument(
        "--db",
        action="append",
        help="database (repeatable or comma-separated; default: $QUESHOT_DB or 'queshot')",
    )


def command(
    commands: Any, name: str, help: str, func: Callable[[argparse.Namespace], int]
) -> argparse.ArgumentParser:
    """A subcommand that reads or acts on a database and can answer in JSON."""
    parser = commands.add_parser(name, help=help)
    connection_options(parser)
    parser.add_argument("--json", action="store_true", help="JSON for scripts")
    parser.set_defaults(func=func)
    return parser


def open_couch(args: argparse.Namespace) -> Couch:
    return Couch(config.server_url(args.url))


def queue_name(text: str) -> str | list[str]:
    """`email` is the queue "email"; `email/welcome` the path ["email", "welcome"]
    (`jobs.queue_path`'s rule, the design docs' too); QueueError if it is none."""
    path = queue_path(text)
    return path[0] if len(path) == 1 else path


def verbosity(parser: argparse.ArgumentParser, default: Any = argparse.SUPPRESS) -> None:
    """-v (queshot's debug lines) and -vv (the HTTP library's too), accepted
    before or after the command; after it, SUPPRESS leaves one given before alone."""
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=default,
        help="debug logging (-vv: the HTTP requests too)",
    )


def state(text: str) -> str:
    """A `--state` value: a state as shown (waiting, scheduled, running...), or
    as stored (`inactive`: waiting and scheduled alike; `active`: running)."""
    if text not in SHOWN_STATES and text not in STATES:
        raise argparse.ArgumentTypeError(
            f"unknown state {text!r} (one of {', '.join(SHOWN_STATES)})"
        )
    return text


def database(args: argparse.Namespace, couch: Couch) -> Database:
    """The one database a command works on, provisioned (`queshot push`) or refused."""
    databases = config.database_names(args.db)
    if len(databases) != 1:
        raise ValueError("this command works on one database: give a single --db")
    db = couch.database(databases[0])
    protocol.require_design_doc(db)
    return db


def queue(args: argparse.Namespace, couch: Couch, **options: Any) -> Queue:
    return Queue(queue_name(args.queue), database(args, couch), **options)


def json_option(text: str | None, flag: str, kind: type | None = None) -> Any:
    """A flag's JSON value (None if not given), of `kind` (list or dict) if asked."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{flag} is not JSON: {exc}") from None
    if kind is not None and not isinstance(value, kind):
        raise ValueError(f"{flag} must be a JSON {'array' if kind is list else 'object'}")
    return value
