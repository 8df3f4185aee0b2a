"""The one module that speaks HTTP to CouchDB.

A thin client on httpx: a pooled connection per server, explicit timeouts,
typed errors instead of status codes, and a `_changes` iterator that survives
restarts. Requests follow Apache CouchDB 3.x's documented API; the headers it
always sends (Accept/Content-Type JSON, identity encoding on feeds) also keep
the pouchdb-server stand-in honest (ARCHITECTURE.md). Credentials never appear
in a message: every error names the server by `safe_url`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlsplit, urlunsplit

import httpx

log = logging.getLogger(__name__)

JSON_PARAMS = frozenset({"key", "keys", "startkey", "endkey", "start_key", "end_key"})
# A view or _all_docs query longer than this goes in a POST body instead of the
# URL (CouchDB 2.2+ and pouchdb-server both take it there): CouchDB refuses a
# request line over about 8 KB, and a key holds whatever a document's field held.
MAX_QUERY_CHARS = 2000


class CouchError(Exception):
    """A request CouchDB refused or could not answer; `reason` is CouchDB's own."""

    def __init__(
        self, message: str, *, status: int | None = None, error: str = "", reason: str = ""
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.reason = reason


class BadRequest(CouchError):
    """400: the request (or a design document in it) is malformed."""


class Unauthorized(CouchError):
    """401: missing or wrong credentials."""


class Forbidden(CouchError):
    """403: refused, typically by validate_doc_update; `reason` says why."""


class NotFound(CouchError):
    """404: no such database, document or handler."""


class Conflict(CouchError):
    """409: the document changed since the revision we hold, or a handler said no."""


class PreconditionFailed(CouchError):
    """412: e.g. the database already exists."""


class ServerError(CouchError):
    """5xx or a response that is not CouchDB's JSON."""


class ServerUnreachable(CouchError):
    """No answer: connection refused, reset, or timed out."""


class UnreadableAnswer(CouchError):
    """An answer that is JSON but that Python cannot read: nested deeper than
    its recursion limit (CouchDB stores such documents). The problem of the
    document in it, not of the server: never retried as an outage."""


_BY_STATUS: dict[int, type[CouchError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    412: PreconditionFailed,
}


@dataclass(frozen=True)
class ServerAddress:
    """A server URL taken apart: `url` without user name and password (fit for
    logs and errors), and the credentials it held, percent-decoded."""

    url: str
    user: str | None
    password: str | None


def parse_url(url: str) -> ServerAddress:
    """Split credentials off a server URL. Everything between `://` and the
    URL's last `@` is `user:password`, so a password may hold `#`, `/`, `?`,
    `@` or `:` as typed; percent-encoded (`%23` for `#`, `%25` for `%`) it is
    unambiguous. A malformed URL is a ValueError that names it without them."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, host_part = rest.rpartition("@")
    if not sep:  # nothing tells a host from a password: name none of it
        raise ValueError("not a CouchDB URL (expected http://host:port/)")
    shown = f"{scheme}://{host_part}"
    if scheme.lower() not in ("http", "https"):
        raise ValueError(f"not a CouchDB URL: {shown!r} (expected http://host:port/)")
    try:
        parts = urlsplit(f"{scheme}://{host_part}")
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"not a CouchDB URL: {shown!r} ({exc})") from None
    if not parts.hostname:
        raise ValueError(f"not a CouchDB URL: {shown!r} (no host; expected http://host:port/)")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    netloc = f"{host}:{port}" if port else host
    user, colon, password = userinfo.partition(":")
    return ServerAddress(
        urlunsplit((parts.scheme, netloc, parts.path, "", "")),
        unquote(user) if at and user else None,
        unquote(password) if at and colon else None,
    )


def safe_url(url: str) -> str:
    """The URL with any user name and password removed, fit for logs and
    errors; never raises: a malformed URL keeps only what follows its last `@`."""
    try:
        return parse_url(url).url
    except ValueError:
        scheme, sep, rest = url.partition("://")
        if not sep:
            return "(a malformed URL)"
        return f"{scheme}://{rest.rpartition('@')[2]}".split("?")[0].split("#")[0]


def doc_path(doc_id: str) -> str:
    """Quote a document id for a URL, keeping the slash of _design/ and _local/
    ids. An id of dots alone has them quoted too: a URL path segment `.` or
    `..` would be read as "here" or "up" (the database, the server)."""
    for prefix in ("_design/", "_local/"):
        if doc_id.startswith(prefix):
            return prefix + doc_path(doc_id[len(prefix) :])
    quoted = quote(doc_id, safe="")
    return quoted.replace(".", "%2E") if doc_id.strip(".") == "" else quoted


def _encode_params(params: dict[str, Any] | None) -> dict[str, str]:
    encoded = {}
    for name, value in (params or {}).items():
        if value is None:
            continue
        if name in JSON_PARAMS:
            encoded[name] = json.dumps(value)
        elif isinstance(value, bool):
            encoded[name] = "true" if value else "false"
        else:
            encoded[name] = str(value)
    return encoded


class Outage:
    """Whether a server answers, as seen by several threads at once: the first
    failure of an outage and the first answer after it are logged once each,
    instead of a line (or a traceback) per failed request and per thread."""

    def __init__(self, name: str, logger: logging.Logger = log) -> None:
        self.name = name
        self._log = logger
        self._lock = threading.Lock()
        self._since: float | None = None
        self._ended_at: float | None = None

    def ended_within(self, seconds: float) -> bool:
        """True while down, or if the last outage ended less than `seconds` ago."""
        if self._since is not None:
            return True
        return self._ended_at is not None and time.monotonic() - self._ended_at < seconds

    def failed(self, exc: Exception) -> None:
        """A request got no answer (or a 5xx); logs only if this starts an outage."""
        with self._lock:
            if self._since is not None:
                return
            self._since = time.monotonic()
        self._log.warning("%s unavailable (%s); retrying with backoff", self.name, exc)

    def answered(self) -> None:
        """A request got an answer; logs only if this ends an outage."""
        if self._since is None:
            return
        with self._lock:
            if self._since is None:
                return
            now = time.monotonic()
            took, self._since, self._ended_at = now - self._since, None, now
        self._log.warning("%s answers again after %.1f s", self.name, took)


@dataclass(frozen=True)
class UpdateResult:
    """What an update handler answered: 201 (saved, quorum met), 202 (saved,
    quorum not met), or 200 when the handler saved nothing. `unreadable`
    says why the body could not be read (then `body` is None): the write
    may still have been made, at `new_rev`."""

    status: int
    body: Any
    new_rev: str | None
    unreadable: str | None = None


class Couch:
    """One CouchDB server: a pooled, thread-safe httpx client."""

    def __init__(
        self,
        url: str,
        *,
        user: str | None = None,
        password: str | None = None,
        timeout: float = 30.0,
        connect_timeout: float = 5.0,
        max_connections: int = 64,
    ) -> None:
        address = parse_url(url)
        user = user or address.user or os.environ.get("COUCHDB_USER") or None
        password = password or address.password or os.environ.get("COUCHDB_PASSWORD") or None
        self.url = address.url.rstrip("/") + "/"
        self.user = user
        self._credentials = (user, password or "") if user else None
        self._connect_timeout = connect_timeout
        self._client = httpx.Client(
            base_url=self.url,
            auth=self._credentials,
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            headers={"Accept": "application/json"},
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
        )

    def __repr__(self) -> str:
        return f"Couch({self.url!r}, user={self.user!r})"

    @property
    def credentials(self) -> tuple[str, str] | None:
        """(user, password) this client sends, for what must hand them on to
        the server itself (a `_replicator` document's endpoint)."""
        return self._credentials

    def __enter__(self) -> Couch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def database(self, name: str) -> Database:
        return Database(self, name)

    # -- requests -------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        """Send one request; return the response or raise the matching CouchError."""
        send_headers = dict(headers or {})
        content = None
        if body is not None:
            content = json.dumps(body).encode()
            send_headers["Content-Type"] = "application/json"
        extra = (
            {}
            if timeout is None
            else {"timeout": httpx.Timeout(timeout, connect=self._connect_timeout)}
        )
        try:
            response = self._client.request(
                method,
                path.lstrip("/"),
                params=_encode_params(params),
                content=content,
                headers=send_headers,
                **extra,
            )
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None
        except httpx.InvalidURL as exc:  # e.g. a document id too long for any URL
            raise BadRequest(f"{method} {self.url}{path.lstrip('/')[:80]}...: {exc}") from None
        if response.status_code >= 400:
            raise self._error(method, path, response)
        return response

    def anonymous_may_read(self, path: str) -> bool:
        """Whether a GET of `path` without credentials (a browser that has not
        logged in) is answered; True when the server cannot be asked."""
        with httpx.Client(base_url=self.url, timeout=self._connect_timeout) as client:
            try:
                response = client.get(path.lstrip("/"), headers={"Accept": "application/json"})
            except httpx.TransportError:
                return True
        return response.status_code < 400

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send one request and return its decoded JSON body."""
        return _decode(self.request(method, path, **kwargs), self.url)

    def _unreachable(self, exc: Exception) -> ServerUnreachable:
        what = type(exc).__name__
        detail = str(exc) or what
        if isinstance(exc, httpx.TimeoutException):
            detail = f"timed out ({what})"
        return ServerUnreachable(f"cannot reach CouchDB at {self.url}: {detail}")

    def _error(self, method: str, path: str, response: httpx.Response) -> CouchError:
        try:
            data = response.json()
        except (ValueError, RecursionError):
            data = {}
        if not isinstance(data, dict):
            data = {}
        error = str(data.get("error", "")) or response.reason_phrase
        reason = str(data.get("reason", "")) or error
        status = response.status_code
        if status == 401:
            who = f"user {self.user!r}" if self.user else "an anonymous request"
            message = f"CouchDB at {self.url} refused {who}: {reason}"
        else:
            message = f"{method} {self.url}{path.lstrip('/')} -> {status} {error}: {reason}"
        cls = _BY_STATUS.get(status, ServerError if status >= 500 else CouchError)
        return cls(message, status=status, error=error, reason=reason)

    # -- server ---------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        return self.json("GET", "/")

    def all_dbs(self) -> list[str]:
        return self.json("GET", "/_all_dbs")

    def session_user(self) -> str | None:
        """The account name CouchDB knows these credentials by (`/_session`'s
        userCtx.name); None when it has none (an admin party, anonymous)."""
        context = self.json("GET", "/_session").get("userCtx")
        name = context.get("name") if isinstance(context, dict) else None
        return name if isinstance(name, str) else None

    def node_config(self, section: str) -> dict[str, str] | None:
        """One config section of the node we talk to (server admins only: else
        Unauthorized/Forbidden). None where the server has no
        `/_node/_local/_config` at all (pouchdb-server): not CouchDB, no such settings."""
        try:
            return self.json("GET", f"/_node/_local/_config/{quote(section, safe='')}")
        except NotFound:
            return None

    def connected_nodes(self) -> set[str] | None:
        """The cluster's nodes that the node we talk to is connected to now
        (`/_membership` `all_nodes`); None where that cannot be read (it needs
        a server admin; pouchdb-server has no such thing)."""
        try:
            return set(self.json("GET", "/_membership")["all_nodes"])
        except (Unauthorized, Forbidden, NotFound, BadRequest, KeyError, TypeError):
            return None

    def set_node_config(self, section: str, key: str, value: str) -> str:
        """Set one config value on the node we talk to (only that node of a
        cluster, server-wide for every database on it); returns the old value."""
        path = f"/_node/_local/_config/{quote(section, safe='')}/{quote(key, safe='')}"
        return self.json("PUT", path, body=value)

    def stream_lines(
        self, path: str, *, params: dict[str, Any], read_timeout: float, body: Any = None
    ) -> Iterator[str]:
        """Yield the lines of a streamed response (a continuous `_changes` feed),
        POSTing `body` as JSON if given.

        Asks for identity encoding: gzip makes pouchdb-server buffer the feed."""
        timeout = httpx.Timeout(read_timeout, connect=self._connect_timeout)
        method = "GET" if body is None else "POST"
        try:
            with self._client.stream(
                method,
                path.lstrip("/"),
                params=_encode_params(params),
                json=body,
                headers={"Accept-Encoding": "identity"},
                timeout=timeout,
            ) as response:
                if response.status_code >= 400:
                    response.read()
                    raise self._error(method, path, response)
                yield from _lines(response.iter_bytes())
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None


def _decode(response: httpx.Response, url: str) -> Any:
    try:
        return response.json()
    except RecursionError as exc:
        raise UnreadableAnswer(
            f"{url} answered {response.status_code} with JSON that cannot be read here ({exc})",
            status=response.status_code,
            error="unreadable",
            reason=f"RecursionError: {exc}",
        ) from None
    except ValueError:
        raise ServerError(
            f"{url} answered {response.status_code} with something that is not JSON "
            f"({response.headers.get('content-type', 'no content type')}); is it CouchDB?",
            status=response.status_code,
        ) from None


_ROW_ID = re.compile(r'\{(?:"seq":(?:"(?:[^"\\]|\\.)*"|\d+),)?"id":("(?:[^"\\]|\\.)*")')
_ROW_SEQ = re.compile(r'^\{"seq":("(?:[^"\\]|\\.)*"|\d+)|,"seq":("(?:[^"\\]|\\.)*"|\d+)\}\s*$')


def _lines(chunks: Iterator[bytes]) -> Iterator[str]:
    """The lines of a byte stream, split at "\n" only. httpx's iter_lines
    splits where str.splitlines does, also at U+2028, U+0085 and the like,
    which JSON leaves unescaped inside strings: one job with such a character
    would cut its feed row in two."""
    pending: list[bytes] = []
    for chunk in chunks:
        *ends, rest = chunk.split(b"\n")
        for end in ends:
            pending.append(end)
            yield b"".join(pending).decode("utf-8", errors="replace").removesuffix("\r")
            pending = []
        if rest:
            pending.append(rest)
    if pending:
        yield b"".join(pending).decode("utf-8", errors="replace")


def _feed_row(line: str) -> dict[str, Any]:
    """One line of a continuous feed. A row that cannot be read (its document
    nests too deep for Python) comes as {id, seq, unreadable: why}, its id and
    seq taken from the row's own head (CouchDB) or ends (pouchdb-server), so
    that the feed goes on past it; "" for an id that cannot be found."""
    try:
        return json.loads(line)
    except (RecursionError, ValueError) as exc:
        found_id, found_seq = _ROW_ID.match(line), _ROW_SEQ.search(line)
        row: dict[str, Any] = {"id": json.loads(found_id[1]) if found_id else ""}
        if found_seq:
            row["seq"] = json.loads(found_seq[1] or found_seq[2])
        row["unreadable"] = f"{type(exc).__name__}: {exc}"
        return row


class Database:
    """One database on a `Couch` server."""

    def __init__(self, couch: Couch, name: str) -> None:
        self.couch = couch
        self.name = name
        self._base = "/" + quote(name, safe="")

    def __repr__(self) -> str:
        return f"Database({self.couch.url}{self.name})"

    @property
    def url(self) -> str:
        """The database's URL without credentials."""
        return f"{self.couch.url}{self.name}"

    def _json(self, method: str, path: str = "", **kwargs: Any) -> Any:
        return self.couch.json(method, self._base + path, **kwargs)

    # -- the database itself ----------------------------------------------------

    def exists(self) -> bool:
        """GET rather than HEAD: a 401 to a HEAD has no body, and the body has
        CouchDB's reason ("Name or password is incorrect.")."""
        try:
            self.info()
        except NotFound:
            return False
        return True

    def create(self) -> bool:
        """Create the database; False if it already existed."""
        try:
            self._json("PUT")
        except PreconditionFailed:
            return False
        return True

    def drop(self) -> None:
        self._json("DELETE")

    def info(self) -> dict[str, Any]:
        return self._json("GET")

    def replicas(self) -> int:
        """The database's `n` (copies of each document); 1 where the server has no
        cluster object (a single node, or pouchdb-server)."""
        cluster = self.info().get("cluster")
        return int(cluster.get("n", 1)) if isinstance(cluster, dict) else 1

    def security(self) -> dict[str, Any]:
        return self._json("GET", "/_security")

    def set_security(self, security: dict[str, Any]) -> None:
        self._json("PUT", "/_security", body=security)

    # -- documents --------------------------------------------------------------

    def get(self, doc_id: str, **params: Any) -> dict[str, Any]:
        return self._json("GET", "/" + doc_path(doc_id), params=params)

    def get_or_none(self, doc_id: str, **params: Any) -> dict[str, Any] | None:
        try:
            return self.get(doc_id, **params)
        except NotFound:
            return None

    def save(self, doc: dict[str, Any], **params: Any) -> str:
        """Create or update `doc` (PUT with its `_id`, else POST for a server
        UUID); store the new `_id`/`_rev` into it and return the revision."""
        if "_id" in doc:
            result = self._json("PUT", "/" + doc_path(doc["_id"]), body=doc, params=params)
        else:
            result = self._json("POST", "", body=doc, params=params)
        doc["_id"], doc["_rev"] = result["id"], result["rev"]
        return result["rev"]

    def save_new(self, doc: dict[str, Any], **params: Any) -> int:
        """Create `doc` under its `_id` (PUT, no revision): 201 when stored on
        `w` copies, 202 on fewer (a cluster); Conflict if the id is taken.
        Stores the new `_rev` into it."""
        response = self.couch.request(
            "PUT", self._base + "/" + doc_path(doc["_id"]), body=doc, params=params
        )
        doc["_rev"] = _decode(response, self.couch.url)["rev"]
        return response.status_code

    def attachment(self, doc_id: str, name: str) -> bytes:
        """An attachment's bytes as they were uploaded (CouchDB decodes what it
        stored gzip-compressed)."""
        path = f"{self._base}/{doc_path(doc_id)}/{quote(name)}"
        return self.couch.request("GET", path, headers={"Accept": "*/*"}).content

    def delete(self, doc_id: str, rev: str) -> str:
        return self._json("DELETE", "/" + doc_path(doc_id), params={"rev": rev})["rev"]

    def bulk_docs(self, docs: list[dict[str, Any]], *, new_edits: bool = True) -> list[dict]:
        """One `_bulk_docs` round trip. Results may come back in another order
        (pouchdb-server), so callers pair them by `id`."""
        body: dict[str, Any] = {"docs": docs}
        if not new_edits:
            body["new_edits"] = False
        return self._json("POST", "/_bulk_docs", body=body)

    def open_revs(self, doc_id: str, *, r: int | None = None) -> list[dict[str, Any]]:
        """Every leaf revision of a document (conflict branches included), as
        the copies that answer hold them: `r` of them on a cluster (CouchDB
        answers from fewer, silently, while a node is down)."""
        rows = self._json(
            "GET",
            "/" + doc_path(doc_id),
            params={"open_revs": "all", "revs": True, "r": r},
        )
        return [row["ok"] for row in rows if "ok" in row]

    def shard_nodes(self, doc_id: str) -> list[str] | None:
        """The cluster nodes holding a copy of the document (`_shards/<id>`);
        None where the server has no shards (pouchdb-server)."""
        try:
            return list(self._json("GET", "/_shards/" + doc_path(doc_id))["nodes"])
        except (NotFound, BadRequest, KeyError, TypeError):
            return None

    def all_docs(self, **params: Any) -> dict[str, Any]:
        return self._post_or_get("/_all_docs", params)

    def view(self, ddoc: str, view: str, **params: Any) -> dict[str, Any]:
        return self._post_or_get(
            f"/_design/{quote(ddoc, safe='')}/_view/{quote(view, safe='')}", params
        )

    def _post_or_get(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        method, query, body = _query_request(params)
        return self._json(method, path, params=query, body=body)

    def update(
        self, ddoc: str, handler: str, doc_id: str, body: Any = None, **params: Any
    ) -> UpdateResult:
        """Call an update handler on a document. Raises Conflict on 409 (either
        the handler's own refusal or CouchDB's revision conflict)."""
        path = f"{self._base}/_design/{quote(ddoc, safe='')}/_update/{quote(handler, safe='')}/"
        response = self.couch.request(
            "POST", path + doc_path(doc_id), params=params, body=body or {}
        )
        new_rev = response.headers.get("X-Couch-Update-NewRev")
        try:
            data = response.json()
        except RecursionError as exc:
            return UpdateResult(response.status_code, None, new_rev, f"RecursionError: {exc}")
        except ValueError:
            data = response.text
        return UpdateResult(response.status_code, data, new_rev)

    # -- changes ------------------------------------------------------------------

    def changes(
        self,
        *,
        since: str | int = "now",
        feed: str = "continuous",
        heartbeat: float = 10.0,
        stop: threading.Event | None = None,
        max_backoff: float = 10.0,
        outage: Outage | None = None,
        selector: dict[str, Any] | None = None,
        **params: Any,
    ) -> Iterator[dict[str, Any]]:
        """Yield `_changes` rows. A `normal` feed ends after one answer (the
        changes there are now); `longpoll` and `continuous` go on for as long as
        the caller iterates, or until `stop` is set (checked at every heartbeat
        of a continuous feed, between answers of a longpoll). On a lost
        connection it reconnects from the last seq seen, with capped backoff,
        reporting the outage to `outage` (a worker shares one across its
        threads; by default the feed logs its own one line per outage). Extra
        params (filter, view, include_docs, ...) pass through; a Mango
        `selector` is sent as CouchDB documents it (`filter=_selector`, in a
        POST body; pouchdb-server answers 404). `seq` values are
        opaque: stored and passed back, never compared. `since="now"` is pinned
        to the database's current update_seq first, so that a reconnect before
        the first change still resumes from there instead of skipping what the
        outage hid."""
        stop = stop or threading.Event()
        outage = outage or Outage(f"the changes feed of {self.url}")
        body = None if selector is None else {"selector": selector}
        if body is not None:
            params["filter"] = "_selector"
        backoff = 0.5
        while not stop.is_set():
            try:
                if since == "now":
                    since = self.info()["update_seq"]
                query = {**params, "feed": feed, "since": since, "heartbeat": int(heartbeat * 1000)}
                for row in self._feed_rows(query, heartbeat, body):
                    outage.answered()
                    backoff = 0.5
                    if stop.is_set():
                        return
                    if row is None:
                        continue
                    if "last_seq" in row:
                        if feed == "normal":
                            return
                        since = row["last_seq"]
                        break
                    since = row.get("seq", since)
                    yield row
            except (ServerUnreachable, ServerError) as exc:
                if stop.is_set():  # the connection was dropped because we are done
                    return
                outage.failed(exc)
                stop.wait(backoff)
                backoff = min(backoff * 2, max_backoff)

    def filters_by_selector(self, selector: dict[str, Any], **options: Any) -> bool:
        """Whether the server filters `_changes` by a Mango selector (CouchDB
        does; pouchdb-server answers 404 to the POST body CouchDB documents).
        `options` (stop, outage, max_backoff) ride out an outage as `changes` does."""
        try:
            for _ in self.changes(feed="normal", limit=1, selector=selector, **options):
                pass
        except (BadRequest, NotFound) as exc:
            log.debug("changes feed not filtered by selector (%s); checking each change", exc)
            return False
        return True

    def _feed_rows(
        self, query: dict[str, Any], heartbeat: float, body: Any
    ) -> Iterator[dict | None]:
        """One connection's worth of a feed: change rows, None for a heartbeat,
        and a final {"last_seq": ...} row."""
        if query["feed"] == "continuous":
            for line in self.couch.stream_lines(
                self._base + "/_changes", params=query, read_timeout=heartbeat * 3, body=body
            ):
                yield _feed_row(line) if line.strip() else None
            return
        # normal/longpoll answer one JSON object (over several lines): read it whole.
        response = self._json(
            "GET" if body is None else "POST",
            "/_changes",
            params=query,
            body=body,
            headers={"Accept-Encoding": "identity"},
            timeout=max(heartbeat * 3, 60.0),
        )
        yield from response["results"]
        yield {"last_seq": response["last_seq"]}


# -- what readers need beyond plain requests ---------------------------------------


def rows_between(
    rows: list[dict[str, Any]], after: dict[str, Any] | None, before: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """The rows of a view page after the row `after` and before the row
    `before`, where they are among them: CouchDB starts and ends a page at a
    row (startkey_docid, endkey_docid), pouchdb-server ignores *_docid and
    gives every row of their keys."""
    ids = [row["id"] for row in rows]
    first = ids.index(after["id"]) + 1 if after is not None and after["id"] in ids else 0
    end = ids.index(before["id"]) if before is not None and before.get("id") in ids else None
    return rows[first:end]


def _query_request(params: dict[str, Any]) -> tuple[str, dict[str, Any], Any]:
    """How to send a view or _all_docs query: GET with it in the URL; `keys`
    in a POST body; the whole query in a POST body when it is too long for a
    URL (MAX_QUERY_CHARS). The method, the URL's params and the body."""
    params = dict(params)
    keys = params.pop("keys", None)
    if len(urlencode(_encode_params(params))) > MAX_QUERY_CHARS:
        body = {name: value for name, value in params.items() if value is not None}
        return "POST", {}, body if keys is None else {**body, "keys": keys}
    if keys is not None:
        return "POST", params, {"keys": keys}
    return "GET", params, None


_JSON_STRUCTURE = re.compile(r'["\[\]{}]')
_JSON_STRING_END = re.compile(r'(?:[^"\\]|\\.)*"')
TOO_DEEP_MARK = "<nested too deep to show>"


def loads_within(text: str, max_depth: int) -> Any:
    """JSON text as Python values, every value nested deeper than `max_depth`
    replaced by TOO_DEEP_MARK: what a reader can show of a document Python
    cannot parse whole. One pass over the structural characters."""
    kept: list[str] = []
    depth, cut_at, copied = 0, None, 0
    position = 0
    while match := _JSON_STRUCTURE.search(text, position):
        char, at = match.group(), match.start()
        if char == '"':
            end = _JSON_STRING_END.match(text, at + 1)
            position = end.end() if end else len(text)
            continue
        position = at + 1
        if char in "[{":
            depth += 1
            if depth > max_depth and cut_at is None:
                kept.append(text[copied:at] + json.dumps(TOO_DEEP_MARK))
                cut_at = depth
        else:
            if cut_at == depth:
                cut_at, copied = None, position
            depth -= 1
    kept.append(text[copied:] if cut_at is None else "")
    return json.loads("".join(kept))


def get_to_show(db: Database, doc_id: str, max_depth: int) -> dict[str, Any]:
    """A document for people to look at: as `Database.get`, but one nested
    deeper than Python parses has its deepest values replaced (`loads_within`)."""
    response = db.couch.request("GET", f"/{quote(db.name, safe='')}/{doc_path(doc_id)}")
    try:
        return _decode(response, db.couch.url)
    except UnreadableAnswer:
        return loads_within(response.text, max_depth)


def purge(db: Database, revs: dict[str, list[str]]) -> dict[str, Any]:
    """`_purge` revisions, tombstones too (CouchDB 3, database admins): the
    documents leave the by-id and by-seq trees. Kept out of
    `Database`, which is at the class size bound."""
    return db._json("POST", "/_purge", body=revs)
