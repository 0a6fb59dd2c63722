"""Each transport speed-up (``chatsio.transport.pieces``) can be taken away,
and the server still does everything: a real ``chatsio serve`` per piece,
started through ``tests/serve_without.py``."""

from __future__ import annotations

from pathlib import Path

import pytest
from cluster import Node, close_all, device, register
from helpers import join, say, start_chat

from chatsio.protocol import CHAT, CONTROL, INVITE, NOTIFY
from chatsio.transport.pieces import PIECES, without
from chatsio.transport.server import ChatsioServer

SERVE_WITHOUT = str(Path(__file__).with_name("serve_without.py"))


@pytest.mark.parametrize("piece", sorted(PIECES))
async def test_a_server_without_a_piece_still_does_everything(tmp_path, piece):
    env = {"DATABASE_URL": f"sqlite:///{tmp_path}/chatsio.db"}
    node = Node("node", tmp_path, env, launcher=(SERVE_WITHOUT, piece))
    peers = []
    try:
        await node.start()
        assert f"serving without {piece}" in node.text()
        # alice on a WebSocket from the start, bob upgrading from polling.
        alice = await device(
            node, await register(node, "alice"), transports=["websocket"]
        )
        peers.append(alice)
        bob = await device(node, await register(node, "bob"))
        peers.append(bob)

        chat = await start_chat(alice, "bob")
        assert (await bob.next(CONTROL, INVITE))["chat"]["id"] == chat["id"]
        for peer in peers:
            await join(peer, chat["id"])
        message = await say(alice, chat["id"], "hello", client_id="c1")
        assert await bob.next(CHAT, NOTIFY) == message

        data = bytes(range(256)) * 40
        payload = {"id": chat["id"], "name": "a.bin", "type": "x/y", "data": data}
        ack = await alice.call(CHAT, "file", payload)
        assert ack["ok"], ack
        assert ack["message"]["file"]["size"] == len(data)
        assert await bob.next(CHAT, NOTIFY) == ack["message"]
        reply = await say(bob, chat["id"], "got it")
        assert await alice.next(CHAT, NOTIFY) == reply
    finally:
        await close_all(peers)
        await node.stop()
    assert "Traceback" not in node.text()


@pytest.mark.parametrize("piece", sorted(PIECES))
def test_each_piece_names_attributes_its_classes_define(piece):
    for cls, attribute in PIECES[piece].overrides:
        assert attribute in vars(cls), (
            f"piece {piece!r}: {cls.__qualname__} defines no {attribute!r} "
            "(renamed? update chatsio/transport/pieces.py)"
        )


def test_without_an_unknown_piece_raises_and_removes_nothing():
    with pytest.raises(ValueError, match="'no-such-piece'"):
        without("event-shortcut", "no-such-piece")
    assert "_chatsio_handle_namespace_event" in vars(ChatsioServer)
