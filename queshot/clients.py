"""Other CouchDB clients' database objects, taken as queshot databases.

The seed accepted a cradle connection; queshot accepts a `couchdb.Database`
of CouchDB-Python (the `couchdb` package) the same way: its URL and
credentials (`resource.url`, `resource.credentials`) make a `couch.Database`
on the same server, as the same account. Duck-typed, so that the package is
never a dependency nor imported: any object with that `resource` will do.
"""

from __future__ import annotations

from typing import Protocol
from urllib.parse import unquote, urlsplit, urlunsplit

from .couch import Couch, Database


class Resource(Protocol):
    url: str  # the database's URL, without credentials
    credentials: tuple[str, str] | None


class ForeignDatabase(Protocol):
    """A CouchDB-Python `couchdb.Database`, or anything shaped like one."""

    resource: Resource


def as_database(db: Database | ForeignDatabase) -> Database:
    """The `couch.Database` a CouchDB-Python database object names; anything
    else as it is (a `couch.Database`, or a stand-in that only builds
    documents)."""
    resource = getattr(db, "resource", None)
    url = getattr(resource, "url", None)
    if isinstance(db, Database) or not isinstance(url, str):
        return db  # type: ignore[return-value]
    parts = urlsplit(url)
    server_path, _, name = parts.path.rstrip("/").rpartition("/")
    if not name:
        raise ValueError("a couchdb.Database whose URL names no database")
    server = urlunsplit((parts.scheme, parts.netloc, server_path + "/", "", ""))
    credentials = getattr(resource, "credentials", None) or (None, None)
    user, password = credentials
    return Couch(server, user=user, password=password).database(unquote(name))
