"""What every test of the demo page uses: Debian's Chromium driven by
Playwright (the ``chromium`` and ``browser`` fixtures), a watch that fails a
test on any console error, page error or JavaScript dialog, and the steps a
user takes (sign in, say something)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from conftest import IN_CI, PASSWORD, Harness
from helpers import fast_user
from playwright.async_api import (
    Browser,
    ConsoleMessage,
    Dialog,
    Page,
    async_playwright,
    expect,
)

from chatsio.config import Config

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
WAIT = 10_000  # ms, for every auto-waiting expectation
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def chromium() -> Path:
    """Debian's Chromium; Playwright downloads no browser of its own here."""
    if not CHROMIUM.exists():
        reason = f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)"
        if IN_CI:
            pytest.fail(f"{reason}; CI=true requires it", pytrace=False)
        pytest.skip(reason)
    return CHROMIUM


@pytest.fixture
async def browser(chromium: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(chromium), args=ARGS
        )
        yield browser
        await browser.close()


class Watch:
    """What must never happen on a page: console errors, page errors, dialogs."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.pages: list[Page] = []

    def attach(self, name: str, page: Page) -> Page:
        def console(message: ConsoleMessage) -> None:
            if message.type == "error":
                self.errors.append(f"{name} console: {message.text}")

        async def dialog(dialog: Dialog) -> None:
            self.dialogs.append(f"{name} {dialog.type}: {dialog.message}")
            await dialog.dismiss()

        page.on("console", console)
        page.on("pageerror", lambda error: self.errors.append(f"{name}: {error}"))
        page.on("dialog", dialog)
        self.pages.append(page)
        return page

    async def close(self) -> None:
        """Close the pages first: their sockets then close before the server."""
        for page in self.pages:
            await page.context.close()
        self.pages.clear()

    def assert_clean(self) -> None:
        assert self.errors == []
        assert self.dialogs == []


async def open_page(browser: Browser, watch: Watch, name: str, viewport) -> Page:
    context = await browser.new_context(viewport=viewport, accept_downloads=True)
    return watch.attach(name, await context.new_page())


async def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=ARTIFACTS / f"{name}.png")


async def sign_in(page: Page, url: str, name: str, button: str) -> None:
    await page.goto(url)
    await page.get_by_label("Username").fill(name)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name=button, exact=True).click()
    await expect_connected(page)
    await expect(page.locator("#me-name")).to_have_text(name, timeout=WAIT)


async def expect_connected(page: Page) -> None:
    await expect(page.locator("#conn")).to_have_attribute(
        "data-state", "connected", timeout=WAIT
    )
    await expect(page.locator("#conn")).to_have_text("Connected", timeout=WAIT)


async def say(page: Page, text: str) -> None:
    """Type a message and send it with Enter."""
    await page.get_by_label("Message", exact=True).fill(text)
    await page.get_by_label("Message", exact=True).press("Enter")


async def expect_once(page: Page, text: str) -> None:
    """The message ``text`` is shown, exactly once."""
    message = page.locator("#messages .msg").filter(
        has=page.get_by_text(text, exact=True)
    )
    await expect(message).to_have_count(1, timeout=WAIT)


async def rest_get(harness, path: str, token: str):
    """GET a REST path with a token; the JSON body of a 200."""
    headers = {"Authorization": f"Bearer {token}"}
    async with harness.http.get(harness.url + path, headers=headers) as response:
        assert response.status == 200, await response.text()
        return await response.json()


@contextlib.asynccontextmanager
async def served(config: Config) -> AsyncIterator[tuple[Harness, Watch]]:
    """A server and a watch over the pages opened on it; a test that ends
    normally must have left its pages clean."""
    harness = await Harness(config).start()
    watch = Watch()
    try:
        yield harness, watch
        watch.assert_clean()
    finally:
        await watch.close()
        await harness.close()


async def chat_of_two(
    harness: Harness, creator: str, member: str, title: str | None = None
) -> tuple[str, str, dict]:
    """Two new users and a chat ``creator`` started with ``member``: their
    tokens and the Chat."""
    creator_token = await fast_user(harness, creator)
    member_token = await fast_user(harness, member)
    body = {"members": [member], **({"title": title} if title else {})}
    status, chat = await harness.post("/api/chats", body, creator_token)
    assert status == 201, chat
    return creator_token, member_token, chat
