"""What every `queshot` command shares: where to connect, and which queue."""

from __future__ import annotations

import argparse
from typing import Any

from .. import config
from ..couch import Couch, Database
from ..queue import Queue


def connection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="CouchDB URL (default: $COUCHDB_URL, else the dev server)")
    parser.add_argument(
        "--db",
        action="append",
        help="database (repeatable or comma-separated; default: $QUESHOT_DB or 'queshot')",
    )


def open_couch(args: argparse.Namespace) -> Couch:
    return Couch(config.server_url(args.url))


def queue_name(text: str) -> str | list[str]:
    """`email` is the queue "email"; `email/welcome` the path ["email", "welcome"]."""
    parts = [p for p in text.split("/") if p]
    if not parts:
        raise ValueError(f"invalid queue name {text!r}")
    return parts[0] if len(parts) == 1 else parts


def database(args: argparse.Namespace, couch: Couch) -> Database:
    databases = config.database_names(args.db)
    if len(databases) != 1:
        raise ValueError("this command works on one database: give a single --db")
    return couch.database(databases[0])


def queue(args: argparse.Namespace, couch: Couch, **options: Any) -> Queue:
    return Queue(queue_name(args.queue), database(args, couch), **options)
