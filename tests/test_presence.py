"""Presence on one node: who is online, told only to users sharing an active chat.

Most tests run with a short grace (``GRACE``) to stay fast; one checks the
default of 5 s.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime

import pytest
from cluster import wait_until
from conftest import TIMEOUT, Harness
from helpers import ISO_MS, fast_user

from chatsio.config import load_config
from chatsio.errors import ConfigError
from chatsio.protocol import CONTROL, now_ms
from chatsio.services.presence import LocalDirectory, PresenceTracker
from chatsio.storage import open_storage

GRACE = 0.3


@pytest.fixture
async def server(make_config):
    harness = await Harness(
        make_config(presence_grace=GRACE, rate_limit=1000, rate_burst=1000)
    ).start()
    yield harness
    await harness.close()


async def users(harness: Harness, *names: str) -> dict[str, str]:
    return {name: await fast_user(harness, name) for name in names}


async def chat(harness: Harness, token: str, *members: str) -> str:
    status, body = await harness.post("/api/chats", {"members": list(members)}, token)
    assert status == 201, body
    return body["id"]


async def end(harness: Harness, token: str, chat_id: str) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with harness.http.delete(
        f"{harness.url}/api/chats/{chat_id}", headers=headers
    ) as response:
        assert response.status == 204


async def presence(harness: Harness, token: str, query: str) -> tuple[int, object]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with harness.http.get(
        f"{harness.url}/api/presence{query}", headers=headers
    ) as response:
        return response.status, await response.json()


def ms(stamp: str) -> int:
    assert ISO_MS.match(stamp), stamp
    return int(datetime.fromisoformat(stamp).timestamp() * 1000)


async def online_for(harness: Harness, token: str, name: str) -> bool:
    status, body = await presence(harness, token, f"?users={name}")
    assert status == 200, body
    return body == [{"user": name, "online": True, "last_seen": None}]


async def test_changes_go_only_to_users_sharing_an_active_chat(server):
    tokens = await users(server, "alice", "bob", "carol", "dave")
    await chat(server, tokens["bob"], "alice")
    await end(server, tokens["dave"], await chat(server, tokens["dave"], "alice"))
    bob, _ = await server.member(tokens["bob"])
    carol, _ = await server.member(tokens["carol"])  # shares no chat
    dave, _ = await server.member(tokens["dave"])  # shares an ended one

    alice, _ = await server.member(tokens["alice"])
    assert await bob.next(CONTROL, "presence") == {
        "user": "alice",
        "online": True,
        "last_seen": None,
    }
    closing = now_ms()
    await alice.close()
    offline = await bob.next(CONTROL, "presence")
    assert offline["user"] == "alice" and offline["online"] is False
    assert closing <= ms(offline["last_seen"]) <= now_ms() - GRACE * 1000
    # One emit reached bob: it reached every room it was sent to by now.
    assert carol.received(CONTROL, "presence") == []
    assert dave.received(CONTROL, "presence") == []
    assert alice.received(CONTROL, "presence") == []


async def test_one_event_per_change_however_many_devices(server):
    tokens = await users(server, "alice", "bob")
    await chat(server, tokens["bob"], "alice")
    bob, _ = await server.member(tokens["bob"])
    phone, _ = await server.member(tokens["alice"])
    assert (await bob.next(CONTROL, "presence"))["online"] is True
    laptop, _ = await server.member(tokens["alice"])
    await phone.close()
    # The laptop stays: a change would be due a grace after the phone closed.
    await asyncio.sleep(GRACE * 2)
    assert bob.received(CONTROL, "presence") == []
    closing = now_ms()
    await laptop.close()
    offline = await bob.next(CONTROL, "presence")
    assert offline["online"] is False and ms(offline["last_seen"]) >= closing
    assert phone.received(CONTROL, "presence") == []
    assert laptop.received(CONTROL, "presence") == []


async def test_a_reconnect_within_the_grace_is_no_change(make_config):
    harness = await Harness(make_config(presence_grace=2.0)).start()
    try:
        tokens = await users(harness, "alice", "bob")
        await chat(harness, tokens["bob"], "alice")
        bob, _ = await harness.member(tokens["bob"])
        alice, _ = await harness.member(tokens["alice"])
        assert (await bob.next(CONTROL, "presence"))["online"] is True
        await alice.close()
        alice, _ = await harness.member(tokens["alice"])
        # Past the grace that the first close started, nothing was sent.
        await asyncio.sleep(2.5)
        assert bob.received(CONTROL, "presence") == []
        closing = now_ms()
        await alice.close()
        offline = await bob.next(CONTROL, "presence")
        assert offline["online"] is False and ms(offline["last_seen"]) >= closing
    finally:
        await harness.close()


def test_the_default_grace_is_five_seconds():
    assert load_config({}).presence_grace == 5.0
    assert load_config({"CHATSIO_PRESENCE_GRACE": "0.5"}).presence_grace == 0.5
    with pytest.raises(ConfigError, match="CHATSIO_PRESENCE_GRACE"):
        load_config({"CHATSIO_PRESENCE_GRACE": "-1"})


async def test_welcome_holds_the_presence_of_users_sharing_an_active_chat(server):
    tokens = await users(server, "alice", "bob", "carol", "dave", "eve")
    await chat(server, tokens["alice"], "bob", "carol")
    await end(server, tokens["alice"], await chat(server, tokens["alice"], "dave"))
    await server.member(tokens["bob"])
    await server.member(tokens["dave"])
    await server.member(tokens["eve"])
    await wait_until(lambda: online_for(server, tokens["carol"], "bob"), within=TIMEOUT)

    _, welcome = await server.member(tokens["alice"])
    assert welcome["presence"] == [
        {"user": "bob", "online": True, "last_seen": None},
        {"user": "carol", "online": False, "last_seen": None},  # never seen
    ]
    _, strangers = await server.member(tokens["eve"])
    assert strangers["presence"] == []
    _, ended = await server.member(tokens["dave"])
    assert ended["presence"] == []


async def test_last_seen_is_kept_in_the_database(server):
    tokens = await users(server, "alice", "bob")
    await chat(server, tokens["bob"], "alice")
    bob, _ = await server.member(tokens["bob"])
    alice, _ = await server.member(tokens["alice"])
    await bob.next(CONTROL, "presence")
    await alice.close()
    offline = await bob.next(CONTROL, "presence")
    status, body = await presence(server, tokens["bob"], "?users=alice")
    assert status == 200
    assert body == [
        {"user": "alice", "online": False, "last_seen": offline["last_seen"]}
    ]
    # Online again: last_seen is null while online.
    await server.member(tokens["alice"])
    assert (await bob.next(CONTROL, "presence"))["last_seen"] is None
    assert await online_for(server, tokens["bob"], "alice")


async def test_rest_presence_names_only_users_sharing_an_active_chat(server):
    tokens = await users(server, "alice", "bob", "carol", "dave")
    await chat(server, tokens["alice"], "bob", "carol")
    await end(server, tokens["alice"], await chat(server, tokens["alice"], "dave"))
    await server.member(tokens["bob"])
    await wait_until(lambda: online_for(server, tokens["alice"], "bob"), within=TIMEOUT)

    query = "?users=carol,bob,dave,alice,nobody,bob"
    status, body = await presence(server, tokens["alice"], query)
    assert status == 200
    assert sorted(body, key=lambda p: p["user"]) == [
        {"user": "bob", "online": True, "last_seen": None},
        {"user": "carol", "online": False, "last_seen": None},
    ]
    # dave shares only an ended chat: he learns nothing, as a stranger.
    for token in (tokens["dave"], await fast_user(server, "eve")):
        assert await presence(server, token, "?users=alice,bob,carol") == (200, [])


async def test_rest_presence_checks_its_query(server):
    token = (await users(server, "alice"))["alice"]
    hundred = ",".join(f"u{n}" for n in range(100))
    assert await presence(server, token, f"?users={hundred}") == (200, [])
    status, body = await presence(server, token, f"?users={hundred},u100")
    assert status == 413 and body["error"]["code"] == "too_large"
    for query in ("", "?users=", "?users=a,,b", "?users=a%20b", "?users=a&x=1"):
        status, body = await presence(server, token, query)
        assert status == 400 and body["error"]["code"] == "invalid", query
    status, body = await presence(server, "", "?users=alice")
    assert status == 401 and body["error"]["code"] == "unauthorized"


async def test_a_stopping_node_records_its_users_gone(make_config):
    config = make_config(presence_grace=60.0)
    harness = await Harness(config).start()
    tokens = await users(harness, "alice", "bob")
    await chat(harness, tokens["bob"], "alice")
    await harness.member(tokens["alice"])
    await wait_until(
        lambda: online_for(harness, tokens["bob"], "alice"), within=TIMEOUT
    )
    stopping = now_ms()
    async with asyncio.timeout(TIMEOUT):
        await harness.close()  # far less than the 60 s grace

    again = await Harness(config).start()
    try:
        status, body = await presence(again, tokens["bob"], "?users=alice")
        assert status == 200 and body[0]["online"] is False
        assert stopping <= ms(body[0]["last_seen"]) <= now_ms()
    finally:
        await again.close()


class FlakyDirectory(LocalDirectory):
    """A directory that can be made to fail, as Redis does when it is down."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    async def arrive(self, user: str) -> bool:
        self.check()
        return await super().arrive(user)

    async def depart(self, user: str) -> bool:
        self.check()
        return await super().depart(user)

    async def online(self, users) -> set[str]:
        self.check()
        return await super().online(users)

    def check(self) -> None:
        if self.down:
            raise ConnectionError("directory down")


async def test_changes_wait_for_the_directory_and_lost_ones_are_made_again():
    directory = FlakyDirectory()
    changes: asyncio.Queue = asyncio.Queue()

    async def changed(user: str, online: bool, last_seen: int | None) -> None:
        changes.put_nowait((user, online, last_seen))

    tracker = PresenceTracker(directory, changed, grace=0.05, retry_every=0.05)
    tracker.start()
    try:
        directory.down = True
        tracker.connected("alice")
        assert await tracker.online(["alice", "bob"]) == {"alice"}  # its own truth
        directory.down = False
        assert await asyncio.wait_for(changes.get(), TIMEOUT) == ("alice", True, None)
        assert await directory.online(["alice"]) == {"alice"}

        directory.users.clear()  # the directory lost this node's entries
        await tracker.lost()
        assert await asyncio.wait_for(changes.get(), TIMEOUT) == ("alice", True, None)

        directory.down = True
        closing = now_ms()
        tracker.disconnected("alice")
        await asyncio.sleep(0.2)  # past the grace, while the directory fails
        assert changes.empty()
        directory.down = False
        user, online, last_seen = await asyncio.wait_for(changes.get(), TIMEOUT)
        assert (user, online) == ("alice", False)
        assert closing <= last_seen <= closing + 100
    finally:
        await tracker.aclose(within=1.0)


async def test_co_members_and_last_seen_in_storage(any_database_url):
    storage = await open_storage(any_database_url)
    try:
        async with storage.engine.begin() as conn:  # as an earlier version made it
            await conn.exec_driver_sql("ALTER TABLE users DROP COLUMN last_seen")
        await storage.close()
        storage = await open_storage(any_database_url)
        for name in ("alice", "bob", "carol", "dave", "eve"):
            await storage.users.create(name, "hash", is_admin=False, now=now_ms())
        for members in (["alice", "bob"], ["carol", "alice", "bob"], ["dave", "alice"]):
            await storage.chats.create(
                str(uuid.uuid4()), None, members[0], members, now_ms()
            )
        ended = await storage.chats.create(
            str(uuid.uuid4()), None, "eve", ["eve", "alice"], now_ms()
        )
        await storage.messages.end_chat(ended.id, "ended", now_ms(), "eve")
        await storage.users.set_last_seen("bob", 1234)

        users = storage.users
        assert await users.co_members("alice") == {
            "bob": 1234,
            "carol": None,
            "dave": None,
        }
        assert await users.co_members("alice", among=["dave", "eve", "alice"]) == {
            "dave": None
        }
        assert await users.co_members("eve") == {}
        assert await users.co_members("bob", among=[]) == {}
        await storage.users.set_last_seen("bob", None)
        assert await users.co_members("carol") == {"alice": None, "bob": None}
    finally:
        await storage.close()
