"""Workers of one host sharing one `_changes` feed (`--share-feed`,
queshot/worker/hostfeed.py): one leader reads the server's feed and relays
it; followers hear everything through it (their poll interval here is far
longer than the tests, so only the relay can wake them); a SIGKILLed leader
is replaced without a job falling between; workers of another database or
account do not share."""

from __future__ import annotations

import fcntl
import os
import socket
import subprocess
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import queue_database, running, wait_until
from recording import read_records

from queshot import Queue, admin, protocol
from queshot.couch import Couch, Database, Outage
from queshot.jobs import PAUSE_FIELD, WORKER_DOC_PREFIX, QueueError
from queshot.localcouch import LocalCluster
from queshot.worker import Job, Worker
from queshot.worker.feed import OwnFeed
from queshot.worker.hostfeed import (
    HostFeed,
    Lines,
    Outbox,
    Relay,
    decode_row,
    encode_row,
    runtime_dir,
)

LONG_POLL = "300"  # s: longer than any test here, so a worker wakes only for its feed


def feeds(db: Database, pids: set[int]) -> dict[int, dict[str, Any]]:
    """The `feed` of each of these processes' status documents, by pid."""
    rows = db.all_docs(
        startkey=WORKER_DOC_PREFIX, endkey=WORKER_DOC_PREFIX + "\ufff0", include_docs=True
    )["rows"]
    docs = [row["doc"] for row in rows if row["doc"].get("pid") in pids]
    return {doc["pid"]: doc.get("feed") for doc in docs}


def one_leader(db: Database, pids: set[int]) -> int | None:
    """The pid of the leader, once the status documents show exactly one
    leading all the others, who follow."""
    found = feeds(db, pids)
    if set(found) != pids:
        return None
    leaders = [
        pid for pid, feed in found.items() if feed == {"role": "leader", "followers": len(pids) - 1}
    ]
    followers = [pid for pid, feed in found.items() if feed == {"role": "follower"}]
    return leaders[0] if len(leaders) == 1 and len(followers) == len(pids) - 1 else None


def spawn_sharing(
    spawn_worker: Callable[..., subprocess.Popen], db: Database, n: int, url: str | None = None
) -> list:
    return [
        spawn_worker(
            db.name,
            "shared",
            "--share-feed",
            "--concurrency",
            "2",
            "--lease-seconds",
            "3",
            "--poll-interval",
            LONG_POLL,
            url=url,
        )  # fmt: skip
        for _ in range(n)
    ]


@pytest.mark.slow
def test_three_workers_share_one_feed_and_each_job_runs_once(
    db: Database, spawn_worker: Callable[..., subprocess.Popen], record_file: Path, meeting_place
) -> None:
    queue = Queue("shared", db)
    workers = spawn_sharing(spawn_worker, db, 3)
    pids = {w.pid for w in workers}
    wait_until(lambda: one_leader(db, pids), timeout=60)

    ids = queue.create_jobs([{"sleep": 0.05} for _ in range(150)])
    wait_until(lambda: queue.stats()["complete"] == len(ids), timeout=120)

    starts = [r for r in read_records(record_file) if r["event"] == "start"]
    assert Counter(r["id"] for r in starts) == Counter(ids)  # each once
    assert {r["pid"] for r in starts} == pids  # followers heard of the jobs, through the leader
    assert one_leader(db, pids)  # still one feed on the server


@pytest.mark.slow
def test_a_sigkilled_leader_is_replaced_and_no_job_falls_between(
    db: Database, spawn_worker: Callable[..., subprocess.Popen], record_file: Path, meeting_place
) -> None:
    kill_the_leader_mid_stream(db, spawn_worker, record_file)


@pytest.mark.cluster
@pytest.mark.slow
def test_a_sigkilled_leader_on_a_cluster(
    couch_cluster: LocalCluster,
    db_name: str,
    spawn_worker: Callable[..., subprocess.Popen],
    record_file: Path,
    meeting_place: Path,
) -> None:
    """Sequence numbers of a cluster's feed, opaque strings, resumed from."""
    with Couch(couch_cluster.url) as couch:
        db = queue_database(couch, db_name)
        kill_the_leader_mid_stream(db, spawn_worker, record_file, url=couch_cluster.url)


def kill_the_leader_mid_stream(
    db: Database,
    spawn_worker: Callable[..., subprocess.Popen],
    record_file: Path,
    url: str | None = None,
) -> None:
    """Jobs before, during and after the leader's SIGKILL and the election."""
    queue = Queue("shared", db)
    workers = spawn_sharing(spawn_worker, db, 3, url)
    pids = {w.pid for w in workers}
    leader = wait_until(lambda: one_leader(db, pids), timeout=60)

    before = queue.create_jobs([{"sleep": 0.1} for _ in range(60)])
    wait_until(lambda: queue.stats()["complete"] >= 10, timeout=60)
    victim = next(w for w in workers if w.pid == leader)
    victim.kill()
    victim.wait()
    during = queue.create_jobs([{"sleep": 0.01} for _ in range(30)])  # while electing
    survivors = pids - {leader}
    wait_until(lambda: one_leader(db, survivors), timeout=60)
    after = queue.create_jobs([{"sleep": 0.01} for _ in range(30)])
    everything = before + during + after
    wait_until(lambda: queue.stats()["complete"] == len(everything), timeout=120)

    starts = Counter(r["id"] for r in read_records(record_file) if r["event"] == "start")
    assert set(starts) == set(everything)
    assert all(starts[job_id] == 1 for job_id in during + after)
    # only what the killed leader held (concurrency 2) may have run twice
    assert sum(starts[job_id] - 1 for job_id in before) <= 2


class Listening:
    """A HostFeed read in a thread of its own until `stop()`: the rows it gave."""

    def __init__(self, db: Database, since: str | int) -> None:
        self.halt = threading.Event()
        self.woken = threading.Event()
        own = OwnFeed(db, heartbeat=0.5, outage=Outage("test feed"), halt=self.halt)
        self.feed = HostFeed(own, wake=self.woken.set)
        self.ids: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(since,), daemon=True)
        self._thread.start()

    def _read(self, since: str | int) -> None:
        for row in self.feed.changes(since, None):
            self.ids.append(row["id"])

    def stop(self) -> None:
        self.halt.set()
        self._thread.join(timeout=30)


def test_a_follower_reads_what_it_missed_first_and_takes_over_from_a_leader_that_left(
    db: Database, meeting_place: Path
) -> None:
    queue = Queue("shared", db)
    since = db.info()["update_seq"]
    leader = Listening(db, since)
    wait_until(lambda: leader.feed.describe()["role"] == "leader")
    missed = queue.create_job({})
    wait_until(lambda: missed in leader.ids)  # relayed before the follower came

    follower = Listening(db, since)
    try:
        wait_until(lambda: follower.feed.describe() == {"role": "follower"})
        relayed = queue.create_job({})
        wait_until(lambda: relayed in follower.ids)
        assert missed in follower.ids  # its catch-up read
        assert follower.woken.is_set()

        leader.stop()
        wait_until(lambda: follower.feed.describe()["role"] == "leader")
        own = queue.create_job({})
        wait_until(lambda: own in follower.ids)
    finally:
        leader.stop()
        follower.stop()


def test_a_lock_held_without_a_leader_answering_is_said_and_taken_when_freed(
    db: Database, meeting_place: Path, caplog: pytest.LogCaptureFixture
) -> None:
    own = OwnFeed(db, heartbeat=0.5, outage=Outage("test feed"), halt=threading.Event())
    held = os.open(HostFeed(own, wake=lambda: None).lock_path, os.O_RDWR | os.O_CREAT)
    fcntl.flock(held, fcntl.LOCK_EX)  # as a leader would, before the worker starts
    waiting = Listening(db, db.info()["update_seq"])
    try:
        try:
            wait_until(lambda: "does not answer" in caplog.text)
            assert waiting.feed.describe() == {"role": "electing"}
        finally:
            os.close(held)
        wait_until(lambda: waiting.feed.describe()["role"] == "leader")
    finally:
        waiting.stop()


def test_a_design_doc_older_than_the_one_heard_is_passed_over(db: Database) -> None:
    """A shared feed's catch-up and relay overlap: a pause lifted must not come back."""
    worker = Worker(Queue("shared", db), lambda job: None)
    newer = {"_id": protocol.DDOC_ID, "_rev": "5-b", PAUSE_FIELD: []}
    older = {**newer, "_rev": "4-a", PAUSE_FIELD: [{"queue": ["shared"], "at": 1, "by": None}]}
    worker._feed._heard_safely({"id": protocol.DDOC_ID, "seq": 9, "doc": newer})
    worker._feed._heard_safely({"id": protocol.DDOC_ID, "seq": 8, "doc": older})
    assert not worker.control.paused


def test_cancel_and_pause_reach_a_follower_through_the_shared_feed(
    db: Database, meeting_place: Path
) -> None:
    asked = threading.Event()

    def handler(job: Job) -> None:
        asked.set()
        wait_until(lambda: job.cancelled, timeout=30)
        job.check_cancelled()

    # A long lease: no heartbeat re-reads the job during the test; only the feed tells.
    options: dict[str, Any] = {"poll_interval": 300, "lease_seconds": 600, "share_feed": True}
    leader = Worker(Queue("other", db), handler, **options)
    follower = Worker(Queue("shared", db), handler, **options)
    with running(leader):
        wait_until(lambda: leader._feed.source.describe()["role"] == "leader")
        with running(follower):
            wait_until(lambda: follower._feed.source.describe() == {"role": "follower"})
            queue = Queue("shared", db)
            job_id = queue.create_job({})
            assert asked.wait(30)
            queue.cancel(job_id)
            wait_until(lambda: db.get(job_id)["state"] == "cancelled")

            admin.set_paused(db, "shared", True)
            wait_until(lambda: follower.control.paused)
            admin.set_paused(db, "shared", False)
            wait_until(lambda: not follower.control.paused)
            assert leader._feed.source.describe() == {"role": "leader", "followers": 1}


def test_workers_of_another_database_or_account_do_not_share(
    couch: Couch, db: Database, db_name: str, meeting_place: Path
) -> None:
    other = queue_database(couch, db_name + "_other")
    try:
        options: dict[str, Any] = {"poll_interval": 300, "share_feed": True}
        here = Worker(Queue("shared", db), lambda job: None, **options)
        there = Worker(Queue("shared", other), lambda job: None, **options)
        with running(here, there):
            for worker in (here, there):
                wait_until(lambda w=worker: w._feed.source.describe()["role"] == "leader")
            assert here._feed.source.describe()["followers"] == 0
        with Couch(couch.url, user="someone", password="secret") as as_someone:
            third = Worker(
                Queue("shared", as_someone.database(db.name)), lambda job: None, **options
            )
        sockets = {w._feed.source.socket_path for w in (here, there, third)}
        assert len(sockets) == 3
        assert all("secret" not in str(path) for path in sockets)
    finally:
        other.drop()


def test_a_meeting_place_open_to_others_is_one_line_and_no_worker(
    db: Database, spawn_worker: Callable[..., subprocess.Popen], tmp_path: Path, monkeypatch
) -> None:
    open_to_all = tmp_path / "run"
    open_to_all.mkdir()
    os.chmod(open_to_all, 0o777)
    monkeypatch.setenv("QUESHOT_RUNTIME_DIR", str(open_to_all))
    process = spawn_worker(db.name, "shared", "--share-feed")
    _, stderr = process.communicate(timeout=60)
    assert process.returncode != 0
    assert stderr.strip().count("\n") == 0, stderr
    assert f"{open_to_all} must be a directory of this user's with mode 0700" in stderr


# -- the pieces, without a server --------------------------------------------------


def test_a_follower_that_falls_behind_is_dropped_and_the_leader_never_waits(
    meeting_place: Path,
) -> None:
    with Relay(meeting_place / "t.sock") as relay:
        slow = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        slow.connect(str(meeting_place / "t.sock"))  # and never reads
        wait_until(lambda: relay.followers == 1)
        row = {"id": "job", "seq": 1, "doc": {"data": "x" * 100_000}}
        sent = 0
        while relay.followers and sent < 1000:  # the kernel's buffer, then the outbox fill up
            relay.send(row)
            sent += 1
        assert relay.followers == 0
        assert sent * 100_000 > Outbox().budget
        slow.close()


def test_an_outbox_holds_a_bounded_number_of_bytes_and_one_line_always() -> None:
    outbox = Outbox(budget=10)
    assert outbox.put(b"x" * 25)  # one line fits, whatever its size
    assert not outbox.put(b"y")
    assert outbox.take() == b"x" * 25
    assert outbox.put(b"a" * 5) and outbox.put(b"b" * 5) and not outbox.put(b"c")
    assert outbox.take() == b"a" * 5 + b"b" * 5
    outbox.close()
    assert outbox.take() is None and not outbox.put(b"d")


def test_relayed_rows_are_read_back_whole_across_any_split() -> None:
    rows = [{"id": f"j{i}", "seq": f"{i}-g1AAAA", "doc": {"n": i, "s": "é\n"}} for i in range(50)]
    data = b"".join(encode_row(row) for row in rows)
    ours, theirs = socket.socketpair()

    def send_in_pieces() -> None:  # that cut lines anywhere
        for start in range(0, len(data), 7):
            theirs.sendall(data[start : start + 7])
        theirs.shutdown(socket.SHUT_WR)

    with ours, theirs:
        sender = threading.Thread(target=send_in_pieces)
        sender.start()
        lines = Lines(ours, threading.Event(), every=5)
        read = []
        while (line := lines.next()) is not None:
            read.append(decode_row(line))
        sender.join()
    assert read == rows


def test_a_row_that_cannot_be_relayed_goes_as_unreadable() -> None:
    deep: Any = []
    for _ in range(100_000):
        deep = [deep]
    row = decode_row(encode_row({"id": "deep", "seq": 3, "doc": {"x": deep}}))
    assert row["id"] == "deep" and row["seq"] == 3 and "unreadable" in row
    assert "unreadable" in decode_row(b"[" * 100_000 + b"]" * 100_000)
    assert "unreadable" in decode_row(b"not json")


def test_the_meeting_place_must_be_private(tmp_path: Path, monkeypatch) -> None:
    shared = tmp_path / "open"
    shared.mkdir(mode=0o755)
    os.chmod(shared, 0o755)
    monkeypatch.setenv("QUESHOT_RUNTIME_DIR", str(shared))
    with pytest.raises(QueueError, match="mode 0700"):
        runtime_dir()
    monkeypatch.setenv("QUESHOT_RUNTIME_DIR", str(tmp_path / "new" / "place"))
    made = runtime_dir()
    assert made.stat().st_mode & 0o777 == 0o700
    monkeypatch.delenv("QUESHOT_RUNTIME_DIR")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert runtime_dir() == tmp_path / "queshot"


def test_the_socket_is_the_users_alone(meeting_place: Path) -> None:
    with Relay(meeting_place / "t.sock"):
        assert (meeting_place / "t.sock").stat().st_mode & 0o777 == 0o600
    assert not (meeting_place / "t.sock").exists()
