"""The command line, run as real processes: createuser, serve, bad settings."""

from __future__ import annotations

import gc
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.error import HTTPError

import pytest
from aiohttp import web

import chatsio
from chatsio.cli import GC_YOUNG_THRESHOLD, settle_gc

SOURCE_ROOT = Path(chatsio.__file__).resolve().parent.parent
RUN_TIMEOUT = 30.0  # one short command: start Python, touch the database, exit
READY_TIMEOUT = 20.0  # serve: until the port accepts connections
STOP_TIMEOUT = 10.0  # serve: from SIGTERM to exit
PASSWORD = "correct horse"
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def environment(**settings: str) -> dict[str, str]:
    """A clean environment: none of the caller's chatsio settings leak in."""
    return {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(SOURCE_ROOT),
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        **settings,
    }


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "chatsio", *args]


def run(
    cwd: Path, *args: str, input: str | None = None, **settings: str
) -> subprocess.CompletedProcess:
    """Run one command; its standard input is ``input``, else empty, never ours."""
    return subprocess.run(
        command(*args),
        cwd=cwd,
        env=environment(**settings),
        input=input,
        stdin=subprocess.DEVNULL if input is None else None,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )


def one_line(stream: str) -> str:
    lines = stream.strip().splitlines()
    assert len(lines) == 1, stream
    return lines[0]


def users_in(database: Path) -> dict[str, bool]:
    with closing(sqlite3.connect(database)) as conn:
        rows = conn.execute("SELECT username, is_admin FROM users").fetchall()
    return {name: bool(admin) for name, admin in rows}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def post(url: str, body: Any) -> tuple[int, Any]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with NO_PROXY.open(request, timeout=10) as response:
            return response.status, json.load(response)
    except HTTPError as error:
        with error:
            return error.code, json.load(error)


@dataclass
class Server:
    process: subprocess.Popen
    url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text()


def wait_until_listening(server: Server, port: int) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"serve exited early:\n{server.output()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"serve did not listen within {READY_TIMEOUT}s:\n{server.output()}")


@contextmanager
def serving(cwd: Path, log: Path, **settings: str) -> Iterator[Server]:
    """Run ``chatsio serve`` on a free port until the block ends, then SIGTERM it."""
    port = free_port()
    with log.open("w") as sink:
        process = subprocess.Popen(
            command("serve", "--port", str(port)),
            cwd=cwd,
            env=environment(**settings),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    server = Server(process, f"http://127.0.0.1:{port}", log)
    try:
        wait_until_listening(server, port)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT)
            pytest.fail(f"serve ignored SIGTERM for {STOP_TIMEOUT}s")


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """The working directory the commands run in, apart from their logs."""
    path = tmp_path / "site"
    path.mkdir()
    return path


def test_createuser_adds_users_and_admins_and_deleteuser_removes_them(
    site: Path,
) -> None:
    made = run(site, "createuser", "alice", "--password", PASSWORD)
    assert made.returncode == 0, made.stderr
    # No DATABASE_URL: the SQLite file chatsio.db in the working directory,
    # named in full so that nobody wonders where the user went.
    database = f"sqlite:///{site / 'chatsio.db'}"
    assert made.stdout.strip() == f"created user alice in {database}"
    admin = run(site, "createuser", "root", "--password", PASSWORD, "--admin")
    assert admin.returncode == 0, admin.stderr
    assert admin.stdout.strip() == f"created user root (admin) in {database}"
    assert users_in(site / "chatsio.db") == {"alice": False, "root": True}
    gone = run(site, "deleteuser", "alice")
    assert gone.returncode == 0, gone.stderr
    assert gone.stdout.strip() == f"deleted user alice from {database}"
    assert users_in(site / "chatsio.db") == {"root": True}


def test_createuser_of_a_taken_name_fails_with_one_line(site: Path) -> None:
    assert run(site, "createuser", "alice", "--password", PASSWORD).returncode == 0
    again = run(
        site, "createuser", "alice", "--password", "another password", "--admin"
    )
    assert again.returncode != 0
    assert "alice" in one_line(again.stderr)
    assert "Traceback" not in again.stderr and again.stdout == ""
    assert users_in(site / "chatsio.db") == {"alice": False}


def test_createuser_with_a_bad_password_fails_with_one_line(site: Path) -> None:
    short = run(site, "createuser", "bob", "--password", "short")
    assert short.returncode != 0
    assert "password" in one_line(short.stderr)
    assert "Traceback" not in short.stderr


@pytest.mark.parametrize(
    ("args", "settings", "key"),
    [
        pytest.param(("serve",), {"PORT": "abc"}, "PORT", id="env-port"),
        pytest.param(("serve", "--port", "70000"), {}, "PORT", id="flag-port"),
        pytest.param(
            ("serve",), {"DATABASE_URL": "mysql://x"}, "DATABASE_URL", id="env-url"
        ),
        pytest.param(
            ("createuser", "a", "--password", PASSWORD),
            {"CHATSIO_TOKEN_TTL": "5"},
            "CHATSIO_TOKEN_TTL",
            id="createuser-ttl",
        ),
    ],
)
def test_a_bad_setting_exits_2_with_one_line_naming_it(
    site: Path, args: tuple[str, ...], settings: dict[str, str], key: str
) -> None:
    done = run(site, *args, **settings)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert key in one_line(done.stderr)
    assert not (site / "chatsio.db").exists()


def test_serve_uses_sqlite_in_its_cwd_and_stops_on_sigterm(
    site: Path, tmp_path: Path
) -> None:
    with serving(site, tmp_path / "serve.log") as server:
        status, body = post(
            f"{server.url}/api/users", {"username": "alice", "password": PASSWORD}
        )
        assert (status, body) == (201, {"username": "alice"})
        status, body = post(
            f"{server.url}/api/tokens", {"username": "alice", "password": PASSWORD}
        )
        assert status == 200 and body["username"] == "alice" and body["token"]
        assert users_in(site / "chatsio.db") == {"alice": False}
    assert server.process.returncode == 0, server.output()
    assert "Traceback" not in server.output()


def test_closed_registration_still_lets_the_operator_create_users(
    site: Path, tmp_path: Path
) -> None:
    closed = {"CHATSIO_REGISTRATION_OPEN": "false"}
    with serving(site, tmp_path / "serve.log", **closed) as server:
        credentials = {"username": "alice", "password": PASSWORD}
        status, body = post(f"{server.url}/api/users", credentials)
        assert status == 403 and body["error"]["code"] == "forbidden", body

        made = run(site, "createuser", "alice", "--password", PASSWORD, **closed)
        assert made.returncode == 0, made.stderr
        status, body = post(f"{server.url}/api/tokens", credentials)
        assert status == 200 and body["username"] == "alice", body
    assert server.process.returncode == 0, server.output()


async def test_serve_settles_the_garbage_collector_once_started() -> None:
    """What start-up made is frozen, and young objects are collected less often
    (the hook ``serve`` adds after the app's own start-up)."""
    threshold = gc.get_threshold()
    try:
        await settle_gc(web.Application())
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, *threshold[1:])
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
