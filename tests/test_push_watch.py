"""`queshot push --watch`: design docs follow their source files on a real server."""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import wait_until

from queshot import designdocs, sync
from queshot.couch import Couch, Database

LINE = "emit(deadline(doc), doc.worker_id);"


@pytest.fixture
def source(tmp_path: Path) -> Path:
    copy = tmp_path / "designdocs"
    shutil.copytree(designdocs.default_source(), copy)
    return copy


@pytest.fixture
def watching(couch: Couch, db_name: str, source: Path) -> Iterator[list[sync.PushResult]]:
    """`watch` running in a thread; yields the results it reported."""
    results: list[sync.PushResult] = []
    stop = threading.Event()
    failures: list[BaseException] = []

    def run() -> None:
        try:
            sync.watch(couch, [db_name], source, debounce=0.1, stop=stop, on_result=results.append)
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    yield results
    stop.set()
    thread.join(10)
    assert not thread.is_alive()
    assert not failures


def leases_map(db: Database) -> str:
    doc = db.get_or_none("_design/queshot")
    return doc["views"]["leases"]["map"] if doc else ""


def test_saves_are_pushed_and_broken_ones_are_not(
    watching: list[sync.PushResult],
    couch: Couch,
    db_name: str,
    source: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="queshot.designdocs")
    db = couch.database(db_name)
    view = source / "queshot" / "views" / "leases" / "map.js"
    original = view.read_text()
    wait_until(lambda: LINE in leases_map(db), timeout=10.0, every=0.05)
    # reported once the whole push is done: the other design doc comes after it
    wait_until(
        lambda: ("_design/queshot", "created") in [(r.target, r.action) for r in watching],
        timeout=10.0,
        every=0.05,
    )

    view.write_text(original.replace(LINE, "emit(deadline(doc), 'edited');"))
    wait_until(lambda: "'edited'" in leases_map(db), timeout=10.0, every=0.05)
    rev = db.get("_design/queshot")["_rev"]

    view.write_text(original.replace(LINE, "emit(deadline(doc), 'broken';"))
    wait_until(
        lambda: any(r.levelno == logging.ERROR for r in caplog.records), timeout=10.0, every=0.05
    )
    [error] = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert error.startswith("not pushed, the server keeps the previous design docs: ")
    assert str(view) in error
    assert db.get("_design/queshot")["_rev"] == rev

    view.write_text(original.replace(LINE, "emit(deadline(doc), 'fixed');"))
    wait_until(lambda: "'fixed'" in leases_map(db), timeout=10.0, every=0.05)
    assert db.view("queshot", "leases")["rows"] == []  # the new index answers
