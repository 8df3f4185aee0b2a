"""Offline producers from the command line: `queshot replicate` sets up a
producer database's two replications; `queshot stats` shows the producers
(`producer_lines`). The work is in `queshot.replication`."""

from __future__ import annotations

import argparse
import os
from typing import Any

from .. import replication
from ..couch import Couch, Database, Forbidden, Unauthorized
from ..jobs import STATES
from . import common, output

PASSWORD_ENV = "QUESHOT_PRODUCER_PASSWORD"


def cmd_replicate(args: argparse.Namespace) -> int:
    password = os.environ.get(PASSWORD_ENV)
    if not password:
        raise ValueError(f"set {PASSWORD_ENV} to the password of account {args.producer!r}")
    with common.open_couch(args) as couch, Couch(args.producer_db) as site:
        queue_db = common.database(args, couch)
        producer_db = site.database(args.producer_db_name)
        ids = replication.set_up(producer_db, queue_db, args.producer, password)
    print(
        f"replications of {args.producer!r}, in {site.url}_replicator (selector origin = "
        f"{args.producer!r}):"
    )
    for doc_id in ids:
        print(f"  {output.text(doc_id)}")
    return 0


def producers(couch: Couch, db: Database) -> tuple[dict[str, Any], list[Any]]:
    """Jobs per producer (origin) and state, and each replication's lag
    (none when this account may not read `_scheduler/docs`)."""
    counts = replication.origin_counts(db)
    try:
        lags = replication.replication_lags(couch, db)
    except (Unauthorized, Forbidden):
        lags = []
    return counts, lags


def producer_lines(couch: Couch, db: Database) -> list[str]:
    """`producers` as tables; no lines when the database has neither."""
    counts, lags = producers(couch, db)
    lines: list[str] = []
    if counts:
        rows = [
            [output.text(origin), *(states.get(s, 0) for s in STATES), sum(states.values())]
            for origin, states in sorted(counts.items())
        ]
        lines += ["", *output.table_lines(["ORIGIN", *(s.upper() for s in STATES), "TOTAL"], rows)]
    if lags:
        rows = [
            [
                output.text(lag.doc_id),
                lag.direction,
                output.text(lag.state),
                "?" if lag.changes_pending is None else lag.changes_pending,
                lag.docs_written,
                lag.doc_write_failures,
                output.text(lag.last_updated or "-"),
            ]
            for lag in lags
        ]
        headers = ["REPLICATION", "WAY", "STATE", "PENDING", "WRITTEN", "REFUSED", "UPDATED"]
        lines += ["", *output.table_lines(headers, rows)]
    return lines


def add_commands(commands: Any) -> None:
    parser = commands.add_parser(
        "replicate",
        help="set up a producer database's push and pull replications (offline producers)",
        description="Write the two _replicator documents of a producer database: push its "
        "jobs into the queue database as the producer's account (which may create jobs and "
        "nothing else), pull back the jobs whose origin is that account. The password of "
        f"the account comes from ${PASSWORD_ENV}.",
    )
    common.connection_options(parser)
    parser.add_argument(
        "producer_db", help="the producer's CouchDB server URL (with its own credentials)"
    )
    parser.add_argument(
        "producer_db_name", help="the producer's database there (created if missing)"
    )
    parser.add_argument(
        "--producer", required=True, help="the producer's account on the queue's server"
    )
    parser.set_defaults(func=cmd_replicate)
