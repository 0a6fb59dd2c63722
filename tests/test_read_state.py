"""Read marks on one server: PROTOCOL.md, "Presence and read state", the
read-state half (issue 20): ``/chat read``, ``POST /api/chats/{id}/read``,
the ``read`` event and what a Chat carries for the member who sees it."""

from __future__ import annotations

import json
import uuid

import pytest
from helpers import assert_chat_shape, error_code, fast_user, join, say, start_chat

from chatsio.config import Config
from chatsio.protocol import CHAT, CONTROL, SEQ_MAX

READ = "read"


class Room:
    """alice on two devices (``alice`` joined to the chat, ``alice2`` not),
    bob joined; carol, connected, shares no chat with them."""

    async def open(self, chatsio) -> Room:
        self.chatsio = chatsio
        self.tokens = {
            name: await fast_user(chatsio, name) for name in ("alice", "bob", "carol")
        }
        self.alice, _ = await chatsio.member(self.tokens["alice"])
        self.alice2, _ = await chatsio.member(self.tokens["alice"])
        self.bob, _ = await chatsio.member(self.tokens["bob"])
        self.carol, _ = await chatsio.member(self.tokens["carol"])
        self.chat_id = (await start_chat(self.alice, "bob"))["id"]
        await self.alice2.next(CONTROL, "invite")
        await self.bob.next(CONTROL, "invite")
        for peer in (self.alice, self.bob):
            await join(peer, self.chat_id)
        return self

    async def read(self, peer, seq, chat_id: str | None = None) -> dict:
        return await peer.call(CHAT, READ, {"id": chat_id or self.chat_id, "seq": seq})

    async def rest(self, method: str, path: str, user: str | None, body=None):
        headers = {"Authorization": f"Bearer {self.tokens[user]}"} if user else {}
        async with self.chatsio.http.request(
            method, self.chatsio.url + path, headers=headers, json=body
        ) as response:
            text = await response.text()
            return response.status, json.loads(text) if text else None

    async def chat_of(self, user: str) -> dict:
        status, chat = await self.rest("GET", f"/api/chats/{self.chat_id}", user)
        assert status == 200, chat
        return chat


@pytest.fixture
def config(any_database_url: str) -> Config:
    """Each test on SQLite and on PostgreSQL: the mark's one statement is
    written in SQL both must take."""
    return Config(database_url=any_database_url, rate_limit=1000, rate_burst=1000)


@pytest.fixture
async def room(chatsio) -> Room:
    return await Room().open(chatsio)


def mark(room: Room, user: str, seq: int) -> dict:
    return {"id": room.chat_id, "user": user, "seq": seq}


async def test_a_mark_moves_forward_only_and_is_clamped_to_the_last_message(room):
    for n in range(3):
        await say(room.bob, room.chat_id, f"m{n}")
    assert await room.read(room.alice, 2) == {"ok": True, "read_seq": 2}
    assert await room.read(room.alice, 1) == {"ok": True, "read_seq": 2}
    assert await room.read(room.alice, 2) == {"ok": True, "read_seq": 2}
    assert await room.read(room.alice, 0) == {"ok": True, "read_seq": 2}
    assert await room.read(room.alice, 99) == {"ok": True, "read_seq": 3}
    assert await room.read(room.alice, SEQ_MAX) == {"ok": True, "read_seq": 3}
    # Only the two moves were told, in order: to bob's joined socket and to
    # every /control socket of alice's; none to the socket that read.
    for peer, namespace in [
        (room.bob, CHAT),
        (room.alice, CONTROL),
        (room.alice2, CONTROL),
    ]:
        assert await peer.next(namespace, READ) == mark(room, "alice", 2)
        assert await peer.next(namespace, READ) == mark(room, "alice", 3)
    assert room.alice.received(CHAT, READ) == []
    assert room.bob.received(CONTROL, READ) == []
    assert (await room.chat_of("bob"))["reads"] == {"alice": 3, "bob": 0}


async def test_a_read_in_an_empty_chat_moves_nothing_and_tells_no_one(room):
    assert await room.read(room.alice, 5) == {"ok": True, "read_seq": 0}
    await say(room.bob, room.chat_id, "first")
    assert await room.read(room.alice, 5) == {"ok": True, "read_seq": 1}
    # The first event anyone gets is the move, not the read that changed nothing.
    assert await room.bob.next(CHAT, READ) == mark(room, "alice", 1)
    assert await room.alice2.next(CONTROL, READ) == mark(room, "alice", 1)


@pytest.mark.parametrize(
    "seq",
    [-1, SEQ_MAX + 1, 1.5, "1", True, False, None, [1], {"n": 1}],
    ids=repr,
)
async def test_a_seq_that_is_not_an_integer_from_0_is_invalid(room, seq):
    ack = await room.read(room.alice, seq)
    assert error_code(ack) == "invalid", ack
    assert "seq" in ack["error"]["fields"]


async def test_a_read_without_seq_or_with_more_is_invalid(room):
    for payload in [
        {"id": room.chat_id},
        {"id": room.chat_id, "seq": 1, "extra": 1},
        {"id": "not a chat", "seq": 1},
        {"seq": 1},
        [room.chat_id, 1],
    ]:
        ack = await room.alice.call(CHAT, READ, payload)
        assert error_code(ack) == "invalid", (payload, ack)


async def test_a_non_member_is_forbidden_and_learns_nothing(room):
    await say(room.bob, room.chat_id, "private")
    ack = await room.read(room.carol, 1)
    assert error_code(ack) == "forbidden"
    assert set(ack) == {"ok", "error"}
    unknown = await room.read(room.carol, 1, chat_id=str(uuid.uuid4()))
    assert error_code(unknown) == "not_found"
    status, body = await room.rest(
        "POST", f"/api/chats/{room.chat_id}/read", "carol", {"seq": 1}
    )
    assert (status, body["error"]["code"]) == (403, "forbidden")

    # Members' reads reach carol by no event: a later event to her (an
    # invite, on the same connection) comes first.
    await room.read(room.alice, 1)
    status, _ = await room.rest(
        "POST", f"/api/chats/{room.chat_id}/read", "bob", {"seq": 1}
    )
    assert status == 200
    await start_chat(room.bob, "carol")
    await room.carol.next(CONTROL, "invite")
    assert room.carol.received(CHAT, READ) == []
    assert room.carol.received(CONTROL, READ) == []
    # Nor by any route.
    status, chats = await room.rest("GET", "/api/chats", "carol")
    assert status == 200 and room.chat_id not in [c["id"] for c in chats]


async def test_an_ended_chat_may_still_be_read(room):
    await say(room.bob, room.chat_id, "last words")
    ack = await room.alice.call(CONTROL, "terminate", {"id": room.chat_id})
    assert ack["ok"], ack
    # The end's notice is message 2; alice reads it.
    assert await room.read(room.alice2, 2) == {"ok": True, "read_seq": 2}
    assert await room.alice.next(CONTROL, READ) == mark(room, "alice", 2)
    chat = await room.chat_of("alice")
    assert (chat["active"], chat["read_seq"], chat["unread"]) == (False, 2, 0)


async def test_own_messages_never_move_the_mark_nor_count_as_unread(room):
    await say(room.alice, room.chat_id, "a1")
    await say(room.alice, room.chat_id, "a2")
    await say(room.bob, room.chat_id, "b1")
    alice = await room.chat_of("alice")
    assert (alice["read_seq"], alice["unread"]) == (0, 1)
    assert alice["reads"] == {"alice": 0, "bob": 0}
    bob = await room.chat_of("bob")
    assert (bob["read_seq"], bob["unread"]) == (0, 2)

    assert await room.read(room.bob, 3) == {"ok": True, "read_seq": 3}
    await say(room.bob, room.chat_id, "b2")
    bob = await room.chat_of("bob")
    assert (bob["read_seq"], bob["unread"]) == (3, 0)
    alice = await room.chat_of("alice")
    assert (alice["read_seq"], alice["unread"]) == (0, 2)
    assert alice["reads"] == {"alice": 0, "bob": 3}


async def test_a_notice_counts_as_unread_for_everyone(chatsio):
    tokens = {name: await fast_user(chatsio, name) for name in ("alice", "bob", "x")}
    alice, _ = await chatsio.member(tokens["alice"])
    bob, _ = await chatsio.member(tokens["bob"])
    chat_id = (await start_chat(alice, "bob", "x"))["id"]
    await say(bob, chat_id, "hi")
    x, _ = await chatsio.member(tokens["x"])
    assert (await x.call(CONTROL, "leave", {"id": chat_id}))["ok"]
    _, welcome = await chatsio.member(tokens["bob"])
    (chat,) = welcome["chats"]
    assert (chat["read_seq"], chat["unread"]) == (0, 1)  # "x left"
    assert chat["reads"] == {"alice": 0, "bob": 0}


async def test_every_chat_a_member_sees_carries_their_marks(room):
    for n in range(4):
        await say(room.bob, room.chat_id, f"m{n}")
    await say(room.alice, room.chat_id, "mine")
    await room.read(room.alice, 3)
    await room.read(room.bob, 1)
    expected = {"read_seq": 3, "unread": 1, "reads": {"alice": 3, "bob": 1}}

    def marks(chat: dict) -> dict:
        assert_chat_shape(chat)
        return {key: chat[key] for key in expected}

    _, welcome = await room.chatsio.member(room.tokens["alice"])
    assert [marks(chat) for chat in welcome["chats"]] == [expected]
    joined = await join(room.alice2, room.chat_id)
    assert marks(joined["chat"]) == expected
    status, listed = await room.rest("GET", "/api/chats", "alice")
    assert status == 200 and [marks(chat) for chat in listed] == [expected]
    assert marks(await room.chat_of("alice")) == expected
    bob = await room.chat_of("bob")
    assert (bob["read_seq"], bob["unread"]) == (1, 1)  # alice's only


async def test_a_new_chat_starts_every_mark_at_zero(room):
    fresh = {"read_seq": 0, "unread": 0, "reads": {"alice": 0, "bob": 0, "carol": 0}}
    ack = await room.alice.call(CONTROL, "start", {"members": ["bob", "carol"]})
    assert ack["ok"], ack
    assert_chat_shape(ack["chat"])
    assert {key: ack["chat"][key] for key in fresh} == fresh
    for peer in (room.alice2, room.bob, room.carol):
        invite = await peer.next(CONTROL, "invite")
        assert invite["chat"] == ack["chat"] and invite["by"] == "alice"
    assert room.alice.received(CONTROL, "invite") == []  # the ack instead
    status, chat = await room.rest(
        "POST", "/api/chats", "bob", {"members": ["carol"], "title": "two"}
    )
    assert status == 201
    assert_chat_shape(chat)
    assert (chat["read_seq"], chat["unread"], chat["reads"]) == (
        0,
        0,
        {"bob": 0, "carol": 0},
    )


async def test_rest_read_moves_the_mark_and_tells_every_socket(room):
    await say(room.bob, room.chat_id, "one")
    await say(room.bob, room.chat_id, "two")
    path = f"/api/chats/{room.chat_id}/read"
    assert await room.rest("POST", path, "alice", {"seq": 1}) == (200, {"read_seq": 1})
    # No socket asked, so every joined one hears it, alice's own included.
    for peer, namespace in [
        (room.alice, CHAT),
        (room.bob, CHAT),
        (room.alice, CONTROL),
        (room.alice2, CONTROL),
    ]:
        assert await peer.next(namespace, READ) == mark(room, "alice", 1)
    # 0.0 is an integer to JSON Schema, and so to the OpenAPI document.
    assert await room.rest("POST", path, "alice", {"seq": 0.0}) == (
        200,
        {"read_seq": 1},
    )
    assert await room.rest("POST", path, "alice", {"seq": 9}) == (200, {"read_seq": 2})
    assert await room.bob.next(CHAT, READ) == mark(room, "alice", 2)


@pytest.mark.parametrize(
    "body",
    [{}, {"seq": -1}, {"seq": True}, {"seq": "1"}, {"seq": 1.5}, {"seq": 1, "id": 1}],
    ids=repr,
)
async def test_rest_read_refuses_a_bad_body(room, body):
    status, reply = await room.rest(
        "POST", f"/api/chats/{room.chat_id}/read", "alice", body
    )
    assert (status, reply["error"]["code"]) == (400, "invalid"), reply


async def test_rest_read_answers_like_every_chat_route(room):
    status, reply = await room.rest(
        "POST", f"/api/chats/{uuid.uuid4()}/read", "alice", {"seq": 1}
    )
    assert (status, reply["error"]["code"]) == (404, "not_found")
    status, reply = await room.rest("POST", "/api/chats/nope/read", "alice", {"seq": 1})
    assert (status, reply["error"]["code"]) == (400, "invalid")
    status, reply = await room.rest(
        "POST", f"/api/chats/{room.chat_id}/read", None, {"seq": 1}
    )
    assert (status, reply["error"]["code"]) == (401, "unauthorized")


async def test_a_member_who_left_can_no_longer_read(room):
    await say(room.bob, room.chat_id, "bye")
    assert (await room.bob.call(CONTROL, "leave", {"id": room.chat_id}))["ok"]
    assert error_code(await room.read(room.bob, 1)) == "forbidden"
