"""The per-message path reads the database only when it must."""

from __future__ import annotations

import asyncio

from helpers import error_code, join, say, start_chat

from chatsio.app import storage_key
from chatsio.protocol import CHAT, CONTROL


def count_access_reads(chatsio) -> list[str]:
    """Record each membership read the services make."""
    chats = chatsio.server.app[storage_key].chats
    reads: list[str] = []
    access = chats.access

    async def counted(chat_id: str, username: str):
        reads.append(username)
        return await access(chat_id, username)

    chats.access = counted
    return reads


async def test_typing_from_a_joined_socket_reads_no_membership(chatsio):
    alice, _ = await chatsio.member(await chatsio.user("alice"))
    bob, _ = await chatsio.member(await chatsio.user("bob"))
    chat_id = (await start_chat(alice, "bob"))["id"]
    await join(alice, chat_id)
    await join(bob, chat_id)
    reads = count_access_reads(chatsio)

    for _ in range(3):
        assert await alice.call(CHAT, "typing", {"id": chat_id}) == {"ok": True}
        assert await bob.next(CHAT, "typing") == {"id": chat_id, "user": "alice"}
    await say(alice, chat_id, "stored")  # checked inside the INSERT itself
    assert reads == []

    assert (await alice.call(CHAT, "leave", {"id": chat_id}))["ok"]
    reads.clear()
    assert await alice.call(CHAT, "typing", {"id": chat_id}) == {"ok": True}
    assert reads == ["alice"]  # out of the room: asked again


async def test_typing_after_terminate_is_refused_on_a_joined_socket(chatsio):
    alice, _ = await chatsio.member(await chatsio.user("alice"))
    bob, _ = await chatsio.member(await chatsio.user("bob"))
    chat_id = (await start_chat(alice, "bob"))["id"]
    await join(bob, chat_id)
    assert await alice.call(CONTROL, "terminate", {"id": chat_id}) == {"ok": True}
    await bob.next(CONTROL, "terminate")
    ack = await bob.call(CHAT, "typing", {"id": chat_id})
    assert error_code(ack) == "terminated"


async def test_many_sockets_posting_at_once_get_gapless_seqs_in_order(chatsio):
    alice, _ = await chatsio.member(await chatsio.user("alice"))
    bob, _ = await chatsio.member(await chatsio.user("bob"))
    eve, _ = await chatsio.member(await chatsio.user("eve"))
    chat_id = (await start_chat(alice, "bob"))["id"]

    async def send(peer, name: str) -> list[dict]:
        return [
            await peer.call(
                CHAT, "notify", {"id": chat_id, "kind": "message", "text": f"{name}{i}"}
            )
            for i in range(20)
        ]

    acks = await asyncio.gather(send(alice, "a"), send(bob, "b"), send(eve, "e"))
    assert all(error_code(ack) == "forbidden" for ack in acks[2])
    seqs = []
    for name, sent in zip("ab", acks[:2], strict=True):
        assert [ack["message"]["text"] for ack in sent] == [
            f"{name}{i}" for i in range(20)
        ]
        mine = [ack["message"]["seq"] for ack in sent]
        assert mine == sorted(mine)
        seqs += mine
    assert sorted(seqs) == list(range(1, 41))
