"""A closed connection is freed when it closes: nothing keeps it alive until a
ping timer fires or a full garbage collection runs (issue 6, churn)."""

from __future__ import annotations

import gc
import weakref

from cluster import wait_until
from conftest import TIMEOUT
from helpers import fast_user

from chatsio.app import sio_key
from chatsio.protocol import CHAT, CONTROL


async def test_a_closed_connection_is_freed_at_once(chatsio):
    """With the collector off, only reference counting can free the socket:
    a reference cycle, or a task still holding it, keeps it alive.

    Found by the churn bench: engineio's ping timer, its service task's pass
    over a copy of the socket table, and the traceback of the OSError its
    WebSocket driver raises at a close each held closed connections.
    """
    token = await fast_user(chatsio, "alice")
    outcomes = [await close_one(chatsio, token) for _ in range(3)]
    assert outcomes == ["freed"] * 3


async def close_one(chatsio, token: str) -> str | list[str]:
    """Connect, disconnect, and say whether the Engine.IO socket was freed."""
    sio = chatsio.server.app[sio_key]
    peer = await chatsio.peer(token, namespaces=(CONTROL, CHAT))
    (eio_socket,) = sio.eio.sockets.values()
    alive = weakref.ref(eio_socket)
    del eio_socket
    gc.disable()
    try:
        await peer.close()
        chatsio.peers.remove(peer)
        await wait_until(lambda: not sio.eio.sockets, within=TIMEOUT)
        try:
            await wait_until(lambda: alive() is None, within=2)
        except TimeoutError:
            return [type(holder).__name__ for holder in gc.get_referrers(alive())]
        return "freed"
    finally:
        gc.enable()
