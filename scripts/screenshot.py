"""Make docs/screenshot.png: alice and bob chatting on the demo page.

Starts ``chatsio serve`` in a scratch directory, signs both users in through
the page in Debian's headless Chromium (Playwright's Python package, no
browser download), has them exchange a few messages and saves alice's window.

    .venv/bin/python scripts/screenshot.py [OUTPUT]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp
from playwright.async_api import Browser, Page, async_playwright, expect

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
DESKTOP = {"width": 1280, "height": 800}
PASSWORD = "correct horse"
READY_TIMEOUT = 20.0  # s, until the server answers its health check
WAIT = 10_000  # ms, for every expectation on the pages
CONVERSATION = [
    ("alice", "Hi bob! Are we still on for lunch tomorrow?"),
    ("bob", "Yes! The new ramen place on 5th?"),
    ("alice", "Perfect. Noon?"),
    ("bob", "Noon works. I'll book a table for two."),
    ("alice", "Great, see you there!"),
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def server() -> Iterator[str]:
    """``chatsio serve`` on a free port with a fresh database; its URL."""
    port = free_port()
    with tempfile.TemporaryDirectory() as directory:
        process = subprocess.Popen(
            [sys.executable, "-m", "chatsio", "serve", "--port", str(port)],
            cwd=directory,
            env={"PATH": os.environ.get("PATH", ""), "CHATSIO_LOG_LEVEL": "warning"},
        )
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            process.wait(timeout=10)


async def wait_until_healthy(url: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    async with aiohttp.ClientSession() as http:
        while True:
            try:
                async with http.get(f"{url}/api/health") as reply:
                    if reply.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"chatsio serve did not start within {READY_TIMEOUT}s")
            await asyncio.sleep(0.05)


async def post(url: str, path: str, body: dict, token: str = "") -> dict:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as http:
        async with http.post(url + path, json=body, headers=headers) as reply:
            reply.raise_for_status()
            return await reply.json()


async def register(url: str, name: str) -> str:
    """A new user's token."""
    account = {"username": name, "password": PASSWORD}
    await post(url, "/api/users", account)
    return (await post(url, "/api/tokens", account))["token"]


async def sign_in(browser: Browser, url: str, name: str) -> Page:
    page = await (await browser.new_context(viewport=DESKTOP)).new_page()
    await page.goto(url)
    await page.get_by_label("Username").fill(name)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in", exact=True).click()
    await expect(page.locator("#conn")).to_have_text("Connected", timeout=WAIT)
    return page


async def chat(alice: Page, bob: Page) -> None:
    """alice starts a chat with bob; they exchange CONVERSATION."""
    await alice.get_by_role("button", name="New chat").click()
    await alice.get_by_label("Add people").fill("bob")
    await alice.get_by_label("Add people").press("Enter")
    await alice.get_by_role("button", name="Start chat").click()
    await expect(bob.locator("#conv-title")).to_have_text("alice", timeout=WAIT)
    pages = {"alice": alice, "bob": bob}
    for shown, (sender, text) in enumerate(CONVERSATION, start=1):
        box = pages[sender].get_by_label("Message", exact=True)
        await box.fill(text)
        await box.press("Enter")
        for page in pages.values():
            messages = page.locator("#messages .msg")
            await expect(messages).to_have_count(shown, timeout=WAIT)


async def start_a_hike(url: str, bob_token: str, alice: Page) -> str:
    """bob starts a chat over REST, which alice's page opens; its id."""
    hike = {"members": ["alice"], "title": "Weekend hike"}
    chat_id = (await post(url, "/api/chats", hike, bob_token))["id"]
    title = alice.locator("#conv-title")
    await expect(title).to_have_text("Weekend hike", timeout=WAIT)
    return chat_id


async def plan_the_hike(url: str, bob_token: str, alice: Page, chat_id: str) -> None:
    """bob writes in the other chat: an unread message on alice's list."""
    text = {"text": "Saturday, 8 am at the trailhead?"}
    await post(url, f"/api/chats/{chat_id}/messages", text, bob_token)
    badge = alice.locator(f"[data-chat-id='{chat_id}'] .badge")
    await expect(badge).to_have_text("1", timeout=WAIT)


async def main(output: Path) -> None:
    with server() as url:
        await wait_until_healthy(url)
        await register(url, "alice")
        bob_token = await register(url, "bob")
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=CHROMIUM, args=ARGS
            )
            try:
                alice = await sign_in(browser, url, "alice")
                bob = await sign_in(browser, url, "bob")
                hike = await start_a_hike(url, bob_token, alice)
                await chat(alice, bob)
                await plan_the_hike(url, bob_token, alice, hike)
                await alice.locator("#messages").click()  # no focus ring in the box
                await alice.screenshot(path=output)
            finally:
                await browser.close()
    print(f"wrote {output}")


if __name__ == "__main__":
    arguments = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    arguments.add_argument(
        "output", nargs="?", type=Path, default=ROOT / "docs" / "screenshot.png"
    )
    asyncio.run(main(arguments.parse_args().output))
