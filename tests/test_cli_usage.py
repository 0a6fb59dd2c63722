"""The command line as a person meets it: help, version, passwords never on it."""

from __future__ import annotations

import argparse
import io
import os
import re
import select
import signal
import sqlite3
import subprocess
import time
from contextlib import closing, redirect_stdout
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from test_cli import PASSWORD, RUN_TIMEOUT, command, environment, one_line, run

import chatsio
from chatsio.arguments import parser
from chatsio.cli import main
from chatsio.config import SETTINGS

COMMANDS = ("serve", "createuser", "deleteuser", "notify")


def password_hash(database: Path, name: str) -> str | None:
    with closing(sqlite3.connect(database)) as conn:
        row = conn.execute(
            "SELECT password_hash FROM users WHERE username = ?", (name,)
        ).fetchone()
    return row and row[0]


def on_a_terminal(cwd: Path, *args: str, answers: list[str]) -> tuple[int, str]:
    """Run a command on a terminal of its own, typing one answer per password
    prompt as it appears; return its exit status and all it wrote there."""
    controller, terminal = os.openpty()
    process = subprocess.Popen(
        command(*args),
        cwd=cwd,
        env=environment(),
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        # A session of its own has no controlling terminal, so getpass reads
        # this one (its stdin) and never the terminal running the tests.
        start_new_session=True,
    )
    os.close(terminal)
    seen, typed = b"", 0
    deadline = time.monotonic() + RUN_TIMEOUT
    try:
        while (left := deadline - time.monotonic()) > 0:
            if not select.select([controller], [], [], left)[0]:
                break
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # EIO: the command ended and closed the terminal
                break
            seen += chunk
            if seen.count(b"assword") > typed and typed < len(answers):
                os.write(controller, answers[typed].encode() + b"\n")
                typed += 1
        status = process.wait(timeout=max(deadline - time.monotonic(), 0.1))
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait()
        os.close(controller)
    return status, seen.decode().replace("\r\n", "\n")


def printed(*args: str) -> str:
    """What ``chatsio ARGS`` prints before it exits 0 (help, version)."""
    with pytest.raises(SystemExit) as stop, redirect_stdout(io.StringIO()) as out:
        main(list(args))
    assert stop.value.code == 0
    return out.getvalue()


def test_version() -> None:
    assert printed("--version") == f"chatsio {chatsio.__version__}\n"


def test_help_lists_every_command_in_plain_words() -> None:
    shown = printed("--help")
    assert "``" not in shown and ":ref:" not in shown
    for name in COMMANDS:
        assert re.search(rf"^ +{name} +[a-z]+ \w+", shown, re.M), name


def test_every_argument_has_help() -> None:
    root = parser()
    commands = next(
        action
        for action in root._actions
        if isinstance(action, argparse._SubParsersAction)
    )
    assert set(commands.choices) == set(COMMANDS)
    for name, sub in [("chatsio", root), *commands.choices.items()]:
        for action in sub._actions:
            assert action.help, f"{name} {action.dest} has no help"


def test_serve_help_lists_every_setting_with_its_default() -> None:
    shown = printed("serve", "--help")
    rows = {
        match[1]: match[2]
        for match in re.finditer(r"^  ([A-Z][A-Z_]+) {2,}(\S.*)$", shown, re.M)
    }
    assert set(rows) == {setting.env for setting in SETTINGS}
    assert rows["PORT"] == "8080"
    assert rows["HOST"] == "127.0.0.1"
    assert rows["DATABASE_URL"].startswith("sqlite:///chatsio.db")
    assert rows["CHATSIO_RATE_LIMIT"] == "20"
    assert rows["CHATSIO_REGISTRATION_OPEN"] == "true"
    assert rows["REDIS_URL"].startswith("unset")
    assert rows["CHATSIO_CORS_ORIGINS"].startswith("none")


def test_createuser_reads_the_password_from_stdin(tmp_path: Path) -> None:
    done = run(tmp_path, "createuser", "alice", input=f"{PASSWORD}\n")
    assert done.returncode == 0, done.stderr
    database = tmp_path / "chatsio.db"
    assert one_line(done.stdout) == f"created user alice in sqlite:///{database}"
    assert done.stderr == ""  # nor the password anywhere
    assert PasswordHasher().verify(password_hash(database, "alice"), PASSWORD)


def test_createuser_with_nothing_on_stdin_creates_nobody(tmp_path: Path) -> None:
    done = run(tmp_path, "createuser", "alice", input="")
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "password" in one_line(done.stderr)
    assert not (tmp_path / "chatsio.db").exists()


def test_createuser_asks_twice_on_a_terminal(tmp_path: Path) -> None:
    status, shown = on_a_terminal(
        tmp_path, "createuser", "alice", answers=[PASSWORD, PASSWORD]
    )
    assert status == 0, shown
    assert shown.count("assword") == 2 and PASSWORD not in shown  # not echoed
    assert shown.rstrip().endswith(
        f"created user alice in sqlite:///{tmp_path}/chatsio.db"
    )
    hashed = password_hash(tmp_path / "chatsio.db", "alice")
    assert PasswordHasher().verify(hashed, PASSWORD)


def test_createuser_refuses_two_different_passwords(tmp_path: Path) -> None:
    status, shown = on_a_terminal(
        tmp_path, "createuser", "alice", answers=[PASSWORD, "correct horse!"]
    )
    assert status == 1, shown
    assert "match" in shown.splitlines()[-1]
    assert not (tmp_path / "chatsio.db").exists()


async def test_createuser_names_a_postgresql_database_without_its_password(
    tmp_path: Path, postgres_url: str
) -> None:
    secret = "hunter2-is-not-a-password"  # trust auth: sent, never needed
    url = postgres_url.replace("postgres@", f"postgres:{secret}@", 1)
    done = run(tmp_path, "createuser", "alice", input=f"{PASSWORD}\n", DATABASE_URL=url)
    assert done.returncode == 0, done.stderr
    shown = postgres_url.replace(
        "postgresql+asyncpg://postgres@", "postgresql://postgres:***@"
    )
    assert one_line(done.stdout) == f"created user alice in {shown}"
    assert secret not in done.stdout + done.stderr
