"""The server as the services' Emitter, counting the fan-out of each emit."""

from __future__ import annotations

from typing import Any

import socketio

from chatsio.metrics import Metrics
from chatsio.transport import DeliveryLedger


class MeteredEmitter:
    """Emits through the Socket.IO server and counts local recipients.

    Counts what this node delivers; with several nodes each counts its own.
    """

    def __init__(
        self,
        sio: socketio.AsyncServer,
        metrics: Metrics,
        ledger: DeliveryLedger | None = None,
    ) -> None:
        self.sio = sio
        self.metrics = metrics
        self.ledger = ledger  # with Redis: what this node has delivered

    async def emit(
        self,
        event: str,
        data: Any = None,
        *,
        namespace: str | None = None,
        room: str | list[str] | None = None,
        skip_sid: str | None = None,
    ) -> None:
        await self.sio.emit(
            event, data, namespace=namespace, room=room, skip_sid=skip_sid
        )
        self.metrics.delivered(
            namespace, event, self.local_recipients(namespace or "/", room, skip_sid)
        )

    async def close_room(self, room: str, namespace: str | None = None) -> None:
        await self.sio.close_room(room, namespace=namespace)

    async def evict(self, room: str, holders: str, *, namespace: str) -> None:
        """Take every socket in ``holders`` out of ``room``, on every node
        (``DirectFanout.chatsio_evict``; ``ClusterFanout`` carries it to the
        others)."""
        await self.sio.manager.chatsio_evict(room, holders, namespace)

    def joined(self, room: str, seq: int) -> None:
        if self.ledger is not None:
            self.ledger.joined(room, seq)

    def local_recipients(
        self, namespace: str, room: str | list[str] | None, skip_sid: str | None
    ) -> int:
        """The sockets on this node in ``room`` (in any of them, for a list),
        less ``skip_sid``: sockets, not users."""
        rooms = self.sio.manager.rooms.get(namespace, {})
        if isinstance(room, list):
            sids = set().union(*(rooms.get(one, ()) for one in room))
        else:
            sids = rooms.get(room, ())
        return len(sids) - (skip_sid in sids)
