"""Throwaway Apache CouchDB nodes and clusters, started from a CouchDB release's
`bin/couchdb` (`COUCHDB_BIN`): what the tests and the benchmark run against
when they are to be judged on the real server rather than the stand-in.

Each node lives in a temporary folder of its own: its `local.ini` (listening
on 127.0.0.1 only, an admin with a generated password, data and log in that
folder) is given with `COUCHDB_INI_FILES` after the release's `default.ini`,
its `vm.args` (node name, cookie, one fixed distribution port) with
`COUCHDB_ARGS_FILE`, so the release itself is never changed. Every node of one
`LocalCluster` shares an `epmd` on a port of its own, which is stopped with
the cluster. A cluster is joined the way that works on loopback: each other
node PUT into the first one's `/_node/_local/_nodes`, then `finish_cluster`
(`_cluster_setup`'s `enable_cluster`/`add_node` refuse a 127.0.0.1 bind).
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

from .couch import Couch, CouchError
from .devserver import free_port

log = logging.getLogger(__name__)

ADMIN = "admin"


class LocalCouchError(RuntimeError):
    """A local CouchDB that could not be started; the message says where its log is."""


def release_root(binary: str | Path) -> Path:
    """The release folder of a `bin/couchdb` (it holds `etc/default.ini`)."""
    path = Path(binary).expanduser().resolve()
    root = path.parent.parent
    if not path.is_file() or not (root / "etc" / "default.ini").is_file():
        raise LocalCouchError(
            f"COUCHDB_BIN={binary}: not the bin/couchdb of a CouchDB release "
            "(expected etc/default.ini beside its bin/)"
        )
    return root


def _epmd(root: Path) -> Path | None:
    found = sorted(root.glob("erts-*/bin/epmd"))
    return found[0] if found else None


class CouchNode:
    """One CouchDB node in `workdir`. `url` carries the admin's credentials;
    `stop(keep_workdir=True)` and `start()` keep its data, like a restart."""

    def __init__(
        self,
        binary: str | Path,
        workdir: Path,
        *,
        name: str = "couchdb",
        password: str,
        cookie: str,
        epmd_port: int,
        single_node: bool = True,
        cluster_n: int = 1,
        uuid: str,
        secret: str,
    ) -> None:
        self.root = release_root(binary)
        self.binary = Path(binary).expanduser().resolve()
        self.workdir = workdir
        self.node_name = f"{name}@127.0.0.1"
        self.port = free_port()
        self.dist_port = free_port()
        self.password = password
        self.url = f"http://{ADMIN}:{password}@127.0.0.1:{self.port}/"
        self._cookie = cookie
        self._epmd_port = epmd_port
        self._single_node = single_node
        self._cluster_n = cluster_n
        self._uuid = uuid
        self._secret = secret
        self._process: subprocess.Popen | None = None
        self._write_config()

    def __repr__(self) -> str:
        return f"CouchNode({self.node_name}, port {self.port})"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def log_file(self) -> Path:
        return self.workdir / "couch.log"

    def _write_config(self) -> None:
        data = self.workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        (self.workdir / "local.ini").write_text(
            "\n".join(
                [
                    "[couchdb]",
                    f"single_node = {'true' if self._single_node else 'false'}",
                    f"database_dir = {data}",
                    f"view_index_dir = {data}",
                    f"state_dir = {data}",
                    f"uuid = {self._uuid}",
                    "js_engine = quickjs",
                    "[cluster]",
                    f"n = {self._cluster_n}",
                    "[chttpd]",
                    "bind_address = 127.0.0.1",
                    f"port = {self.port}",
                    "[chttpd_auth]",
                    f"secret = {self._secret}",
                    "[admins]",
                    f"{ADMIN} = {self.password}",
                    "[log]",
                    "writer = file",
                    f"file = {self.log_file}",
                    "level = warning",
                    "",
                ]
            )
        )
        (self.workdir / "vm.args").write_text(
            "\n".join(
                [
                    f"-name {self.node_name}",
                    f"-setcookie {self._cookie}",
                    f"-kernel inet_dist_listen_min {self.dist_port}",
                    f"-kernel inet_dist_listen_max {self.dist_port}",
                    "-kernel inet_dist_use_interface {127,0,0,1}",
                    "-kernel prevent_overlapping_partitions false",
                    "-kernel error_logger silent",
                    "-sasl sasl_error_logger false",
                    "-os_mon start_cpu_sup false",
                    "-os_mon start_memsup false",
                    "+Bd",
                    "-noinput",
                    "",
                ]
            )
        )

    def start(self, timeout: float = 60.0) -> None:
        env = dict(
            os.environ,
            COUCHDB_INI_FILES=f"{self.root / 'etc' / 'default.ini'} {self.workdir / 'local.ini'}",
            COUCHDB_ARGS_FILE=str(self.workdir / "vm.args"),
            ERL_EPMD_PORT=str(self._epmd_port),
            ERL_EPMD_ADDRESS="127.0.0.1",
            HOME=str(self.workdir),
        )
        with (self.workdir / "stderr.log").open("ab") as out:
            self._process = subprocess.Popen(
                [str(self.binary)],
                cwd=self.workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        with Couch(self.url, timeout=2.0, connect_timeout=1.0) as couch:
            while time.monotonic() < deadline:
                if self._process.poll() is not None:
                    raise LocalCouchError(
                        f"CouchDB node {self.node_name} exited with {self._process.returncode} "
                        f"(logs in {self.workdir})"
                    )
                try:
                    couch.json("GET", "/_up")
                    log.info("CouchDB %s on port %d (pid %s)", self.node_name, self.port, self.pid)
                    return
                except CouchError:
                    time.sleep(0.2)
        self.stop(keep_workdir=True)
        raise LocalCouchError(
            f"CouchDB node {self.node_name} did not answer within {timeout} s "
            f"(logs in {self.workdir})"
        )

    def stop(self, *, keep_workdir: bool = True) -> None:
        """Stop the node (SIGTERM, then SIGKILL of its process group)."""
        process, self._process = self._process, None
        if process and process.poll() is None:
            process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(20)
        if process:
            with contextlib.suppress(ProcessLookupError):  # query servers that outlived it
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        if not keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def restart(self) -> None:
        self.stop(keep_workdir=True)
        self.start()


class LocalCluster:
    """`size` CouchDB nodes from one release, joined into one cluster (n =
    `size`; a single node is started with `single_node = true` instead).
    `urls` are the nodes' URLs with the admin's credentials; `url` the first."""

    def __init__(self, binary: str | Path, size: int = 1) -> None:
        self.binary = binary
        self.size = size
        self._top = Path(tempfile.mkdtemp(prefix="queshot-couchdb-"))
        self._epmd_port = free_port()
        password = secrets.token_hex(12)
        cookie, uuid, secret = secrets.token_hex(16), secrets.token_hex(16), secrets.token_hex(16)
        self.nodes = [
            CouchNode(
                binary,
                self._top / f"node{i + 1}",
                name=f"node{i + 1}" if size > 1 else "couchdb",
                password=password,
                cookie=cookie,
                epmd_port=self._epmd_port,
                single_node=size == 1,
                cluster_n=size,
                uuid=uuid,
                secret=secret,
            )
            for i in range(size)
        ]

    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return self.nodes[0].url

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    def start(self) -> None:
        try:
            for node in self.nodes:
                node.start()
            if self.size > 1:
                self._join()
        except BaseException:
            self.stop()
            raise

    def _join(self, timeout: float = 60.0) -> None:
        first, others = self.nodes[0], self.nodes[1:]
        with Couch(first.url) as couch:
            for node in others:
                couch.json("PUT", f"/_node/_local/_nodes/{quote(node.node_name)}", body={})
            couch.json("POST", "/_cluster_setup", body={"action": "finish_cluster"})
        wanted = sorted(node.node_name for node in self.nodes)
        deadline = time.monotonic() + timeout
        for node in self.nodes:
            with Couch(node.url) as couch:
                while True:
                    membership = couch.json("GET", "/_membership")
                    if (
                        sorted(membership.get("all_nodes", [])) == wanted
                        and sorted(membership.get("cluster_nodes", [])) == wanted
                    ):
                        break
                    if time.monotonic() > deadline:
                        raise LocalCouchError(f"cluster did not form: {membership}")
                    time.sleep(0.2)
        log.info("CouchDB cluster of %d nodes formed", self.size)

    def stop(self) -> None:
        """Stop every node, the cluster's epmd, and remove their folders."""
        for node in self.nodes:
            node.stop(keep_workdir=True)
        epmd = _epmd(self.nodes[0].root) if self.nodes else None
        if epmd is not None:
            subprocess.run(
                [str(epmd), "-port", str(self._epmd_port), "-kill"],
                env=dict(os.environ, ERL_EPMD_PORT=str(self._epmd_port)),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                check=False,
            )
        shutil.rmtree(self._top, ignore_errors=True)
