"""Fan-out that encodes a packet once and writes it straight to idle WebSockets.

python-socketio's ``AsyncManager.emit`` starts a task per recipient, each of
which queues the packet for that socket's writer task, which encodes and sends
it: three task switches and an encoding per recipient. Here the packet becomes
one WebSocket frame, and each recipient whose writer is idle has it written to
its transport at once (``ChatsioEngine.write_now``); the others (polling,
upgrading, backed up, busy) take the stock queue path, which keeps each
socket's order and the cut-off of clients that stop reading.
"""

from __future__ import annotations

import asyncio

import socketio
from socketio import packet

from chatsio.transport.engine import outgoing
from chatsio.transport.server import encode_text


class DirectFanout(socketio.AsyncManager):
    """``AsyncManager`` whose ``emit`` writes frames directly where it can.

    Events with a callback (a distinct ack id per recipient) and binary events
    (attachments follow as more frames) keep the stock path. With Redis,
    ``cluster.ClusterFanout`` extends it to the other nodes.
    """

    async def emit(
        self,
        event,
        data,
        namespace,
        room=None,
        skip_sid=None,
        callback=None,
        to=None,
        **kwargs,
    ):
        room = to or room
        if callback is not None or namespace not in self.rooms:
            return await super().emit(
                event, data, namespace, room=room, skip_sid=skip_sid, callback=callback
            )
        if isinstance(data, tuple):
            args = list(data)
        else:
            args = [] if data is None else [data]
        encoded = encode_text(packet.EVENT, namespace, None, [event, *args])
        if encoded is None:  # binary, or JSON only the standard library writes
            return await super().emit(
                event, data, namespace, room=room, skip_sid=skip_sid
            )
        message, frame = outgoing(encoded)
        skip = skip_sid if isinstance(skip_sid, list) else [skip_sid]
        participants = getattr(self, "chatsio_participants", None)  # a piece
        recipients = (
            participants(namespace, room)
            if participants
            else dict(self.get_participants(namespace, room))
        )
        queued = self.server.eio.chatsio_write_now_to(
            [eio_sid for sid, eio_sid in recipients.items() if sid not in skip],
            frame,
        )
        if len(queued) == 1:
            await self.server._send_eio_packet(queued[0], message)
        elif queued:
            # As the stock emit: a recipient being closed (a missed pong runs
            # its disconnect handler) holds up no one else.
            await asyncio.wait(
                [
                    asyncio.create_task(self.server._send_eio_packet(eio_sid, message))
                    for eio_sid in queued
                ]
            )

    async def chatsio_evict(self, room: str, holders: str, namespace: str) -> None:
        """Take this node's sockets in room ``holders`` out of ``room``."""
        for sid in list(self.rooms.get(namespace, {}).get(holders, ())):
            self.basic_leave_room(sid, namespace, room)

    def chatsio_participants(self, namespace: str, room) -> dict[str, str]:
        """``get_participants`` as a dict of sid to Engine.IO sid (for one room,
        the room's own: not to be changed), without its generator and copy."""
        rooms = self.rooms.get(namespace, {})
        if isinstance(room, str) or not hasattr(room, "__len__"):
            found = rooms.get(room)
            return {} if found is None else found._fwdm
        return dict(self.get_participants(namespace, room))
