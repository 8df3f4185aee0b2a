"""Where queshot connects: the same resolution for every command, the Makefile and the tests.

`--url` / `COUCHDB_URL` name the server (credentials in the URL, or
`COUCHDB_USER` / `COUCHDB_PASSWORD`); without either, the embedded dev server
that `make dev-server` runs. `--db` (repeatable, comma-separated) /
`QUESHOT_DB` name the databases; default `queshot`.
"""

from __future__ import annotations

import os
import re

DEFAULT_DEV_PORT = 5989
DEFAULT_DATABASE = "queshot"
_DB_NAME = re.compile(r"^[a-z][a-z0-9_$()+/-]*$")


def dev_server_url() -> str:
    port = os.environ.get("QUESHOT_DEV_PORT") or DEFAULT_DEV_PORT
    return f"http://127.0.0.1:{port}/"


def server_url(flag: str | None = None) -> str:
    return flag or os.environ.get("COUCHDB_URL") or dev_server_url()


def database_names(flags: list[str] | None = None) -> list[str]:
    """The databases named by the flags, else by QUESHOT_DB, else the default;
    each validated against CouchDB's naming rule."""
    raw = list(flags or []) or [os.environ.get("QUESHOT_DB") or DEFAULT_DATABASE]
    names = [n.strip() for item in raw for n in item.split(",") if n.strip()]
    for name in names:
        if not _DB_NAME.match(name):
            raise ValueError(
                f"invalid database name {name!r}: CouchDB wants a lowercase letter first, "
                "then lowercase letters, digits or _$()+-/"
            )
    return names or [DEFAULT_DATABASE]
