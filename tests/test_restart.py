"""State that must outlive one server: tokens, chats and seq, on both databases."""

from __future__ import annotations

import asyncio

from conftest import Harness

from chatsio.config import Config
from chatsio.protocol import CHAT, CONTROL


def server_config(url: str) -> Config:
    # No secret: the token key has to come from the database.
    return Config(database_url=url, secret=None)


# What a Chat says of the member who sees it, not of the chat.
VIEWER_FIELDS = ("read_seq", "unread", "reads")


def same_chat(listed: list[dict], chat: dict) -> bool:
    """Whether ``listed`` is just ``chat``, whoever sees it; PROTOCOL.md
    gives members no order."""

    def normal(c: dict) -> dict:
        shared = {k: v for k, v in c.items() if k not in VIEWER_FIELDS}
        return {**shared, "members": sorted(c["members"])}

    return [normal(c) for c in listed] == [normal(chat)]


async def send(peer, chat_id: str, text: str) -> dict:
    ack = await peer.call(
        CHAT, "notify", {"id": chat_id, "kind": "message", "text": text}
    )
    assert ack["ok"], ack
    return ack["message"]


async def test_tokens_chats_and_seq_survive_a_restart(any_database_url: str) -> None:
    config = server_config(any_database_url)
    first = await Harness(config).start()
    try:
        alice_token, bob_token = await first.user("alice"), await first.user("bob")
        alice, _ = await first.member(alice_token)
        started = await alice.call(CONTROL, "start", {"members": ["bob"], "title": "t"})
        assert started["ok"], started
        chat = started["chat"]
        sent = [await send(alice, chat["id"], f"before restart {i}") for i in range(3)]
        assert [m["seq"] for m in sent] == [1, 2, 3]
        await first.stop()
    finally:
        await first.close()

    second = await Harness(config).start()
    try:
        alice, welcome = await second.member(alice_token)  # the old token
        assert welcome["user"] == "alice"
        assert same_chat(welcome["chats"], chat), welcome
        bob, welcome = await second.member(bob_token)
        assert welcome["user"] == "bob" and same_chat(welcome["chats"], chat)
        assert welcome["chats"][0]["unread"] == 3  # read state survives too

        joined = await alice.call(CHAT, "join", {"id": chat["id"]})
        assert joined["ok"], joined
        assert same_chat([joined["chat"]], chat), joined
        assert joined["messages"] == sent
        caught_up = await bob.call(CHAT, "join", {"id": chat["id"], "since": 1})
        assert caught_up["ok"] and caught_up["messages"] == sent[1:], caught_up

        after = await send(alice, chat["id"], "after restart")
        assert after["seq"] == 4
        assert await bob.next(CHAT, "notify") == after
        # The password still works too, and its token is good on the new server.
        assert await second.member(await second.user("alice"))
    finally:
        await second.close()


async def test_two_servers_on_one_database_accept_each_others_tokens(
    any_database_url: str,
) -> None:
    config = server_config(any_database_url)
    nodes = [Harness(config), Harness(config)]
    try:
        # Both start on an empty database at once: they must agree on one key.
        await asyncio.gather(*(node.start() for node in nodes))
        one, two = nodes
        alice_token = await one.user("alice")
        bob_token = await two.user("bob")

        alice, welcome = await two.member(alice_token)
        assert welcome["user"] == "alice" and welcome["chats"] == []
        bob, welcome = await one.member(bob_token)
        assert welcome["user"] == "bob" and welcome["chats"] == []

        # A chat started on one node is the same chat, with one seq, on the other.
        started = await bob.call(CONTROL, "start", {"members": ["alice"]})
        assert started["ok"], started
        chat_id = started["chat"]["id"]
        first = await send(bob, chat_id, "from node one")
        second = await send(alice, chat_id, "from node two")
        assert (first["seq"], second["seq"]) == (1, 2)
        _, welcome = await two.member(bob_token)
        assert same_chat(welcome["chats"], started["chat"]), welcome
        joined = await alice.call(CHAT, "join", {"id": chat_id})
        assert joined["ok"] and joined["messages"] == [first, second], joined
    finally:
        for node in nodes:
            if node.server is not None:
                await node.close()
            else:
                await node.http.close()
