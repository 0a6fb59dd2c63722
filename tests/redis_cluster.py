"""A three-master Redis Cluster on loopback for the cluster tests: started once
per module, each master killed, restarted on its port or frozen at will."""

from __future__ import annotations

import random
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import redis
from conftest import unavailable

START_TIMEOUT = 20.0
COMMAND_TIMEOUT = 10.0
CLUSTER_BUS_OFFSET = 10_000  # redis-server's port for its cluster bus


def require_redis_tools() -> None:
    """Skip unless redis-server and redis-cli are installed (fail in CI)."""
    missing = [tool for tool in ("redis-server", "redis-cli") if not shutil.which(tool)]
    if missing:
        unavailable(" and ".join(missing), "not on PATH")


def cluster_port() -> int:
    """A free port whose cluster bus port (10,000 higher) is free too."""
    while True:
        port = random.randrange(20_000, 30_000)
        try:
            for candidate in (port, port + CLUSTER_BUS_OFFSET):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port


class RedisCluster:
    """Masters on free ports, joined by ``redis-cli --cluster create``, each
    with its ``nodes-<port>.conf`` so a restart rejoins as the same node."""

    def __init__(self, directory: Path, masters: int = 3) -> None:
        self.directory = directory
        self.ports = [cluster_port() for _ in range(masters)]
        self.procs: dict[int, subprocess.Popen] = {}
        self.url = f"redis+cluster://127.0.0.1:{self.ports[0]}"

    def start(self) -> RedisCluster:
        try:
            return self._create()
        except BaseException:
            self.stop()
            raise

    def _create(self) -> RedisCluster:
        for port in self.ports:
            self.launch(port)
        self.wait(lambda: all(self.answers(port) for port in self.ports))
        addresses = [f"127.0.0.1:{port}" for port in self.ports]
        subprocess.run(
            ["redis-cli", "--cluster", "create", *addresses,
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True, capture_output=True, timeout=COMMAND_TIMEOUT,
        )  # fmt: skip
        self.wait(self.ok)
        return self

    def launch(self, port: int) -> None:
        log = (self.directory / f"redis-{port}.log").open("ab")
        self.procs[port] = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
             "--cluster-enabled", "yes",
             "--cluster-config-file", str(self.directory / f"nodes-{port}.conf"),
             "--save", "", "--appendonly", "no", "--daemonize", "no"],
            stdout=log, stderr=log, cwd=self.directory,
        )  # fmt: skip
        log.close()

    def info(self, port: int, command: str = "CLUSTER INFO") -> str:
        with redis.Redis(port=port, socket_timeout=1, decode_responses=True) as r:
            return r.execute_command(*command.split())

    def answers(self, port: int) -> bool:
        try:
            self.info(port, "PING")
        except redis.RedisError:
            return False
        return True

    def ok(self) -> bool:
        """Whether every master says ``cluster_state:ok``."""
        try:
            return all("cluster_state:ok" in self.info(port) for port in self.ports)
        except redis.RedisError:
            return False

    def wait(self, check, within: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + within
        while not check():
            if time.monotonic() > deadline:
                raise TimeoutError(f"redis cluster {self.ports} not ready")
            time.sleep(0.05)

    def kill(self, port: int) -> None:
        proc = self.procs[port]
        proc.kill()
        proc.wait(COMMAND_TIMEOUT)

    def restart(self, port: int) -> None:
        """Start a killed master again on its port, then wait for the cluster."""
        self.launch(port)
        self.wait(self.ok)

    def freeze(self, port: int) -> None:
        self.procs[port].send_signal(signal.SIGSTOP)

    def thaw(self, port: int) -> None:
        self.procs[port].send_signal(signal.SIGCONT)

    def stop(self) -> None:
        for port, proc in self.procs.items():
            self.thaw(port)
            proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(COMMAND_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
