"""The wheel is the whole product: built as a user builds it, installed into a
fresh venv, it serves the demo page with no Node, no npm and no checkout.

The page's Socket.IO client is pinned in static/package.json and shipped as a
copy in static/vendor/; the copy must be the pinned npm package's own files.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from conftest import IN_CI
from page_fixtures import (
    ARGS,
    CHROMIUM,
    DESKTOP,
    PHONE,
    WAIT,
    Watch,
    expect_once,
    open_page,
    say,
    sign_in,
)
from playwright.async_api import Browser, async_playwright, expect

ROOT = Path(__file__).resolve().parent.parent
STATIC = ROOT / "static"
VENDOR = STATIC / "vendor" / "socket.io-client"
NPM_PACKAGE = STATIC / "node_modules" / "socket.io-client"
# Each shipped file of the client, by its path in the npm package.
CLIENT_FILES = {
    "socket.io.esm.min.js": "dist/socket.io.esm.min.js",
    "socket.io.esm.min.js.map": "dist/socket.io.esm.min.js.map",
    "LICENSE": "LICENSE",
}
# static/ holds these for npm only; they are not part of the page.
NPM_ONLY = {"node_modules", "package.json", "package-lock.json"}
# A clone's contents: what git ignores is left behind, node_modules kept, so
# that the wheel is seen to leave it out.
NOT_IN_A_CLONE = shutil.ignore_patterns(
    ".git",
    ".venv",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".*_cache",
    "test-artifacts",
    "*.db",
    "*.db-*",
)
BUILD_TIMEOUT = 120.0  # s: pip wheel, with its isolated build environment
INSTALL_TIMEOUT = 240.0  # s: a fresh venv and pip install of the wheel
READY_TIMEOUT = 30.0  # s: from chatsio serve to the page answering


def missing(what: str, how: str) -> None:
    """Skip for want of ``what``, except in CI, where it is a failure."""
    message = f"{what} is missing ({how})"
    if IN_CI:
        pytest.fail(f"{message}; CI=true requires it", pytrace=False)
    pytest.skip(message)


def pinned_client() -> str:
    package = json.loads((STATIC / "package.json").read_text())
    return package["dependencies"]["socket.io-client"]


def test_the_shipped_client_is_the_pinned_npm_package() -> None:
    if not (NPM_PACKAGE / "package.json").is_file():
        missing("static/node_modules", "run npm ci --prefix static")
    installed = json.loads((NPM_PACKAGE / "package.json").read_text())["version"]
    assert installed == pinned_client(), "stale node_modules: npm ci --prefix static"
    assert sorted(path.name for path in VENDOR.iterdir()) == sorted(CLIENT_FILES)
    for name, source in CLIENT_FILES.items():
        assert (VENDOR / name).read_bytes() == (NPM_PACKAGE / source).read_bytes(), (
            f"static/vendor/socket.io-client/{name} is not socket.io-client "
            f"{installed}'s {source}: copy it from static/node_modules"
        )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel ``pip wheel`` builds from a clone (built in a copy: a build in
    place leaves build/ behind, whose stale files can enter the next wheel)."""
    work = tmp_path_factory.mktemp("wheel")
    clone = work / "chatsio"
    shutil.copytree(ROOT, clone, symlinks=True, ignore=NOT_IN_A_CLONE)
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q"]
    built = subprocess.run(
        [*build, "-w", str(work / "dist"), str(clone)],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (found,) = (work / "dist").glob("chatsio-*.whl")
    return found


def page_files() -> set[str]:
    """Every file of the demo page, relative to static/."""
    return {
        path.relative_to(STATIC).as_posix()
        for path in STATIC.rglob("*")
        if path.is_file() and path.relative_to(STATIC).parts[0] not in NPM_ONLY
    }


def test_the_wheel_holds_the_page_and_no_more(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    shipped = {
        name.removeprefix("chatsio/static/")
        for name in names
        if name.startswith("chatsio/static/")
    }
    assert shipped == page_files()
    assert "vendor/socket.io-client/LICENSE" in shipped
    assert [name for name in names if "node_modules" in name] == []
    outside = [name for name in names if not name.startswith("chatsio")]
    assert outside == [], "tests/, bench/ or other files left the package"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def run(*argv: str, cwd: Path, env: dict[str, str], within: float) -> str:
    """Run a command to its end; its output, or a failure naming it."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), within)
    except TimeoutError:
        process.kill()
        await process.wait()
        pytest.fail(f"{argv[:3]} took over {within}s")
    text = output.decode(errors="replace")
    assert process.returncode == 0, f"{argv[:3]} failed:\n{text}"
    return text


async def install(wheel: Path, venv: Path) -> None:
    """A fresh venv holding the wheel and what pip resolves for it."""
    await run(
        sys.executable,
        "-m",
        "venv",
        str(venv),
        cwd=venv.parent,
        env=dict(os.environ),
        within=INSTALL_TIMEOUT,
    )
    await run(
        str(venv / "bin/python"),
        "-m",
        "pip",
        "install",
        "-q",
        str(wheel),
        cwd=venv.parent,
        env=dict(os.environ),
        within=INSTALL_TIMEOUT,
    )


def bare_environment(venv: Path) -> dict[str, str]:
    """No PYTHONPATH, no checkout, no Node: only the venv's own programs."""
    return {"PATH": str(venv / "bin"), "PYTHONDONTWRITEBYTECODE": "1"}


async def first_answer(url: str, server: asyncio.subprocess.Process) -> int | None:
    """The status of the first ``GET /`` the server answers (in READY_TIMEOUT);
    None if it exits first."""
    async with asyncio.timeout(READY_TIMEOUT), aiohttp.ClientSession() as http:
        while server.returncode is None:
            try:
                async with http.get(url) as response:
                    return response.status
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.1)
    return None


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():
        missing(f"Chromium at {CHROMIUM}", "apt-get install chromium")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=ARGS
        )
        yield browser
        await browser.close()


async def converse(browser: Browser, url: str) -> None:
    """alice and bob sign up, alice starts a chat, a message goes each way."""
    watch = Watch()
    try:
        alice = await open_page(browser, watch, "alice", DESKTOP)
        bob = await open_page(browser, watch, "bob", PHONE)
        await sign_in(alice, url, "alice", "Sign up")
        await sign_in(bob, url, "bob", "Sign up")
        await alice.get_by_role("button", name="New chat").click()
        await alice.get_by_label("Add people").fill("bob")
        await alice.get_by_label("Add people").press("Enter")
        await alice.get_by_role("button", name="Start chat").click()
        await expect(alice.locator("#conv-title")).to_have_text("bob", timeout=WAIT)
        # An invitation shows in the list; it never opens the chat by itself.
        await bob.get_by_role("button", name="alice").click()
        await expect(bob.locator("#conv-title")).to_have_text("alice", timeout=WAIT)
        await say(alice, "Hello from an installed wheel")
        await expect_once(bob, "Hello from an installed wheel")
        await say(bob, "And back, with no Node anywhere")
        await expect_once(alice, "And back, with no Node anywhere")
        watch.assert_clean()
    finally:
        await watch.close()


async def test_an_installed_wheel_serves_a_working_page(
    wheel: Path, browser: Browser, tmp_path: Path
) -> None:
    venv, empty = tmp_path / "venv", tmp_path / "empty"
    empty.mkdir()
    await install(wheel, venv)
    env = bare_environment(venv)
    where = await run(
        str(venv / "bin/python"),
        "-c",
        "import chatsio; print(chatsio.__file__)",
        cwd=empty,
        env=env,
        within=READY_TIMEOUT,
    )
    assert Path(where.strip()).is_relative_to(venv), where
    port = free_port()
    log_path = tmp_path / "serve.log"
    log = log_path.open("wb")
    server = await asyncio.create_subprocess_exec(
        str(venv / "bin/chatsio"),
        "serve",
        "--port",
        str(port),
        cwd=empty,
        env=env,
        stdout=log,
        stderr=log,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        status = await first_answer(url, server)
        assert status == 200, log_path.read_text()
        await converse(browser, url)
    finally:
        server.terminate()
        await asyncio.wait_for(server.wait(), READY_TIMEOUT)
        log.close()
