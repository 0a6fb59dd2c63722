"""The demo page's rough edges (issue 20, item 5), each tried as a new user
would: an invitation while typing, the file limit, image previews, a reload,
leaving a chat and ending it for everyone. (The restart banner's is part of
test_page.py's restart test.)"""

from __future__ import annotations

import struct
import zlib

from helpers import fast_user
from page_fixtures import (
    DESKTOP,
    PHONE,
    WAIT,
    browser,
    chat_of_two,
    chromium,
    expect_connected,
    expect_once,
    open_page,
    rest_get,
    say,
    served,
    shot,
    sign_in,
)
from playwright.async_api import Browser, Page, expect

__all__ = ["browser", "chromium"]  # fixtures, used by name


def png(width: int, height: int) -> bytes:
    """A valid RGB PNG of one colour."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = b"".join(b"\x00" + b"\x20\x80\xe0" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


async def send_file(page: Page, name: str, media_type: str, data: bytes) -> None:
    """Pick a file with the "Send a file" button."""
    async with page.expect_file_chooser() as chooser:
        await page.get_by_role("button", name="Send a file").click()
    await (await chooser.value).set_files(
        {"name": name, "mimeType": media_type, "buffer": data}
    )


async def test_an_invitation_never_moves_the_open_chat_or_the_keystrokes(
    make_config, browser: Browser
) -> None:
    async with served(make_config()) as (harness, watch):
        alice_token, _, with_bob = await chat_of_two(harness, "alice", "bob")
        carol = await fast_user(harness, "carol")
        alice = await open_page(browser, watch, "alice", DESKTOP)
        await sign_in(alice, harness.url, "alice", "Log in")
        await alice.get_by_role("button", name="bob").click()
        composer = alice.get_by_label("Message", exact=True)
        await composer.press_sequentially("see you at")
        status, from_carol = await harness.post(
            "/api/chats", {"members": ["alice"], "title": "Surprise"}, carol
        )
        assert status == 201, from_carol
        invited = alice.locator(f"[data-chat-id='{from_carol['id']}']")
        await expect(invited.locator(".badge")).to_have_text("New", timeout=WAIT)
        await expect(alice.locator("#conv-title")).to_have_text("bob")
        await expect(composer).to_be_focused()
        await shot(alice, "10-invited-while-typing")
        await alice.keyboard.type(" noon")
        await alice.keyboard.press("Enter")
        await expect_once(alice, "see you at noon")
        path = f"/api/chats/{with_bob['id']}/messages"
        messages = await rest_get(harness, path, alice_token)
        assert [m["text"] for m in messages] == ["see you at noon"]
        path = f"/api/chats/{from_carol['id']}/messages"
        assert await rest_get(harness, path, carol) == []


async def test_a_file_over_the_limit_is_not_sent_and_the_limit_is_named(
    make_config, browser: Browser
) -> None:
    limit = 64 * 1024
    async with served(make_config(max_file_bytes=limit)) as (harness, watch):
        alice_token, _, chat = await chat_of_two(harness, "alice", "bob")
        alice = await open_page(browser, watch, "alice", DESKTOP)
        await sign_in(alice, harness.url, "alice", "Log in")
        await alice.get_by_role("button", name="bob").click()
        binary = "application/octet-stream"
        await send_file(alice, "fits.bin", binary, b"x" * limit)
        download = alice.get_by_role("button", name="Download fits.bin")
        await expect(download).to_be_visible(timeout=WAIT)
        await send_file(alice, "big.bin", binary, b"x" * (limit + 1))
        await expect(alice.locator("#conv-error")).to_have_text(
            "big.bin not sent: the file is over the 64 KiB limit", timeout=WAIT
        )
        path = f"/api/chats/{chat['id']}/messages"
        messages = await rest_get(harness, path, alice_token)
        assert [m["text"] for m in messages] == ["fits.bin"]


async def test_an_image_shows_a_preview_fetched_with_the_token(
    make_config, browser: Browser
) -> None:
    async with served(make_config()) as (harness, watch):
        await chat_of_two(harness, "alice", "bob")
        alice = await open_page(browser, watch, "alice", DESKTOP)
        bob = await open_page(browser, watch, "bob", PHONE)
        for page, name, other in ((alice, "alice", "bob"), (bob, "bob", "alice")):
            await sign_in(page, harness.url, name, "Log in")
            await page.get_by_role("button", name=other).click()
        await send_file(alice, "dot.png", "image/png", png(30, 20))
        for page in (alice, bob):
            preview = page.get_by_role("img", name="dot.png")
            await expect(preview).to_be_visible(timeout=WAIT)
            assert (await preview.get_attribute("src")).startswith("blob:")
            assert await preview.evaluate("(img) => img.naturalWidth") == 30
        await shot(bob, "11-phone-image-preview")
        # served() checks the pages stayed clean: a CSP violation is a console error.


async def test_the_open_chat_survives_a_reload(make_config, browser: Browser) -> None:
    async with served(make_config()) as (harness, watch):
        alice_token, _, _ = await chat_of_two(harness, "alice", "bob", "Archive")
        status, _ = await harness.post(
            "/api/chats", {"members": ["bob"], "title": "Plans"}, alice_token
        )
        assert status == 201
        for name, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
            page = await open_page(browser, watch, name, viewport)
            await sign_in(page, harness.url, "alice", "Log in")
            await page.get_by_role("button", name="Archive").click()
            await say(page, f"from the {name}")
            await page.reload()
            await expect_connected(page)
            title = page.locator("#conv-title")
            await expect(title).to_have_text("Archive", timeout=WAIT)
            await expect_once(page, f"from the {name}")
            await expect(page.get_by_label("Message", exact=True)).to_be_visible()
        # Back to the list: a reload then stays on the list.
        await page.get_by_role("button", name="Back to chats").click()
        await page.reload()
        await expect_connected(page)
        plans = page.get_by_role("button", name="Plans")
        await expect(plans).to_be_visible(timeout=WAIT)
        await expect(title).to_be_hidden()


async def test_leaving_sits_apart_from_ending_which_asks_first(
    make_config, browser: Browser
) -> None:
    async with served(make_config()) as (harness, watch):
        _, bob_token, chat = await chat_of_two(harness, "alice", "bob", "Team")
        alice = await open_page(browser, watch, "alice", DESKTOP)
        bob = await open_page(browser, watch, "bob", DESKTOP)
        for page, name in ((alice, "alice"), (bob, "bob")):
            await sign_in(page, harness.url, name, "Log in")
            await page.get_by_role("button", name="Team").click()

        # Ending asks first; Cancel leaves the chat as it was.
        await alice.get_by_role("button", name="End chat for everyone").click()
        end_dialog = alice.get_by_role("dialog", name="End this chat for everyone?")
        await expect(end_dialog).to_be_visible()
        await shot(alice, "12-end-asks-first")
        await end_dialog.get_by_role("button", name="Cancel").click()
        await expect(end_dialog).to_be_hidden()
        await say(alice, "still here")
        await expect_once(bob, "still here")

        # Leaving is for good: the chat leaves alice's list, bob stays in it.
        await alice.get_by_role("button", name="Leave chat").click()
        leave_dialog = alice.get_by_role("dialog", name="Leave this chat?")
        await leave_dialog.get_by_role("button", name="Leave chat").click()
        entry = alice.locator(f"[data-chat-id='{chat['id']}']")
        await expect(entry).to_have_count(0, timeout=WAIT)
        await expect(alice.locator("#conv")).to_be_hidden()
        await expect_once(bob, "alice left")
        await expect(bob.locator("#conv-members")).to_have_text("you", timeout=WAIT)
        await expect(bob.get_by_label("Message", exact=True)).to_be_visible()
        seen_by_bob = await rest_get(harness, f"/api/chats/{chat['id']}", bob_token)
        assert seen_by_bob["members"] == ["bob"] and seen_by_bob["active"]
        await alice.reload()
        await expect_connected(alice)
        await expect(alice.get_by_role("button", name="Team")).to_have_count(0)
