"""Leaving a chat for good (/control leave, DELETE /api/chats/{id}/members/me),
and the per-user limits on starting chats and inviting (issue 15, "Chat and
invite spam")."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from cluster import Node, RedisServer, api, close_all, device, running_nodes
from conftest import Harness
from helpers import error_code, fast_user, join, say, start_chat

from chatsio.app import sio_key, storage_key
from chatsio.protocol import CHAT, CONTROL, chat_room


async def rest(chatsio, method: str, path: str, token: str, body=None):
    headers = {"Authorization": f"Bearer {token}"}
    async with chatsio.http.request(
        method, chatsio.url + path, json=body, headers=headers
    ) as response:
        text = await response.text()
        return response.status, response.headers, json.loads(text) if text else None


async def three_in_a_chat(chatsio):
    """alice (two devices), bob and carol in one chat, every device joined."""
    tokens = {
        name: await fast_user(chatsio, name) for name in ("alice", "bob", "carol")
    }
    alice, _ = await chatsio.member(tokens["alice"])
    alice2, _ = await chatsio.member(tokens["alice"])
    bob, _ = await chatsio.member(tokens["bob"])
    carol, _ = await chatsio.member(tokens["carol"])
    chat_id = (await start_chat(alice, "bob", "carol"))["id"]
    for peer in (alice2, bob, carol):
        await peer.next(CONTROL, "invite")
    for peer in (alice, alice2, bob, carol):
        await join(peer, chat_id)
    return tokens, (alice, alice2, bob, carol), chat_id


async def assert_left(chat_id, leaver, everyone, listeners):
    """Every /control device got ``left``; every listener the notice."""
    for peer in everyone:
        assert await peer.next(CONTROL, "left") == {"id": chat_id, "user": leaver}
    notices = [await peer.next(CHAT, "notify") for peer in listeners]
    assert notices == [notices[0]] * len(listeners)
    assert notices[0]["kind"] == "notification"
    assert notices[0]["sender"] is None and notices[0]["text"] == f"{leaver} left"
    return notices[0]


async def assert_shut_out(chatsio, peer, token, chat_id, file_id) -> None:
    """Every later event and read of the leaver on the chat is forbidden."""
    for namespace, event, payload in [
        (CHAT, "join", {"id": chat_id}),
        (CHAT, "notify", {"id": chat_id, "kind": "message", "text": "still here?"}),
        (CHAT, "typing", {"id": chat_id}),
        (CHAT, "history", {"id": chat_id}),
        (CHAT, "leave", {"id": chat_id}),
        (CHAT, "file", {"id": chat_id, "name": "a", "type": "x/y", "data": b"z"}),
        (CONTROL, "leave", {"id": chat_id}),
        (CONTROL, "terminate", {"id": chat_id}),
    ]:
        ack = await peer.call(namespace, event, payload)
        assert error_code(ack) == "forbidden", (event, ack)
    for method, path in [
        ("GET", f"/api/chats/{chat_id}"),
        ("GET", f"/api/chats/{chat_id}/messages"),
        ("POST", f"/api/chats/{chat_id}/messages"),
        ("DELETE", f"/api/chats/{chat_id}/members/me"),
        ("GET", f"/api/files/{file_id}"),
    ]:
        body = {"text": "x"} if method == "POST" else None
        status, _, reply = await rest(chatsio, method, path, token, body)
        assert (status, reply["error"]["code"]) == (403, "forbidden"), (path, reply)
    status, _, listed = await rest(chatsio, "GET", "/api/chats", token)
    assert status == 200 and chat_id not in [chat["id"] for chat in listed]


async def test_leave_over_socket_tells_everyone_and_shuts_the_leaver_out(chatsio):
    tokens, peers, chat_id = await three_in_a_chat(chatsio)
    alice, alice2, bob, carol = peers
    filed = await alice.call(
        CHAT, "file", {"id": chat_id, "name": "f", "type": "x/y", "data": b"1"}
    )
    for peer in (alice2, bob, carol):
        await peer.next(CHAT, "notify")

    assert await alice.call(CONTROL, "leave", {"id": chat_id}) == {"ok": True}
    notice = await assert_left(chat_id, "alice", peers, [bob, carol])
    sio = chatsio.server.app[sio_key]
    room = {sid for sid, _ in sio.manager.get_participants(CHAT, chat_room(chat_id))}
    assert room == {bob.sid[CHAT], carol.sid[CHAT]}

    after = await say(bob, chat_id, "after")
    assert await carol.next(CHAT, "notify") == after
    await assert_shut_out(
        chatsio, alice2, tokens["alice"], chat_id, filed["message"]["file"]["file_id"]
    )
    # Neither of alice's devices heard the notice or anything said after.
    assert alice.received(CHAT, "notify") == alice2.received(CHAT, "notify") == []
    assert alice.received(CHAT, "typing") == []

    _, welcome = await chatsio.member(tokens["bob"])
    [chat] = welcome["chats"]
    assert chat["members"] == ["bob", "carol"]
    history = await bob.call(CHAT, "history", {"id": chat_id})
    assert [m["text"] for m in history["messages"]][-2:] == [notice["text"], "after"]


async def test_leave_over_rest_has_the_same_effects(chatsio):
    tokens, peers, chat_id = await three_in_a_chat(chatsio)
    alice, alice2, bob, carol = peers
    path = f"/api/chats/{chat_id}/members/me"
    status, _, body = await rest(chatsio, "DELETE", path, tokens["carol"])
    assert (status, body) == (204, None)
    await assert_left(chat_id, "carol", peers, [alice, alice2, bob])
    # carol's socket is out of the room: typing is refused, not sent on.
    assert error_code(await carol.call(CHAT, "typing", {"id": chat_id})) == "forbidden"
    status, _, chat = await rest(chatsio, "GET", f"/api/chats/{chat_id}", tokens["bob"])
    assert status == 200 and chat["members"] == ["alice", "bob"] and chat["active"]


async def test_the_last_member_leaving_ends_the_chat(chatsio):
    alice_token = await fast_user(chatsio, "alice")
    bob_token = await fast_user(chatsio, "bob")
    alice, _ = await chatsio.member(alice_token)
    bob, _ = await chatsio.member(bob_token)
    chat_id = (await start_chat(alice, "bob"))["id"]
    await join(bob, chat_id)

    assert (await alice.call(CONTROL, "leave", {"id": chat_id}))["ok"]
    await assert_left(chat_id, "alice", [alice, bob], [bob])
    assert (await bob.call(CONTROL, "leave", {"id": chat_id}))["ok"]
    assert await bob.next(CONTROL, "left") == {"id": chat_id, "user": "bob"}
    assert await bob.next(CONTROL, "terminate") == {"id": chat_id, "by": "bob"}
    assert alice.received(CONTROL, "left") == []  # no longer a member

    stored = await chatsio.server.app[storage_key].chats.get(chat_id)
    assert stored.active is False and stored.members == ()
    last = await chatsio.server.app[storage_key].messages.before(chat_id, None, 1)
    assert [(m.kind, m.text) for m in last] == [("notification", "bob left")]
    sio = chatsio.server.app[sio_key]
    assert list(sio.manager.get_participants(CHAT, chat_room(chat_id))) == []


async def test_leaving_an_ended_chat_drops_it_from_the_list(chatsio):
    alice_token = await fast_user(chatsio, "alice")
    bob_token = await fast_user(chatsio, "bob")
    alice, _ = await chatsio.member(alice_token)
    bob, _ = await chatsio.member(bob_token)
    chat_id = (await start_chat(alice, "bob"))["id"]
    assert (await alice.call(CONTROL, "terminate", {"id": chat_id}))["ok"]
    ended = await chatsio.server.app[storage_key].messages.before(chat_id, None, 10)

    assert (await alice.call(CONTROL, "leave", {"id": chat_id}))["ok"]
    assert await bob.next(CONTROL, "left") == {"id": chat_id, "user": "alice"}
    status, _, listed = await rest(chatsio, "GET", "/api/chats", alice_token)
    assert (status, listed) == (200, [])
    status, _, chat = await rest(chatsio, "GET", f"/api/chats/{chat_id}", bob_token)
    assert status == 200 and chat["members"] == ["bob"] and not chat["active"]
    # An ended chat's history is not written to.
    after = await chatsio.server.app[storage_key].messages.before(chat_id, None, 10)
    assert after == ended


async def test_leave_of_an_unknown_chat_or_by_a_stranger(chatsio):
    alice_token = await fast_user(chatsio, "alice")
    await fast_user(chatsio, "bob")
    carol_token = await fast_user(chatsio, "carol")
    alice, _ = await chatsio.member(alice_token)
    carol, _ = await chatsio.member(carol_token)
    chat_id = (await start_chat(alice, "bob"))["id"]
    ack = await alice.call(CONTROL, "leave", {"id": str(uuid.uuid4())})
    assert error_code(ack) == "not_found"
    assert error_code(await carol.call(CONTROL, "leave", {"id": chat_id})) == (
        "forbidden"
    )
    assert error_code(await carol.call(CONTROL, "leave", {"id": "x"})) == "invalid"
    status, _, body = await rest(
        chatsio, "DELETE", f"/api/chats/{uuid.uuid4()}/members/me", alice_token
    )
    assert (status, body["error"]["code"]) == (404, "not_found")
    assert alice.received(CONTROL, "left") == []


async def test_no_message_of_the_leaver_is_stored_after_their_notice(chatsio):
    """Messages in flight while their sender leaves: each is stored before the
    notice or refused, never after it."""
    tokens, peers, chat_id = await three_in_a_chat(chatsio)
    alice, _, bob, _ = peers
    sends = [
        alice.call(CHAT, "notify", {"id": chat_id, "kind": "message", "text": f"{n}"})
        for n in range(30)
    ]
    path = f"/api/chats/{chat_id}/members/me"
    *acks, (status, _, _) = await asyncio.gather(
        *sends, rest(chatsio, "DELETE", path, tokens["alice"])
    )
    assert status == 204
    history = await bob.call(CHAT, "history", {"id": chat_id, "limit": 100})
    texts = [m["text"] for m in history["messages"]]
    notice_seq = texts.index("alice left") + 1
    for ack in acks:
        if ack["ok"]:
            assert ack["message"]["seq"] < notice_seq
        else:
            assert error_code(ack) == "forbidden"
    assert texts[notice_seq:] == []


# --- on two nodes ------------------------------------------------------------


@pytest.fixture
async def two_nodes(tmp_path, postgres_url):
    redis = await RedisServer(tmp_path).start()
    env = {"DATABASE_URL": postgres_url, "REDIS_URL": redis.url}
    try:
        async with running_nodes(tmp_path, env) as started:
            yield started
    finally:
        await redis.stop()


async def token_on(node: Node, name: str) -> str:
    credentials = {"username": name, "password": "correct horse"}
    await api(node, "POST", "/api/users", json=credentials)
    status, body = await api(node, "POST", "/api/tokens", json=credentials)
    assert status == 200, body
    return json.loads(body)["token"]


async def test_leaving_on_one_node_empties_the_room_on_the_other(two_nodes):
    a, b = two_nodes
    alice_token, bob_token, carol_token = [
        await token_on(a, name) for name in ("alice", "bob", "carol")
    ]
    peers = []
    try:
        for node, token in [
            (a, alice_token),
            (b, alice_token),
            (a, bob_token),
            (b, carol_token),
        ]:
            peers.append(await device(node, token))
        alice_a, alice_b, bob_a, carol_b = peers
        ack = await alice_a.call(CONTROL, "start", {"members": ["bob", "carol"]})
        chat_id = ack["chat"]["id"]
        for peer in (alice_b, bob_a, carol_b):
            await peer.next(CONTROL, "invite")
            await join(peer, chat_id)

        assert await alice_a.call(CONTROL, "leave", {"id": chat_id}) == {"ok": True}
        for peer in peers:
            left = await peer.next(CONTROL, "left")
            assert left == {"id": chat_id, "user": "alice"}
        for peer in (bob_a, carol_b):
            assert (await peer.next(CHAT, "notify"))["text"] == "alice left"

        after = await say(bob_a, chat_id, "after")
        assert await carol_b.next(CHAT, "notify") == after
        # alice's socket on node b left the room: typing is refused there, and
        # (an ack after the fan-out) nothing reached it.
        ack = await alice_b.call(CHAT, "typing", {"id": chat_id})
        assert error_code(ack) == "forbidden"
        assert alice_b.received(CHAT, "notify") == []
        status, _ = await api(b, "GET", f"/api/chats/{chat_id}", alice_token)
        assert status == 403
    finally:
        await close_all(peers)


# --- limits on starting chats and inviting ------------------------------------


async def test_chat_spam_over_a_socket_is_refused_past_the_limit(chatsio):
    """One account starting chat after chat with the same victim."""
    spammer, _ = await chatsio.member(await fast_user(chatsio, "spammer"))
    victim, _ = await chatsio.member(await fast_user(chatsio, "victim"))
    acks = [
        await spammer.call(CONTROL, "start", {"members": ["victim"]}) for _ in range(60)
    ]
    accepted = [ack for ack in acks if ack["ok"]]
    refused = [error_code(ack) for ack in acks if not ack["ok"]]
    assert 1 <= len(accepted) < 20, f"{len(accepted)} of 60 chats started"
    assert set(refused) == {"rate_limited"}
    # The victim was invited once per chat that was started, no more.
    await start_chat(victim, "spammer")  # a barrier: its ack follows the invites
    assert len(victim.received(CONTROL, "invite")) == len(accepted)


async def test_chat_spam_over_rest_is_refused_with_retry_after(chatsio):
    token = await fast_user(chatsio, "spammer")
    await fast_user(chatsio, "victim")
    statuses = []
    for _ in range(60):
        status, headers, body = await rest(
            chatsio, "POST", "/api/chats", token, {"members": ["victim"]}
        )
        statuses.append(status)
    assert statuses[0] == 201 and statuses[-1] == 429
    assert set(statuses) == {201, 429} and statuses.count(201) < 20, statuses
    assert body["error"]["code"] == "rate_limited"
    assert int(headers["Retry-After"]) >= 1


async def test_sockets_and_rest_draw_on_one_allowance(make_config):
    harness = await Harness(make_config(chats_per_minute=3)).start()
    try:
        token = await fast_user(harness, "alice")
        await fast_user(harness, "bob")
        alice, _ = await harness.member(token)
        for _ in range(2):
            await start_chat(alice, "bob")
        status, _, _ = await rest(
            harness, "POST", "/api/chats", token, {"members": ["bob"]}
        )
        assert status == 201
        ack = await alice.call(CONTROL, "start", {"members": ["bob"]})
        assert error_code(ack) == "rate_limited"
        assert "at most 3 chats" in ack["error"]["message"]
        status, headers, _ = await rest(
            harness, "POST", "/api/chats", token, {"members": ["bob"]}
        )
        # One chat back every 20 s at 3 a minute.
        assert status == 429 and 1 <= int(headers["Retry-After"]) <= 20
    finally:
        await harness.close()


async def test_invitations_are_limited_per_user(chatsio):
    """Big chats spend the invitation allowance, one invited user each."""
    names = [f"user{n}" for n in range(99)]
    for name in names:
        await fast_user(chatsio, name)
    spammer, _ = await chatsio.member(await fast_user(chatsio, "spammer"))
    acks = [await spammer.call(CONTROL, "start", {"members": names}) for _ in range(6)]
    assert [ack["ok"] for ack in acks].count(True) < 6
    refused = [ack for ack in acks if not ack["ok"]]
    assert {error_code(ack) for ack in refused} == {"rate_limited"}
    assert "invit" in refused[0]["error"]["message"]


async def test_probing_usernames_through_start_is_limited_too(chatsio):
    """Unknown names cost as much as known ones: start cannot test usernames
    for existence faster than it can start chats."""
    token = await fast_user(chatsio, "prober")
    candidates = [f"guess{n}" for n in range(99)]
    statuses = []
    for _ in range(40):
        status, _, _ = await rest(
            chatsio, "POST", "/api/chats", token, {"members": candidates}
        )
        statuses.append(status)
    assert statuses[0] == 404 and 429 in statuses, statuses
