"""The embedded CouchDB stand-in for development, the demo and the tests.

Runs the pouchdb-server pinned in package.json (installed by `npm ci
--ignore-scripts` into the checkout's node_modules) on 127.0.0.1, from a fresh
temporary folder because it writes config.json and log.txt into its working
directory (ARCHITECTURE.md). `python -m queshot.devserver` runs one in the
foreground for `make dev-server`.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .config import DEFAULT_DEV_PORT
from .couch import Couch, CouchError

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
            if answers(self.url):
                return
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

    def wait(self) -> None:
        if self._process:
            self._process.wait()

    def restart(self) -> None:
        """Stop and start again on the same port (and data folder)."""
        self.stop(keep_workdir=True)
        self.start()


def answers(url: str) -> bool:
    """Whether a CouchDB-like server answers at `url` (within about a second)."""
    with Couch(url, timeout=1.0, connect_timeout=1.0) as couch:
        try:
            couch.info()
        except CouchError:
            return False
    return True


def _start_background(port: int, data_dir: str | None, state: Path) -> int:
    """Leave a dev server running after this command (for `make push-designdocs`).
    Prints `started` when it started one (its pid in `state`/pid), `running`
    when one already answered: the Makefile stops only one it started itself
    when the command it started it for fails."""
    url = f"http://127.0.0.1:{port}/"
    if answers(url):
        log.info(f"dev server already answering at {url}")
        print("running", flush=True)
        return 0
    state.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "queshot.devserver", "--port", str(port)]
    if data_dir:
        command += ["--dir", data_dir]
    with open(state / "log.txt", "ab") as out:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True
        )
    (state / "pid").write_text(str(process.pid))
    deadline = time.monotonic() + 20
    while not answers(url):
        if process.poll() is not None or time.monotonic() > deadline:
            log.error(f"queshot dev server: did not start (see {state / 'log.txt'})")
            return 1
        time.sleep(0.1)
    log.info(f"started a dev server at {url} (pid {process.pid}; `make dev-server-stop` stops it)")
    print("started", flush=True)
    return 0


def _stop_background(state: Path) -> int:
    pid_file = state / "pid"
    if not pid_file.exists():
        log.info("no background dev server recorded")
        return 0
    try:
        pid = int(pid_file.read_text())
        os.kill(pid, signal.SIGTERM)
    except (ProcessLookupError, ValueError):
        log.info("the background dev server was not running")
        pid_file.unlink()
        return 0
    deadline = time.monotonic() + 10  # gone, port free, before the next command starts
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    pid_file.unlink()
    if _alive(pid):
        log.error(f"the background dev server (pid {pid}) did not stop within 10 s")
        return 1
    log.info("stopped the background dev server")
    return 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the embedded pouchdb-server (dev only).")
    port = int(os.environ.get("QUESHOT_DEV_PORT") or DEFAULT_DEV_PORT)
    parser.add_argument("--port", type=int, default=port)
    parser.add_argument("--dir", help="keep data on disk here (default: in memory)")
    parser.add_argument("--background", action="store_true", help="start detached unless running")
    parser.add_argument("--stop", action="store_true", help="stop the detached one")
    parser.add_argument(
        "--state", default=".devserver", help="the detached one's pid and log (.devserver)"
    )
    args = parser.parse_args(argv)
    data_dir = str(Path(args.dir).resolve()) if args.dir else None
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if args.stop:
        return _stop_background(Path(args.state))
    if args.background:
        return _start_background(args.port, data_dir, Path(args.state))
    server = DevServer(args.port, data_dir)
    try:
        server.start()
    except RuntimeError as exc:
        log.error(f"queshot dev server: {exc}")
        return 1
    log.info(f"pouchdb-server at {server.url} - Fauxton at {server.url}_utils - Ctrl-C stops it")
    signal.signal(signal.SIGTERM, _interrupt)  # the main thread's finally stops the server
    try:
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
