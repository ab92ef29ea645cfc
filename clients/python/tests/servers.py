"""Real servers for the tests: redis-server (7.0) and valkey-server (8.0) on free loopback
ports, with the module (``$PATTERNS_MODULE``) or without it (the Lua twin), and a 3-master
Cluster (the module on some of its nodes)."""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import List, Optional

from redis import Redis

REPO = Path(__file__).resolve().parents[3]
MAX_PORT = 55535  # the cluster bus listens on port + 10000
BUS_OFFSET = 10000
_handed_out: set = set()


def module_path() -> str:
    path = os.environ.get("PATTERNS_MODULE") or str(REPO / "target/release/libredis_patterns.so")
    if not Path(path).is_file():
        raise RuntimeError(
            f"the module is not built at {path} (make build, or set PATTERNS_MODULE)"
        )
    return path


def _can_bind(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def free_port() -> int:
    """A free port <= 55535 whose bus port is free too, below the ephemeral range."""
    for _ in range(1000):
        port = random.randint(12000, 22000)
        if port in _handed_out or port + BUS_OFFSET in _handed_out:
            continue
        if _can_bind(port) and _can_bind(port + BUS_OFFSET):
            _handed_out.update((port, port + BUS_OFFSET))
            return port
    raise RuntimeError("no free port")


class Server:
    """One server process in a temporary directory, stopped by ``stop()``."""

    def __init__(self, binary: str, module: bool, extra: Optional[List[str]] = None) -> None:
        self.binary = binary
        self.module = module
        self.dir = tempfile.mkdtemp(prefix="patterns-py-")
        self.port = free_port()
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir]
        args += ["--save", "", "--appendonly", "no", "--enable-debug-command", "yes"]
        args += ["--logfile", os.path.join(self.dir, "server.log")]
        if module:
            args += ["--loadmodule", module_path()]
        args += extra or []
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.binary} exited: {self.log()}")
            try:
                with Redis(port=self.port, socket_timeout=1) as r:
                    r.ping()
                    return
            except Exception:
                time.sleep(0.05)
        raise RuntimeError(f"{self.binary} on {self.port} did not start: {self.log()}")

    def log(self) -> str:
        try:
            return Path(self.dir, "server.log").read_text()[-2000:]
        except OSError:
            return ""

    def client(self, **kwargs: object) -> Redis:
        return Redis(port=self.port, **kwargs)  # type: ignore[arg-type]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class Cluster:
    """Three masters, no replicas, every slot assigned; the module on the first ``modules``
    nodes (the first serves slots from 0, so redis-py lists it first among the primaries)."""

    def __init__(self, modules: int) -> None:
        extra = ["--cluster-enabled", "yes", "--cluster-node-timeout", "5000"]
        self.nodes: List[Server] = []
        try:
            for i in range(3):
                self.nodes.append(Server("redis-server", i < modules, extra))
            addrs = [f"127.0.0.1:{n.port}" for n in self.nodes]
            subprocess.run(
                [
                    "redis-cli",
                    "--cluster",
                    "create",
                    *addrs,
                    "--cluster-replicas",
                    "0",
                    "--cluster-yes",
                ],
                check=True,
                capture_output=True,
                timeout=60,
            )
            self._wait_ok()
        except BaseException:
            self.stop()
            raise

    def _wait_ok(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            infos = []
            for n in self.nodes:
                with n.client() as r:
                    infos.append(r.cluster("info"))
            if all(
                i["cluster_state"] == "ok" and int(i["cluster_known_nodes"]) == 3 for i in infos
            ):
                return
            time.sleep(0.1)
        raise RuntimeError("the cluster did not become ok")

    @property
    def port(self) -> int:
        return self.nodes[0].port

    def stop(self) -> None:
        for n in self.nodes:
            n.stop()
