"""The server as the services' Emitter, counting the fan-out of each emit."""

from __future__ import annotations

from typing import Any

import socketio

from chatsio.metrics import Metrics


class MeteredEmitter:
    """Emits through the Socket.IO server and counts local recipients.

    Counts what this node delivers; with several nodes each counts its own.
    """

    def __init__(self, sio: socketio.AsyncServer, metrics: Metrics) -> None:
        self.sio = sio
        self.metrics = metrics

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
        recipients = self.local_recipients(namespace or "/", room) - {skip_sid}
        self.metrics.delivered(namespace, event, len(recipients))

    async def close_room(self, room: str, namespace: str | None = None) -> None:
        await self.sio.close_room(room, namespace=namespace)

    def local_recipients(self, namespace: str, room: str | list[str] | None) -> set:
        rooms = room if isinstance(room, list) else [room]
        manager = self.sio.manager
        return {
            sid for one in rooms for sid, _ in manager.get_participants(namespace, one)
        }
