"""One `_changes` feed for all the workers of a host (`--share-feed`).

CouchDB pays for every listening feed on every change (about 1 ms of server
CPU per job per listener, whatever its selector: ARCHITECTURE.md, "Feeds"),
so a host's worker processes should cost one listener, not one each.

Workers that would read the same feed (one server, database and CouchDB
account) meet in a private directory. The one holding an `flock` on the lock
file there leads: it reads `_changes` as a worker's own feed does
(`OwnFeed`), and relays each row, one JSON line, over a Unix socket to every
follower, each through a bounded outbox: one that falls behind is dropped,
never waited for. When the leader dies, SIGKILL included, the kernel drops its
lock and its connections: a follower takes the lock and leads from the last
row it handled, the others connect to it again. A follower that connects
first waits for the leader's greeting (it is then registered: every later row
reaches it), then reads once what changed since the last row it handled, and
only then the rows relayed meanwhile, so nothing falls between two leaders;
what comes twice is harmless (`FeedListener._heard`). Rows carry documents,
never credentials."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import socket
import stat
import threading
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..jobs import QueueError
from .feed import OwnFeed

log = logging.getLogger(__name__)

MAX_BEHIND_BYTES = 16 * 1024 * 1024  # a follower further behind is dropped (it catches up)
FIRST_RETRY, MAX_RETRY = 0.05, 1.0  # reconnecting to a leader being elected (s)
UNREACHED_WARNING = 10  # failed connections in a row before the log says so
MAX_SOCKET_PATH = 100  # bytes: AF_UNIX paths end at 108 on Linux, 104 on macOS


def runtime_dir() -> Path:
    """The private directory where a host's workers meet: `$QUESHOT_RUNTIME_DIR`,
    else `$XDG_RUNTIME_DIR/queshot`, else `/tmp/queshot-<uid>`; made with mode
    0700, and refused if it is someone else's or open to others (whoever can
    reach the socket hears every job's data)."""
    if os.environ.get("QUESHOT_RUNTIME_DIR"):
        path = Path(os.environ["QUESHOT_RUNTIME_DIR"])
    elif os.environ.get("XDG_RUNTIME_DIR"):
        path = Path(os.environ["XDG_RUNTIME_DIR"]) / "queshot"
    else:
        path = Path(f"/tmp/queshot-{os.getuid()}")
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        found = path.lstat()
    except OSError as exc:
        raise QueueError(f"shared feed: cannot make the directory {path}: {exc}") from None
    if not stat.S_ISDIR(found.st_mode) or found.st_uid != os.getuid() or found.st_mode & 0o077:
        raise QueueError(
            f"shared feed: {path} must be a directory of this user's with mode 0700 "
            f"(it is {stat.filemode(found.st_mode)}, owner uid {found.st_uid})"
        )
    return path


def feed_key(url: str, database: str, user: str | None) -> str:
    """Who may share a feed: one server (its URL without credentials), one
    database, one CouchDB account (what the server lets it read)."""
    return hashlib.sha256(json.dumps([url, database, user]).encode()).hexdigest()[:32]


class HostFeed:
    """A `ChangeSource` shared by the workers of a host: leads or follows, and
    takes over when the leader goes. `wake` is called after each (re)connect."""

    def __init__(self, own: OwnFeed, *, wake: Callable[[], None]) -> None:
        self.own = own
        self._wake = wake
        couch = own.db.couch
        place = runtime_dir() / f"feed-{feed_key(couch.url, own.db.name, couch.user)}"
        self.lock_path = place.with_suffix(".lock")
        self.socket_path = place.with_suffix(".sock")
        if len(os.fsencode(self.socket_path)) > MAX_SOCKET_PATH:
            raise QueueError(
                f"shared feed: {self.socket_path} is too long for a Unix socket; "
                "set QUESHOT_RUNTIME_DIR to a shorter directory"
            )
        self.seq: str | int | None = None  # the last row handled: where to go on from
        self._relay: Relay | None = None
        self._following = False

    def describe(self) -> dict[str, Any]:
        relay = self._relay
        if relay is not None:
            return {"role": "leader", "followers": relay.followers}
        return {"role": "follower" if self._following else "electing"}

    def changes(self, since: str | int, selector: dict[str, Any] | None) -> Iterator[dict]:
        self.seq = since
        halt, delay, failed = self.own.halt, FIRST_RETRY, 0
        while not halt.is_set():
            lock = _take_lock(self.lock_path)
            if lock is not None:
                try:
                    yield from self._lead(selector)
                finally:
                    os.close(lock)  # after the relay is closed and its socket gone
                return
            connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                connection.connect(str(self.socket_path))
            except OSError as exc:  # no leader yet: one is being elected, or binding
                connection.close()
                failed += 1
                if failed == UNREACHED_WARNING:
                    log.warning(
                        "shared feed: another worker holds %s but %s does not answer (%s); "
                        "still trying, and polling for jobs meanwhile",
                        self.lock_path,
                        self.socket_path,
                        exc,
                    )
                halt.wait(delay)
                delay = min(delay * 2, MAX_RETRY)
                continue
            delay, failed = FIRST_RETRY, 0
            with connection:
                yield from self._follow(Lines(connection, halt, self.own.heartbeat), selector)

    def _lead(self, selector: dict[str, Any] | None) -> Iterator[dict]:
        with Relay(self.socket_path) as relay:
            self._relay = relay
            log.info("shared feed: leading (reading _changes for this host's workers)")
            try:
                for row in self.own.changes(self.seq, selector):
                    relay.send(row)
                    yield self._handled(row)
            finally:
                self._relay = None

    def _follow(self, leader: Lines, selector: dict[str, Any] | None) -> Iterator[dict]:
        greeting = leader.next()
        if greeting is None:
            return
        self._following = True
        log.info("shared feed: following the leader, pid %s", decode_row(greeting).get("leader"))
        try:
            for row in self.own.changes(self.seq, selector, feed="normal"):
                yield self._handled(row)
            self._wake()
            while (line := leader.next()) is not None:
                yield self._handled(decode_row(line))
        finally:
            self._following = False
        if not self.own.halt.is_set():
            log.info("shared feed: the leader is gone; electing another")

    def _handled(self, row: dict[str, Any]) -> dict[str, Any]:
        """A row about to be handled: a feed of its own, or a catch-up, goes on from its seq."""
        if row.get("seq") is not None:
            self.seq = row["seq"]
        return row


class Relay:
    """The leader's side: a Unix socket (0600) that followers connect to,
    each with an `Outbox` and a thread writing it out."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._outboxes: dict[socket.socket, Outbox] = {}
        self._closed = False
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # a dead leader's (this one holds the lock now)
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(path))
        os.chmod(path, 0o600)
        self._listener.listen(64)
        threading.Thread(target=self._accept, name="queshot-relay", daemon=True).start()

    def __enter__(self) -> Relay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def followers(self) -> int:
        with self._lock:
            return len(self._outboxes)

    def send(self, row: dict[str, Any]) -> None:
        """Queue a row for every follower; one whose outbox is full is dropped."""
        with self._lock:
            if not self._outboxes:
                return
        line = encode_row(row)
        with self._lock:
            behind = [c for c, outbox in self._outboxes.items() if not outbox.put(line)]
        for connection in behind:
            log.info("shared feed: a follower fell behind; dropped (it will catch up)")
            self._drop(connection)

    def close(self) -> None:
        """Stop accepting, end every follower's connection, remove the socket."""
        with self._lock:
            self._closed = True
            connections = list(self._outboxes)
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
        self._listener.close()
        for connection in connections:
            self._drop(connection)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return  # closed
            outbox = Outbox()
            outbox.put(json.dumps({"leader": os.getpid()}).encode() + b"\n")
            with self._lock:
                if self._closed:
                    connection.close()
                    return
                self._outboxes[connection] = outbox
                count = len(self._outboxes)
            log.info("shared feed: a follower joined (%d now)", count)
            threading.Thread(
                target=self._write, args=(connection, outbox), name="queshot-relay", daemon=True
            ).start()

    def _write(self, connection: socket.socket, outbox: Outbox) -> None:
        try:
            while (data := outbox.take()) is not None:
                connection.sendall(data)
        except OSError:
            pass  # the follower is gone
        self._drop(connection)
        connection.close()

    def _drop(self, connection: socket.socket) -> None:
        with self._lock:
            outbox = self._outboxes.pop(connection, None)
        if outbox is None:
            return
        outbox.close()
        with contextlib.suppress(OSError):
            connection.shutdown(socket.SHUT_RDWR)  # ends a send blocked on a stalled follower


class Outbox:
    """A follower's rows not yet sent: at most `budget` bytes (one line
    always fits), so that a slow follower costs the leader no wait."""

    def __init__(self, budget: int = MAX_BEHIND_BYTES) -> None:
        self.budget = budget
        self._lines: deque[bytes] = deque()
        self._size = 0
        self._closed = False
        self._ready = threading.Condition()

    def put(self, line: bytes) -> bool:
        """Add a line; False if it does not fit (or the outbox is closed)."""
        with self._ready:
            if self._closed or (self._lines and self._size + len(line) > self.budget):
                return False
            self._lines.append(line)
            self._size += len(line)
            self._ready.notify()
            return True

    def take(self) -> bytes | None:
        """Everything waiting, once there is something; None once closed."""
        with self._ready:
            while not self._lines and not self._closed:
                self._ready.wait()
            if self._closed:
                return None
            data = b"".join(self._lines)
            self._lines.clear()
            self._size = 0
            return data

    def close(self) -> None:
        with self._ready:
            self._closed = True
            self._ready.notify_all()


class Lines:
    """A follower's reading of the leader: one line at a time, waiting at
    most `every` seconds between looks at `halt`."""

    def __init__(self, connection: socket.socket, halt: threading.Event, every: float) -> None:
        connection.settimeout(every)
        self._connection = connection
        self._halt = halt
        self._buffer = bytearray()
        self._scanned = 0  # no newline before this offset

    def next(self) -> bytes | None:
        """The next line, without its newline; None at the end (or once halted)."""
        while True:
            end = self._buffer.find(b"\n", self._scanned)
            if end >= 0:
                line = bytes(self._buffer[:end])
                del self._buffer[: end + 1]
                self._scanned = 0
                return line
            self._scanned = len(self._buffer)
            if self._halt.is_set():
                return None
            try:
                chunk = self._connection.recv(1 << 16)
            except TimeoutError:
                continue
            except OSError:
                return None
            if not chunk:
                return None
            self._buffer += chunk


def encode_row(row: dict[str, Any]) -> bytes:
    """A row as one JSON line; one that cannot be written goes as unreadable,
    as a row the feed could not parse does."""
    try:
        return json.dumps(row, separators=(",", ":")).encode() + b"\n"
    except (ValueError, TypeError, RecursionError) as exc:
        unreadable = {"id": row.get("id"), "seq": row.get("seq"), "unreadable": str(exc)}
        return json.dumps(unreadable).encode() + b"\n"


def decode_row(line: bytes) -> dict[str, Any]:
    """A relayed row; one this process cannot parse is passed on as unreadable."""
    try:
        row = json.loads(line)
    except (ValueError, RecursionError) as exc:
        return {"id": None, "unreadable": f"relayed row: {type(exc).__name__}"}
    return row if isinstance(row, dict) else {"id": None, "unreadable": "relayed row: not a row"}


def _take_lock(path: Path) -> int | None:
    """The lock file's descriptor, flocked, if no one else holds it."""
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        return None
    return descriptor
