"""A node's manager among many: this node's rooms here, the rest by the bus.

python-socketio's ``AsyncRedisManager`` is an ``AsyncPubSubManager`` that
subclasses complete through private hooks (``_publish``, ``_listen``,
``_handle_*``), which upstream renames at will (5.14 renamed one the old bus
called, and it broke). Here the manager is a plain ``AsyncManager``
(``DirectFanout``): it delivers to this node's sockets, hands what the other
nodes must do to a ``RedisBus`` as python-socketio's own pub/sub messages (so
older nodes and a stock write-only ``AsyncRedisManager`` keep talking with
this one), and does what the bus brings from them. Every ``notify`` carrying
a seq passes the ``DeliveryLedger`` first, whichever way it came.

What crosses: emits (without callbacks: acks stay on their node), room
closes, ``leave_room`` naming a room of holders instead of a sid (``evict``;
a stock node ignores it, as no socket has the sid None), and ``catch_up``
hints (dated: ``since``, when the publishing node's outage began).
python-socketio's moves of one remote sid (``enter_room``, ``leave_room``,
``disconnect``) chatsio never makes; they are ignored.

Where: what names a room goes to that room's channel, which only the nodes
hosting it hear (an emit to several rooms goes to each, naming one); the
rest (emits to a whole namespace, ``catch_up``) to the broadcast channel,
where a stock ``AsyncRedisManager`` publishes everything. A room's first
member here makes the bus listen to its channel before ``enter_room``
returns, so a join's reading of the database follows it; its last member's
leaving lets the bus drop it.
"""

from __future__ import annotations

import base64
from collections.abc import Callable

from socketio.packet import Packet

from chatsio.protocol import now_ms
from chatsio.transport.bus import RedisBus
from chatsio.transport.fanout import DirectFanout
from chatsio.transport.ledger import DeliveryLedger

# Published by a node whose publishing works again, with ``since``, when it
# first failed: what it said from then on was lost, so every node catches up
# from the database.
CATCH_UP = "catch_up"
# A hint without ``since`` (from a node of the version before dated hints,
# during a rolling deploy) stands for an outage that began this long ago (ms):
# longer than most outages, and still a bounded read.
UNDATED_WINDOW = 600_000


class ClusterFanout(DirectFanout):
    """``DirectFanout`` whose emits, room closes and evictions also reach the
    other nodes through ``chatsio_bus``."""

    def __init__(self, bus: RedisBus) -> None:
        super().__init__()
        self.chatsio_bus = bus
        self.chatsio_ledger = DeliveryLedger()
        self._chatsio_catch_up: Callable[[int], None] | None = None
        bus.on_recovery = self._chatsio_recovered

    async def chatsio_start(
        self, catch_up: Callable[[int], None], within: float
    ) -> None:
        """Listen to the other nodes; ``catch_up(since)`` runs whenever this
        node may have missed what they said from ``since`` (ms) on (see
        ``catchup.CatchUp``)."""
        self._chatsio_catch_up = catch_up
        await self.chatsio_bus.start(self.chatsio_receive, within)

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
        await self.chatsio_deliver(
            event, data, namespace, room, skip_sid=skip_sid, callback=callback
        )
        if not kwargs.get("ignore_queue"):
            publish_emit(self.chatsio_bus, event, data, namespace, room, skip_sid)

    async def enter_room(self, sid, namespace, room, eio_sid=None):
        """Enter ``room``; returns once the bus hears its channel (bounded)."""
        self.basic_enter_room(sid, namespace, room, eio_sid=eio_sid)
        await self.chatsio_bus.host(room)

    async def close_room(self, room, namespace):
        await super().close_room(room, namespace)
        self.chatsio_bus.publish(
            {"method": "close_room", "room": room, "namespace": namespace}, room
        )

    async def chatsio_evict(self, room: str, holders: str, namespace: str) -> None:
        await super().chatsio_evict(room, holders, namespace)
        self.chatsio_bus.publish(
            {
                "method": "leave_room",
                "sid": None,
                "holders": holders,
                "room": room,
                "namespace": namespace,
            },
            room,
        )

    def basic_leave_room(self, sid, namespace, room):
        super().basic_leave_room(sid, namespace, room)
        if room not in self.rooms.get(namespace, ()):
            self.chatsio_ledger.forget(room)
            if room is not None and not any(room in r for r in self.rooms.values()):
                self.chatsio_bus.unhost(room)

    async def chatsio_deliver(
        self, event, data, namespace, room, skip_sid=None, callback=None
    ) -> None:
        """Emit to this node's sockets only, unless the ledger has it sent."""
        if self.chatsio_ledger.admit(event, data, namespace, room):
            await super().emit(
                event, data, namespace, room=room, skip_sid=skip_sid, callback=callback
            )

    async def chatsio_receive(self, message: dict) -> None:
        """Do here what another node published (the bus's receiver)."""
        method = message.get("method")
        namespace = message.get("namespace") or "/"
        if method == "emit":
            await self.chatsio_deliver(
                message["event"],
                emitted_data(message),
                namespace,
                message.get("room"),
                skip_sid=message.get("skip_sid"),
            )
        elif method == "close_room":
            room = message.get("room")
            if isinstance(room, str):
                self.chatsio_ledger.closed_elsewhere(room)
            await super().close_room(room, namespace)
        elif method == "leave_room" and message.get("holders") is not None:
            await super().chatsio_evict(message["room"], message["holders"], namespace)
        elif method == CATCH_UP and self._chatsio_catch_up is not None:
            self._chatsio_catch_up(hinted_since(message))

    def _chatsio_recovered(self, path: str, since: int) -> None:
        """The bus works again after failing from ``since`` (ms): what this
        node published meanwhile is lost to the others (tell them to catch
        up from then); what it would have heard, to this node."""
        if path == "publish":
            self.chatsio_bus.publish({"method": CATCH_UP, "since": since})
        elif self._chatsio_catch_up is not None:
            self._chatsio_catch_up(since)


def hinted_since(message: dict) -> int:
    """Where the outage of a ``catch_up`` hint began (ms)."""
    since = message.get("since")
    if isinstance(since, int) and not isinstance(since, bool):
        return since
    return now_ms() - UNDATED_WINDOW


class BusEmitter:
    """The services' emitter for ``chatsio notify``: every emit goes to the
    nodes through a write-only bus; this process has no sockets."""

    def __init__(self, bus: RedisBus) -> None:
        self.bus = bus

    async def emit(self, event, data=None, *, namespace=None, room=None, skip_sid=None):
        publish_emit(self.bus, event, data, namespace or "/", room, skip_sid)


def publish_emit(bus: RedisBus, event: str, data, namespace: str, room, skip_sid):
    """Publish an emit to its room's channel, to each room's of a list (one
    message per room, naming it), or to every node when it names none."""
    message = emit_message(event, data, namespace, room, skip_sid)
    if room is None or isinstance(room, str):
        bus.publish(message, room)
    else:
        for one in room:
            bus.publish({**message, "room": one}, one)


def emit_message(event: str, data, namespace: str, room, skip_sid) -> dict:
    """python-socketio's pub/sub ``emit`` message (``AsyncPubSubManager.emit``
    makes the same), with binary attachments in base64."""
    args = list(data) if isinstance(data, tuple) else [data]
    binary = Packet.data_is_binary(args)
    if binary:
        args, attachments = Packet.deconstruct_binary(args)
        args = [args, *(base64.b64encode(a).decode() for a in attachments)]
    return {
        "method": "emit",
        "event": event,
        "data": args,
        "binary": binary,
        "namespace": namespace,
        "room": room,
        "skip_sid": skip_sid,
        "callback": None,
    }


def emitted_data(message: dict):
    """An ``emit`` message's data as ``emit`` takes it (as python-socketio's
    ``AsyncPubSubManager._handle_emit`` reads it)."""
    data = message["data"]
    if message.get("binary"):
        attachments = [base64.b64decode(a) for a in data[1:]]
        data = Packet.reconstruct_binary(data[0], attachments)
    if isinstance(data, list):
        return data[0] if len(data) == 1 else tuple(data)
    return data
