"""Every example in README.md, run verbatim against a live ``chatsio serve``.

Each example runs on its own fresh server, as a user would run it: from the
directory the server runs in (where ``.venv`` is chatsio's environment), with
only ``URL`` pointing at the server's port. Blocks marked ``not run`` (the run
and test commands, deployment recipes) are checked by the tests they name.
"""

from __future__ import annotations

import ast
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.error import URLError

import pytest
from readme import Block, blocks

READY_TIMEOUT = 20.0  # s, until the server answers its health check
RUN_TIMEOUT = 60.0  # s, one example (it hashes a few passwords)
STOP_TIMEOUT = 10.0  # s, from SIGTERM to exit
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
FILE_URL = r"/api/files/[0-9a-f-]{36}"


def examples() -> dict[str, Block]:
    return {block.example: block for block in blocks() if block.example}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def healthy(url: str) -> bool:
    try:
        with NO_PROXY.open(f"{url}/api/health", timeout=1) as response:
            return response.status == 200
    except (URLError, OSError):
        return False


def environment(url: str) -> dict[str, str]:
    """A user's shell: no chatsio settings, only where the server is."""
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8",
        "URL": url,
    }


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """``chatsio serve`` on its defaults but the port, in a directory of its own."""
    (tmp_path / ".venv").symlink_to(sys.prefix)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "server.log"
    with log.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "chatsio", "serve", "--port", str(port)],
            cwd=tmp_path,
            env=environment(url),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while not healthy(url):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"chatsio serve did not start:\n{log.read_text()}")
            time.sleep(0.05)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT)


def run(block: Block, url: str, cwd: Path) -> subprocess.CompletedProcess:
    """The block's code as it stands in the README, in a shell or in Python.

    Stricter than a user's session: an unset shell variable is an error, and
    Python reports every unclosed socket or file (on stderr, which must stay
    empty).
    """
    if block.language == "python":
        command = [sys.executable, "-W", "always::ResourceWarning", "-c", block.code]
    else:
        command = ["bash", "-u", "-c", block.code]
    return subprocess.run(
        command,
        cwd=cwd,
        env=environment(url),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )


def test_the_readme_has_its_examples():
    assert set(examples()) == {"python-client", "rest"}


def test_the_python_client_needs_only_python_socketio_and_aiohttp():
    """What the README's ``pip install "python-socketio[asyncio_client]"`` brings."""
    tree = ast.parse(examples()["python-client"].code)
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
    }
    assert imported - set(sys.stdlib_module_names) == {"socketio", "aiohttp"}


def test_the_python_client_keeps_the_house_style(tmp_path: Path):
    """Formatted and lint-clean as the project's own code, 88 columns."""
    ruff = Path(sys.executable).with_name("ruff")
    settings = Path(__file__).resolve().parent.parent / "ruff.toml"
    source = tmp_path / "client.py"
    source.write_text(examples()["python-client"].code)
    for check in (["check", "--no-cache"], ["format", "--check", "--no-cache"]):
        result = subprocess.run(
            [ruff, *check, "--config", settings, source],
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_the_python_client_chats_and_closes_cleanly(server: str, tmp_path: Path):
    result = run(examples()["python-client"], server, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no traceback, no "Unclosed client session"
    lines = result.stdout.splitlines()
    expected = [
        r"alice sent 'hi bob' seq 1",
        r"bob got 'hi bob' from alice",
        rf"alice sent a file: {FILE_URL}",
        r"bob downloaded notes\.txt b'pizza\\n'",
    ]
    assert len(lines) == len(expected), result.stdout
    for line, pattern in zip(lines, expected, strict=True):
        assert re.fullmatch(pattern, line), (line, pattern)


def test_the_rest_session_answers_every_route(server: str, tmp_path: Path):
    block = examples()["rest"]
    result = run(block, server, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    statuses = [int(m[1]) for line in lines if (m := re.search(r" (\d{3})$", line))]
    assert statuses == [
        201,
        201,
        200,
        200,
        200,
        201,
        200,
        200,
        200,
        204,
        204,
        202,
        200,
    ], lines
    assert 'chatsio_messages_stored_total{kind="message"} 1.0' in lines
    # Every route the server describes is in a comment of the block, but the
    # file download (the Python client's) and the page.
    described = set(lines[-1].split())
    commented = set(re.findall(r"^# [A-Z]+ (/\S*?):", block.code, re.MULTILINE))
    assert described - commented == {"/api/files/{file_id}", "/"}, described
