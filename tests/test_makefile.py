"""The Makefile's dev-server targets honour QUESHOT_DEV_PORT (the server
starts where queshot then looks), and a target that fails leaves no server
behind that it started itself. Runs `make` on the embedded pouchdb-server,
on a free port, with the server's files in a temporary folder (DEV_DIR), so
that a developer's own dev server is left alone."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from queshot.couch import Couch
from queshot.devserver import answers, free_port

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


@pytest.fixture
def dev(tmp_path: Path) -> Iterator[tuple[dict[str, str], str]]:
    """The environment for `make` (a free QUESHOT_DEV_PORT, DEV_DIR in
    tmp_path, no COUCHDB_URL) and the URL it names; any server left running
    is stopped afterwards."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("COUCHDB_URL", "QUESHOT_DB")}
    env.update(QUESHOT_DEV_PORT=str(port), DEV_DIR=str(tmp_path / "devserver"))
    yield env, f"http://127.0.0.1:{port}/"
    make(env, "dev-server-stop")


def make(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_push_designdocs_starts_the_server_on_queshot_dev_port(
    dev: tuple[dict[str, str], str],
) -> None:
    env, url = dev
    result = make(env, "push-designdocs")
    assert result.returncode == 0, result.stderr
    assert f"dashboard: {url}queshot/_design/queshot/index.html" in result.stdout
    with Couch(url) as couch:  # left running, provisioned, for Fauxton
        assert couch.database("queshot").get("_design/queshot")["_id"] == "_design/queshot"
    assert make(env, "dev-server-stop").returncode == 0
    assert not answers(url)


def test_a_failing_target_leaves_no_server_it_started(dev: tuple[dict[str, str], str]) -> None:
    env, url = dev
    result = make({**env, "QUESHOT_DB": "Not-A-Name"}, "push-designdocs")
    assert result.returncode != 0
    assert "invalid database name 'Not-A-Name'" in result.stderr
    assert not answers(url)


def test_a_failing_target_leaves_a_server_it_found_running(
    dev: tuple[dict[str, str], str],
) -> None:
    env, url = dev
    assert make(env, "push-designdocs").returncode == 0
    assert make({**env, "QUESHOT_DB": "Not-A-Name"}, "push-designdocs").returncode != 0
    assert answers(url)


def test_make_demo_on_another_port(dev: tuple[dict[str, str], str]) -> None:
    env, url = dev
    result = make(env, "demo")
    assert result.returncode == 0, result.stderr
    assert f"queshot demo on {url}" in result.stdout
    assert f"{url}_utils/#database/queshot_demo/_all_docs" in result.stdout
