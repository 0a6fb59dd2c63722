"""/control: welcome, start and invites, terminate."""

from __future__ import annotations

import uuid

from helpers import ISO_MS, assert_chat_shape, error_code, join, say, start_chat

from chatsio.app import sio_key
from chatsio.protocol import CHAT, CONTROL, chat_room


async def test_welcome_names_the_user_and_lists_active_chats(chatsio):
    alice_token, _ = await chatsio.user("alice"), await chatsio.user("bob")
    alice, welcome = await chatsio.member(alice_token)
    assert welcome["user"] == "alice" and welcome["chats"] == []
    assert ISO_MS.match(welcome["server_time"])
    kept = await start_chat(alice, "bob", title="kept")
    ended = await start_chat(alice, "bob", title="ended")
    assert (await alice.call(CONTROL, "terminate", {"id": ended["id"]}))["ok"]

    _, again = await chatsio.member(alice_token)
    assert again["chats"] == [kept]


async def test_start_acks_the_chat_and_invites_every_other_device(chatsio):
    tokens = {name: await chatsio.user(name) for name in ("alice", "bob", "carol")}
    alice1, _ = await chatsio.member(tokens["alice"])
    alice2, _ = await chatsio.member(tokens["alice"])
    bob1, _ = await chatsio.member(tokens["bob"])
    bob2, _ = await chatsio.member(tokens["bob"])
    carol, _ = await chatsio.member(tokens["carol"])

    chat = await start_chat(alice1, "bob", title="lunch")
    assert_chat_shape(chat)
    assert chat["members"] == ["alice", "bob"]
    assert chat["created_by"] == "alice" and chat["title"] == "lunch"
    assert chat["active"] is True
    online = {"online": True, "last_seen": None}
    for device, other in ((alice2, "bob"), (bob1, "alice"), (bob2, "alice")):
        assert await device.next(CONTROL, "invite") == {
            "chat": chat,
            "by": "alice",
            "presence": [{"user": other, **online}],
        }

    # Barrier: a chat started from alice2 reaches alice1 and carol; had the
    # first invite gone to alice1 or carol, it would be queued ahead of it.
    second = await start_chat(alice2, "carol")
    assert (await alice1.next(CONTROL, "invite"))["chat"]["id"] == second["id"]
    assert (await carol.next(CONTROL, "invite"))["chat"]["id"] == second["id"]
    assert bob1.received(CONTROL, "invite") == []


async def test_start_drops_duplicates_and_the_starter_from_members(chatsio):
    alice, _ = await chatsio.member(await chatsio.user("alice"))
    await chatsio.user("bob")
    chat = await start_chat(alice, "bob", "alice", "bob")
    assert chat["members"] == ["alice", "bob"] and chat["title"] is None

    ack = await alice.call(CONTROL, "start", {"members": ["alice"]})
    assert error_code(ack) == "invalid" and "members" in ack["error"]["fields"]


async def test_start_with_unknown_members_names_each_one(chatsio):
    alice, _ = await chatsio.member(await chatsio.user("alice"))
    await chatsio.user("bob")
    ack = await alice.call(CONTROL, "start", {"members": ["bob", "zed", "yan"]})
    assert error_code(ack) == "not_found"
    assert ack["error"]["fields"] == {
        "members": ["unknown user: zed", "unknown user: yan"]
    }
    _, welcome = await chatsio.member(await chatsio.user("bob"))
    assert welcome["chats"] == []  # nothing was created


async def test_terminate_tells_everyone_posts_a_notice_and_closes_the_room(chatsio):
    alice_token, bob_token = await chatsio.user("alice"), await chatsio.user("bob")
    alice, _ = await chatsio.member(alice_token)
    alice2, _ = await chatsio.member(alice_token)
    bob, _ = await chatsio.member(bob_token)
    chat = await start_chat(alice, "bob")
    chat_id = chat["id"]
    for peer in (alice, alice2, bob):
        await join(peer, chat_id)
    bye = await say(bob, chat_id, "bye")
    for peer in (alice, alice2):
        assert await peer.next(CHAT, "notify") == bye

    assert await alice.call(CONTROL, "terminate", {"id": chat_id}) == {"ok": True}
    for peer in (alice, alice2, bob):
        assert await peer.next(CONTROL, "terminate") == {"id": chat_id, "by": "alice"}
    notices = [await peer.next(CHAT, "notify") for peer in (alice, alice2, bob)]
    notice = notices[0]
    assert notices == [notice] * 3
    assert notice["kind"] == "notification" and notice["sender"] is None
    assert notice["seq"] == 2 and "alice" in notice["text"]

    sio = chatsio.server.app[sio_key]
    assert list(sio.manager.get_participants(CHAT, chat_room(chat_id))) == []

    for namespace, event, payload in [
        (CHAT, "join", {"id": chat_id}),
        (CHAT, "notify", {"id": chat_id, "kind": "message", "text": "late"}),
        (CHAT, "typing", {"id": chat_id}),
        (CONTROL, "terminate", {"id": chat_id}),
    ]:
        assert error_code(await bob.call(namespace, event, payload)) == "terminated"

    history = await bob.call(CHAT, "history", {"id": chat_id})
    assert [m["text"] for m in history["messages"]] == ["bye", notice["text"]]


async def test_terminate_of_unknown_chat_is_not_found(chatsio):
    alice, _ = await chatsio.member(await chatsio.user("alice"))
    ack = await alice.call(CONTROL, "terminate", {"id": str(uuid.uuid4())})
    assert error_code(ack) == "not_found"


async def test_system_notifications_reach_control_sockets(chatsio):
    from chatsio.api.keys import services_key

    alice_token, bob_token = await chatsio.user("alice"), await chatsio.user("bob")
    alice, _ = await chatsio.member(alice_token)
    bob, _ = await chatsio.member(bob_token)
    carol, _ = await chatsio.member(await chatsio.user("carol"))
    notifications = chatsio.server.app[services_key].notifications

    await notifications.broadcast("maintenance at noon")
    for peer in (alice, bob, carol):
        notice = await peer.next(CONTROL, "notify")
        assert notice["kind"] == "notification" and notice["id"] is None
        assert notice["text"] == "maintenance at noon" and ISO_MS.match(notice["ts"])

    chat = await start_chat(alice, "bob")
    await join(bob, chat["id"])
    stored = await notifications.to_chat(chat["id"], "this chat is archived soon")
    live = await bob.next(CHAT, "notify")
    assert live["kind"] == "notification" and live["sender"] is None
    assert live["seq"] == stored.seq == 1
    for peer in (alice, bob):
        assert (await peer.next(CONTROL, "notify"))["id"] == chat["id"]
    await notifications.broadcast("barrier")
    assert (await carol.next(CONTROL, "notify"))["text"] == "barrier"
