"""The demo page in a real browser: Debian's Chromium, driven by Playwright.

Browser contexts, alice in a desktop window and bob in a phone-sized one, use
the page against a real server. A console error or page error on any page
fails the test, and so does any JavaScript dialog. Screenshots of the main
states go to test-artifacts/.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from pathlib import Path

from conftest import Harness
from helpers import fast_user, store_messages
from page_fixtures import (
    DESKTOP,
    PHONE,
    WAIT,
    Watch,
    browser,
    chat_of_two,
    chromium,
    expect_connected,
    expect_once,
    open_page,
    say,
    shot,
    sign_in,
)
from playwright.async_api import Browser, expect

# The page's first reconnection attempt comes 0.75-2.25 s after a disconnect
# (static/js/socket.js); a restart quicker than that logs no refused connection.
FIRST_RETRY = 0.75  # s
ABOUT_THE_DROP = 2.0  # s: static/js/banners.js, a global notice this soon before a drop
XSS = "<img src=x onerror=alert(1)>"
__all__ = ["browser", "chromium"]  # fixtures, used by name


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def test_two_people_chat_through_the_page(
    make_config, browser: Browser, tmp_path: Path
) -> None:
    harness = await Harness(make_config(rate_limit=1000, rate_burst=1000)).start()
    watch = Watch()
    try:
        alice = await open_page(browser, watch, "alice", DESKTOP)
        bob = await open_page(browser, watch, "bob", PHONE)
        await alice.goto(harness.url)
        await expect(alice.get_by_role("button", name="Sign up")).to_be_visible(
            timeout=WAIT
        )
        await shot(alice, "01-sign-up")
        await sign_in(alice, harness.url, "alice", "Sign up")
        await sign_in(bob, harness.url, "bob", "Sign up")

        # An invitation from a REST call shows in the list, marked new.
        root = await fast_user(harness, "root", admin=True)
        status, planning = await harness.post(
            "/api/chats", {"members": ["alice"], "title": "Release planning"}, root
        )
        assert status == 201, planning
        invited = alice.locator(f"[data-chat-id='{planning['id']}']")
        await expect(invited.locator(".badge")).to_have_text("New", timeout=WAIT)
        await invited.click()
        await expect(alice.locator("#conv-title")).to_have_text(
            "Release planning", timeout=WAIT
        )
        await expect(invited.locator(".badge")).to_be_hidden(timeout=WAIT)

        # alice starts a chat with bob by picking him; bob opens it from his list.
        await alice.get_by_role("button", name="New chat").click()
        await alice.get_by_label("Add people").fill("bob")
        await alice.get_by_label("Add people").press("Enter")
        await expect(alice.get_by_role("button", name="Remove bob")).to_be_visible(
            timeout=WAIT
        )
        await shot(alice, "02-new-chat")
        await alice.get_by_role("button", name="Start chat").click()
        await expect(alice.locator("#conv-title")).to_have_text("bob", timeout=WAIT)
        await bob.get_by_role("button", name="alice").click()
        await expect(bob.locator("#conv-title")).to_have_text("alice", timeout=WAIT)

        # A message in the other chat: an unread badge on alice's list.
        status, _ = await harness.post(
            f"/api/chats/{planning['id']}/messages",
            {"text": "Release notes are due on Friday"},
            root,
        )
        assert status == 201
        badge = alice.locator(f"[data-chat-id='{planning['id']}'] .badge")
        await expect(badge).to_have_text("1", timeout=WAIT)

        await say(alice, "Hi bob! Lunch at noon?")
        await say(bob, "Sounds great, see you there")
        for page in (alice, bob):
            await expect_once(page, "Hi bob! Lunch at noon?")
            await expect_once(page, "Sounds great, see you there")
        await expect(alice.locator(".msg-own")).to_have_count(1, timeout=WAIT)
        await expect(bob.locator(".msg-own")).to_have_count(1, timeout=WAIT)

        await alice.get_by_label("Message", exact=True).press_sequentially("Let me")
        await expect(bob.locator("#typing")).to_have_text(
            "alice is typing…", timeout=WAIT
        )
        await shot(bob, "03-phone-typing")
        await alice.get_by_label("Message", exact=True).fill("")

        # Text from the server is text: the markup shows literally, runs nothing.
        await say(alice, XSS)
        for page in (alice, bob):
            await expect_once(page, XSS)
            assert await page.locator("#messages img").count() == 0

        # A file by the button and one dropped on the chat; bob gets the same bytes.
        sent = {
            "notes.bin": bytes(range(256)) * 64 + b"\x00end",
            "plan of day.txt": b"Lunch: pizza, then a walk.\n" * 10,
        }
        async with alice.expect_file_chooser() as chooser:
            await alice.get_by_role("button", name="Send a file").click()
        await (await chooser.value).set_files(
            {
                "name": "notes.bin",
                "mimeType": "application/octet-stream",
                "buffer": sent["notes.bin"],
            }
        )
        dropped = await alice.evaluate_handle(
            """([name, bytes]) => {
                const transfer = new DataTransfer();
                const data = new Uint8Array(bytes);
                transfer.items.add(new File([data], name, {type: "text/plain"}));
                return transfer;
            }""",
            ["plan of day.txt", list(sent["plan of day.txt"])],
        )
        for event in ("dragenter", "dragover", "drop"):
            await alice.dispatch_event("#conv", event, {"dataTransfer": dropped})
        for name, data in sent.items():
            button = bob.get_by_role("button", name=f"Download {name}")
            await expect(button).to_have_count(1, timeout=WAIT)
            async with bob.expect_download(timeout=WAIT) as caught:
                await button.click()
            download = await caught.value
            assert download.suggested_filename == name
            await download.save_as(tmp_path / name)
            assert sha256((tmp_path / name).read_bytes()) == sha256(data)

        # A system notification shows as a banner on both pages.
        status, _ = await harness.post(
            "/api/notifications", {"text": "Maintenance tonight at 22:00"}, root
        )
        assert status == 202
        for page in (alice, bob):
            await expect(page.locator(".banner")).to_contain_text(
                "Maintenance tonight at 22:00", timeout=WAIT
            )
        await shot(alice, "04-desktop-chat")
        await shot(bob, "05-phone-chat")

        await alice.get_by_role("button", name="End chat for everyone").click()
        await (
            alice.locator("#end-chat-dialog")
            .get_by_role("button", name="End chat for everyone")
            .click()
        )
        for page in (alice, bob):
            await expect(page.locator("#ended-note")).to_contain_text(
                "This chat has ended (ended by alice)", timeout=WAIT
            )
            await expect_once(page, "alice ended the chat")
            await expect(page.get_by_label("Message", exact=True)).to_be_hidden()
        await shot(bob, "06-phone-ended")
        watch.assert_clean()
    finally:
        await watch.close()
        await harness.close()


async def test_pages_catch_up_after_a_server_restart(
    make_config, browser: Browser
) -> None:
    config = make_config(rate_limit=1000, rate_burst=1000)
    first = await Harness(config).start()
    watch = Watch()
    try:
        port = first.server.port
        alice_token, _, chat = await chat_of_two(first, "alice", "bob")
        root = await fast_user(first, "root", admin=True)
        alice = await open_page(browser, watch, "alice", DESKTOP)
        bob = await open_page(browser, watch, "bob", PHONE)
        await sign_in(alice, first.url, "alice", "Log in")
        await sign_in(bob, first.url, "bob", "Log in")
        for page, title in ((alice, "bob"), (bob, "alice")):
            await page.get_by_role("button", name=title).click()
            await expect(page.locator("#conv-title")).to_have_text(title, timeout=WAIT)
        # The token is kept for the tab: a reload stays signed in.
        await alice.reload()
        await expect_connected(alice)
        await say(alice, "before the restart")
        await expect_once(bob, "before the restart")
        status, _ = await first.post(
            "/api/notifications", {"text": "Maintenance tonight at 22:00"}, root
        )
        assert status == 202
        banners = alice.locator(".banner")
        await expect(banners).to_contain_text("Maintenance tonight", timeout=WAIT)
        # A notice some time before a drop is not about the drop: it stays.
        await asyncio.sleep(ABOUT_THE_DROP)
        stopping = time.monotonic()
    finally:
        await first.close()  # the restart begins; the pages stay open
    stopped_in = time.monotonic() - stopping

    for page in (alice, bob):
        await expect(page.locator("#conn")).to_have_text("Reconnecting…", timeout=WAIT)
        await expect(page.locator(".banner").last).to_contain_text(
            "this server is restarting"
        )
    await shot(bob, "07-phone-reconnecting")
    second = await Harness(config, port=port).start()
    try:
        gap = [f"sent during the gap {n}" for n in range(1, 4)]
        for text in gap:
            status, _ = await second.post(
                f"/api/chats/{chat['id']}/messages", {"text": text}, alice_token
            )
            assert status == 201
        for page in (alice, bob):
            await expect_connected(page)
            for text in ["before the restart", *gap]:
                await expect_once(page, text)
        await say(bob, "after the restart")
        await expect_once(alice, "after the restart")
        texts = await alice.locator("#messages .msg .text").all_text_contents()
        assert texts == ["before the restart", *gap, "after the restart"]
        # Connected again: the restart's banner went, the earlier notice stays.
        await expect(bob.locator(".banner")).to_have_count(1)
        await expect(banners).to_have_count(1)
        await expect(banners).to_contain_text("Maintenance tonight")
        await shot(alice, "08-desktop-after-restart")
        assert stopped_in < FIRST_RETRY, (
            f"stopping the server took {stopped_in:.1f} s, longer than the page "
            "waits before it retries: its retries met a closed port"
        )
        watch.assert_clean()
    finally:
        await watch.close()
        await second.close()


async def test_older_messages_load_as_the_user_scrolls_up(
    make_config, browser: Browser
) -> None:
    harness = await Harness(make_config()).start()
    watch = Watch()
    try:
        alice = await fast_user(harness, "alice")
        await fast_user(harness, "bob")
        status, chat = await harness.post(
            "/api/chats", {"members": ["bob"], "title": "Archive"}, alice
        )
        assert status == 201, chat
        await store_messages(harness, chat["id"], "alice", 120)
        bob = await open_page(browser, watch, "bob", PHONE)
        await sign_in(bob, harness.url, "bob", "Log in")
        await bob.get_by_role("button", name="Archive").click()
        messages = bob.locator("#messages .msg .text")
        await expect(messages).to_have_count(50, timeout=WAIT)  # the newest 50
        await expect(messages.last).to_have_text("m120", timeout=WAIT)
        for shown in (100, 120):
            await bob.locator("#scroller").hover()
            await bob.mouse.wheel(0, -50_000)
            await expect(messages).to_have_count(shown, timeout=WAIT)
        older = bob.get_by_role("button", name="Load older messages")
        await expect(older).to_be_hidden(timeout=WAIT)
        texts = await messages.all_text_contents()
        assert texts == [f"m{n}" for n in range(1, 121)]
        watch.assert_clean()
    finally:
        await watch.close()
        await harness.close()
