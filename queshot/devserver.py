"""The embedded CouchDB stand-in for development, the demo and the tests.

Runs the pouchdb-server pinned in package.json (installed by `npm ci
--ignore-scripts` into the checkout's node_modules) on 127.0.0.1, from a fresh
temporary folder because it writes config.json and log.txt into its working
directory (COUCH-NOTES.md). `python -m queshot.devserver` runs one in the
foreground for `make dev-server`.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from .config import DEFAULT_DEV_PORT

log = logging.getLogger(__name__)

CHECKOUT = Path(__file__).resolve().parent.parent


def pouchdb_server_binary() -> Path:
    for root in (Path.cwd(), CHECKOUT):
        binary = root / "node_modules" / ".bin" / "pouchdb-server"
        if binary.exists():
            return binary
    raise RuntimeError(
        "pouchdb-server is not installed: run `npm ci --ignore-scripts` in the queshot "
        "checkout (or `make setup`), or set COUCHDB_URL to use a real CouchDB"
    )


def free_port() -> int:
    """A free loopback port (pouchdb-server's `--port 0` does not pick one)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class DevServer:
    """A pouchdb-server process: in memory, or on disk in `data_dir` so that
    data survives a restart (the chaos test restarts it)."""

    def __init__(self, port: int | None = None, data_dir: Path | str | None = None) -> None:
        self.port = port or free_port()
        self.data_dir = Path(data_dir) if data_dir else None
        self.url = f"http://127.0.0.1:{self.port}/"
        self._workdir: str | None = None
        self._process: subprocess.Popen | None = None

    def __enter__(self) -> DevServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self, timeout: float = 20.0) -> str:
        self._workdir = self._workdir or tempfile.mkdtemp(prefix="queshot-devserver-")
        storage = ["--dir", str(self.data_dir)] if self.data_dir else ["--in-memory"]
        if self.data_dir:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        command = [str(pouchdb_server_binary()), *storage]
        command += ["--host", "127.0.0.1", "--port", str(self.port), "-n"]
        env = dict(os.environ, NODE_OPTIONS="--unhandled-rejections=warn")
        self._process = subprocess.Popen(
            command,
            cwd=self._workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._wait_ready(timeout)
        log.info("pouchdb-server running at %s (pid %s)", self.url, self._process.pid)
        return self.url

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"pouchdb-server exited with {self._process.returncode} "
                    f"(log in {self._workdir}/log.txt)"
                )
            try:
                httpx.get(self.url, timeout=1.0, headers={"Accept": "application/json"})
                return
            except httpx.TransportError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"pouchdb-server did not answer on {self.url} within {timeout} s")

    def stop(self, *, keep_workdir: bool = False) -> None:
        """Stop the process (gracefully, then by force)."""
        if self._process and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None
        if self._workdir and not keep_workdir:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def restart(self) -> None:
        """Stop and start again on the same port (and data folder)."""
        self.stop(keep_workdir=True)
        self.start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the embedded pouchdb-server (dev only).")
    port = int(os.environ.get("QUESHOT_DEV_PORT") or DEFAULT_DEV_PORT)
    parser.add_argument("--port", type=int, default=port)
    parser.add_argument("--dir", help="keep data on disk here (default: in memory)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    server = DevServer(args.port, args.dir)
    try:
        server.start()
    except RuntimeError as exc:
        print(f"queshot dev server: {exc}", file=sys.stderr)
        return 1
    print(f"pouchdb-server at {server.url} - Fauxton at {server.url}_utils - Ctrl-C stops it")
    try:
        server._process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
