"""Presence and read state on the demo page (issue 20, item 2): unread badges
from the server that agree on two browsers of one user, "Seen by", the online
dot and "last seen", and read marks sent coalesced."""

from __future__ import annotations

import re
import time

from cluster import wait_until
from helpers import fast_user, store_messages
from page_fixtures import (
    DESKTOP,
    WAIT,
    browser,
    chat_of_two,
    chromium,
    expect_once,
    open_page,
    rest_get,
    say,
    served,
    shot,
    sign_in,
)
from playwright.async_api import Browser, Page, Request, WebSocket, expect

__all__ = ["browser", "chromium"]  # fixtures, used by name
GRACE = 5.0  # s: a user is offline this long after their last tab closed
READ_EVENT = re.compile(r'\["read",')


class ReadsSent:
    """Counts the `read` events a page sends, over WebSocket and polling."""

    def __init__(self, page: Page) -> None:
        self.count = 0
        page.on("websocket", self.watch_socket)
        page.on("request", self.watch_request)

    def watch_socket(self, socket: WebSocket) -> None:
        socket.on("framesent", self.seen)

    def watch_request(self, request: Request) -> None:
        if request.method == "POST" and "/socket.io/" in request.url:
            self.seen(request.post_data or "")

    def seen(self, payload: str | bytes) -> None:
        if isinstance(payload, str):
            self.count += len(READ_EVENT.findall(payload))


async def test_two_devices_share_unread_counts_and_the_partner_sees_seen_and_presence(
    make_config, browser: Browser
) -> None:
    config = make_config(rate_limit=1000, rate_burst=1000)
    async with served(config) as (harness, watch):
        bob_token, alice_token, chat = await chat_of_two(
            harness, "bob", "alice", "Lunch"
        )
        for text in ("are you in?", "noon works", "at the usual place"):
            status, _ = await harness.post(
                f"/api/chats/{chat['id']}/messages", {"text": text}, bob_token
            )
            assert status == 201
        laptop = await open_page(browser, watch, "alice laptop", DESKTOP)
        phone = await open_page(browser, watch, "alice phone", DESKTOP)
        bob = await open_page(browser, watch, "bob", DESKTOP)
        for page, name in ((laptop, "alice"), (phone, "alice"), (bob, "bob")):
            await sign_in(page, harness.url, name, "Log in")

        # The count comes from the server: the same on both of alice's browsers.
        entry = f"[data-chat-id='{chat['id']}']"
        for page in (laptop, phone):
            await expect(page.locator(f"{entry} .badge")).to_have_text(
                "3", timeout=WAIT
            )
        await bob.get_by_role("button", name="Lunch").click()
        alice_there = bob.locator("#conv-members .member[data-user='alice']")
        await expect(alice_there).to_have_attribute("data-online", "true", timeout=WAIT)
        await expect(alice_there).to_contain_text("online")

        # Reading on the laptop clears the phone's badge; bob sees it was seen.
        await laptop.get_by_role("button", name="Lunch").click()
        await expect(phone.locator(f"{entry} .badge")).to_be_hidden(timeout=WAIT)
        last = bob.locator("#messages .msg").last
        await expect(last.locator(".seen")).to_have_text("Seen by alice", timeout=WAIT)
        seen_by_alice = await rest_get(harness, f"/api/chats/{chat['id']}", alice_token)
        assert (seen_by_alice["read_seq"], seen_by_alice["unread"]) == (3, 0)

        # A new message: read at once on the laptop, where the chat is open.
        await say(bob, "see you there")
        await expect_once(laptop, "see you there")
        await expect(last.locator(".seen")).to_have_text("Seen by alice", timeout=WAIT)
        await expect(last).to_contain_text("see you there")
        await expect(phone.locator(f"{entry} .badge")).to_be_hidden(timeout=WAIT)
        await expect(bob.locator("#messages .seen")).to_have_count(1)
        await shot(bob, "13-seen-and-online")

        # alice closes every tab: after the grace she is offline, last seen now.
        for page in (laptop, phone):
            watch.pages.remove(page)
            await page.context.close()
        closed = time.monotonic()
        await expect(alice_there).to_have_attribute(
            "data-online", "false", timeout=(GRACE * 1000 + WAIT)
        )
        assert time.monotonic() - closed >= GRACE - 0.5, "offline before the grace"
        await expect(alice_there).to_contain_text("last seen")
        await shot(bob, "14-last-seen")


async def test_catching_up_sends_one_read_not_one_per_message(
    make_config, browser: Browser
) -> None:
    config = make_config(rate_limit=1000, rate_burst=1000)
    async with served(config) as (harness, watch):
        bob_token, alice_token, chat = await chat_of_two(
            harness, "bob", "alice", "Backlog"
        )
        await store_messages(harness, chat["id"], "bob", 300)
        alice = await open_page(browser, watch, "alice", DESKTOP)
        reads = ReadsSent(alice)
        await sign_in(alice, harness.url, "alice", "Log in")
        badge = alice.locator(f"[data-chat-id='{chat['id']}'] .badge")
        await expect(badge).to_have_text("99+", timeout=WAIT)
        await alice.get_by_role("button", name="Backlog").click()
        await expect(badge).to_be_hidden(timeout=WAIT)

        async def read_up_to(seq: int) -> bool:
            seen = await rest_get(harness, f"/api/chats/{chat['id']}", alice_token)
            return seen["read_seq"] == seq

        await wait_until(lambda: read_up_to(300), within=WAIT / 1000)
        # Playwright reports frames on its own schedule: wait for the one.
        await wait_until(lambda: reads.count >= 1, within=WAIT / 1000)
        assert reads.count == 1

        # A burst of live messages while the chat is open: marks coalesced.
        started = time.monotonic()
        for n in range(1, 31):
            status, _ = await harness.post(
                f"/api/chats/{chat['id']}/messages", {"text": f"live {n}"}, bob_token
            )
            assert status == 201
        await expect_once(alice, "live 30")
        await wait_until(lambda: read_up_to(330), within=WAIT / 1000)
        took = time.monotonic() - started
        assert reads.count <= 2 + took / 0.5, (reads.count, took)
        assert reads.count < 30


async def test_a_new_chat_shows_whether_its_members_are_online_at_once(
    make_config, browser: Browser
) -> None:
    async with served(make_config()) as (harness, watch):
        for name in ("alice", "bob", "carol"):
            await fast_user(harness, name)
        alice = await open_page(browser, watch, "alice", DESKTOP)
        bob = await open_page(browser, watch, "bob", DESKTOP)
        for page, name in ((alice, "alice"), (bob, "bob")):
            await sign_in(page, harness.url, name, "Log in")
        # Nobody shared a chat yet; the start ack and the invite bring presence.
        await alice.get_by_role("button", name="New chat").click()
        await alice.get_by_label("Add people").fill("bob, carol")
        await alice.get_by_role("button", name="Start chat").click()
        members = alice.locator("#conv-members")
        await expect(members.locator("[data-user='bob']")).to_contain_text(
            "online", timeout=WAIT
        )
        await expect(members.locator("[data-user='carol']")).to_have_attribute(
            "data-online", "false"
        )
        await bob.get_by_role("button", name="carol").click()
        alice_there = bob.locator("#conv-members [data-user='alice']")
        await expect(alice_there).to_have_attribute("data-online", "true", timeout=WAIT)
