"""/chat: join and recovery, leave, notify, typing, history, allowance."""

from __future__ import annotations

import asyncio

import pytest
from helpers import (
    assert_message_shape,
    error_code,
    join,
    say,
    start_chat,
    store_messages,
)

from chatsio.protocol import CHAT, CONTROL


@pytest.fixture
async def pair(chatsio):
    """alice and bob, one device each, in one chat that both have joined."""
    alice_token, bob_token = await chatsio.user("alice"), await chatsio.user("bob")
    alice, _ = await chatsio.member(alice_token)
    bob, _ = await chatsio.member(bob_token)
    chat = await start_chat(alice, "bob")
    await join(alice, chat["id"])
    await join(bob, chat["id"])
    return alice, bob, chat["id"], alice_token


async def test_notify_goes_to_the_room_but_not_the_sending_socket(chatsio, pair):
    alice, bob, chat_id, alice_token = pair
    alice2, _ = await chatsio.member(alice_token)
    await join(alice2, chat_id)

    sent = await say(alice, chat_id, "hello", client_id="c-1")
    assert_message_shape(sent)
    assert sent["id"] == chat_id and sent["seq"] == 1 and sent["sender"] == "alice"
    assert sent["kind"] == "message" and sent["client_id"] == "c-1"
    assert sent["file"] is None
    assert await bob.next(CHAT, "notify") == sent
    assert await alice2.next(CHAT, "notify") == sent  # the sender's other device

    reply = await say(bob, chat_id, "hi")
    assert reply["seq"] == 2
    assert await alice.next(CHAT, "notify") == reply  # first thing alice hears
    assert await alice2.next(CHAT, "notify") == reply


async def test_notify_works_without_joining_and_sender_is_the_user(chatsio, pair):
    _alice, _bob, chat_id, alice_token = pair
    loner = await chatsio.peer(alice_token, namespaces=(CHAT,))
    sent = await say(loner, chat_id, "from afar")
    assert sent["sender"] == "alice"  # the server knows who is sending


async def test_sender_field_is_refused_as_unknown(pair):
    alice, _, chat_id, _ = pair
    ack = await alice.call(
        CHAT, "notify", {"id": chat_id, "kind": "message", "text": "x", "sender": "bob"}
    )
    assert error_code(ack) == "invalid" and "sender" in ack["error"]["fields"]


async def test_client_id_makes_a_send_idempotent(pair):
    alice, bob, chat_id, _ = pair
    first = await say(alice, chat_id, "once", client_id="same")
    again = await say(alice, chat_id, "once", client_id="same")
    assert again == first
    barrier = await say(alice, chat_id, "after")
    assert barrier["seq"] == first["seq"] + 1  # no seq was used by the repeat
    assert await bob.next(CHAT, "notify") == first
    assert await bob.next(CHAT, "notify") == barrier
    # Another user may use the same client_id: it is per sender.
    theirs = await say(bob, chat_id, "mine", client_id="same")
    assert theirs["seq"] == barrier["seq"] + 1
    history = await alice.call(CHAT, "history", {"id": chat_id})
    assert [m["text"] for m in history["messages"]] == ["once", "after", "mine"]


async def test_messages_from_one_socket_keep_their_order(pair):
    alice, bob, chat_id, _ = pair
    acks = await asyncio.gather(*(say(alice, chat_id, f"n{n}") for n in range(30)))
    assert [ack["text"] for ack in acks] == [f"n{n}" for n in range(30)]
    assert [ack["seq"] for ack in acks] == list(range(1, 31))
    received = [await bob.next(CHAT, "notify") for _ in range(30)]
    assert received == acks


async def test_join_returns_the_newest_fifty_oldest_first(chatsio, pair):
    _alice, bob, chat_id, _ = pair
    await store_messages(chatsio, chat_id, "alice", 60)
    ack = await join(bob, chat_id)
    assert [m["seq"] for m in ack["messages"]] == list(range(11, 61))
    assert ack["chat"]["id"] == chat_id and ack["chat"]["members"] == ["alice", "bob"]


async def test_join_since_returns_exactly_the_missed_messages(chatsio, pair):
    alice, bob, chat_id, _ = pair
    for n in range(3):
        await say(alice, chat_id, f"seen {n}")
    last_seen = 3
    await bob.close()  # bob drops off; alice goes on talking
    missed = [await say(alice, chat_id, f"missed {n}") for n in range(4)]

    bob_again, _ = await chatsio.member(await chatsio.user("bob"))
    ack = await join(bob_again, chat_id, since=last_seen)
    assert ack["messages"] == missed
    assert (await join(bob_again, chat_id, since=7))["messages"] == []


async def test_join_since_stops_at_a_thousand_and_history_continues(chatsio, pair):
    _alice, bob, chat_id, _ = pair
    await store_messages(chatsio, chat_id, "alice", 1005)
    ack = await join(bob, chat_id, since=0)
    assert [m["seq"] for m in ack["messages"]] == list(range(1, 1001))
    rest = await join(bob, chat_id, since=1000)
    assert [m["seq"] for m in rest["messages"]] == list(range(1001, 1006))


async def test_leave_stops_live_delivery_but_not_membership(pair):
    alice, bob, chat_id, _ = pair
    assert await bob.call(CHAT, "leave", {"id": chat_id}) == {"ok": True}
    await say(alice, chat_id, "unheard")
    # Barrier on the same socket: a new chat's room still reaches bob.
    other = await start_chat(alice, "bob")
    await join(bob, other["id"])
    heard = await say(alice, other["id"], "heard")
    assert await bob.next(CHAT, "notify") == heard
    assert (await say(bob, chat_id, "still a member"))["seq"] == 2


async def test_typing_reaches_the_room_except_the_typist(pair):
    alice, bob, chat_id, _ = pair
    assert await alice.call(CHAT, "typing", {"id": chat_id}) == {"ok": True}
    assert await bob.next(CHAT, "typing") == {"id": chat_id, "user": "alice"}
    assert await bob.call(CHAT, "typing", {"id": chat_id}) == {"ok": True}
    assert await alice.next(CHAT, "typing") == {"id": chat_id, "user": "bob"}
    assert bob.received(CHAT, "typing") == []
    history = await alice.call(CHAT, "history", {"id": chat_id})
    assert history["messages"] == []  # typing is not stored


async def test_history_pages_backwards(chatsio, pair):
    alice, _, chat_id, _ = pair
    await store_messages(chatsio, chat_id, "alice", 120)
    page = await alice.call(CHAT, "history", {"id": chat_id})
    assert [m["seq"] for m in page["messages"]] == list(range(71, 121))
    page = await alice.call(
        CHAT, "history", {"id": chat_id, "before": 71, "limit": 100}
    )
    assert [m["seq"] for m in page["messages"]] == list(range(1, 71))
    page = await alice.call(CHAT, "history", {"id": chat_id, "before": 1})
    assert page == {"ok": True, "messages": []}
    for message in page["messages"]:
        assert_message_shape(message)


async def test_allowance_answers_rate_limited_and_recovers(chatsio, make_config):
    from conftest import Harness

    harness = await Harness(make_config(rate_limit=5, rate_burst=3)).start()
    try:
        alice, _ = await harness.member(await harness.user("alice"))
        await harness.user("bob")
        acks = [
            await alice.call(CONTROL, "start", {"members": ["bob"]}) for _ in range(5)
        ]
        codes = [ack["ok"] or error_code(ack) for ack in acks]
        assert codes[:3] == [True, True, True]
        assert "rate_limited" in codes[3:]
        assert alice.client.connected
        # Refilled at 5/s, the allowance comes back after a short pause.
        await asyncio.sleep(0.5)
        assert (await alice.call(CONTROL, "start", {"members": ["bob"]}))["ok"]
    finally:
        await harness.close()
