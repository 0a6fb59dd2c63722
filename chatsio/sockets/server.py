"""The Socket.IO server, with the guards the stock one lacks."""

from __future__ import annotations

import asyncio
import logging

import orjson
import socketio
from socketio import packet

from chatsio.errors import InvalidPayload
from chatsio.protocol import RESERVED_EVENTS
from chatsio.sockets import fastjson
from chatsio.sockets.engine import ChatsioEngine, outgoing

logger = logging.getLogger(__name__)

# An Engine.IO connection must have a namespace accepted within AUTH_GRACE of
# opening, and within REFUSED_GRACE of a refusal (time to try another token).
AUTH_GRACE = 3.0
REFUSED_GRACE = 1.0
BINARY_TYPES = ("5", "6")  # Socket.IO BINARY_EVENT, BINARY_ACK
# Only ``file`` carries binary data (one piece); a few more are answered
# invalid by the schema. Each may be as large as the Engine.IO buffer.
MAX_ATTACHMENTS = 10


class ChatsioPacket(packet.Packet):
    """Socket.IO packets encoded with orjson (see ``fastjson``).

    A packet class of its own rather than ``AsyncServer(json=...)``, which sets
    ``json`` on python-socketio's and python-engineio's shared ``Packet``
    classes: every client and server in the process would change with it.
    """

    json = fastjson

    @classmethod
    def data_is_binary(cls, data) -> bool:
        """As python-socketio's (a test holds the two equal), which walks the
        data in Python for every packet built: data that orjson can encode
        holds no bytes, and only the rest is walked."""
        if fastjson.encodes(data):
            return False
        return super().data_is_binary(data)


def encode_text(
    packet_type: int, namespace: str | None, id: int | None, data: list
) -> str | None:
    """The text of a Socket.IO packet as ``ChatsioPacket(...).encode()`` writes
    it (a test holds the two equal), in one orjson pass where the packet class
    makes two (one to look for binary data, one to encode). None when orjson
    refuses ``data``: bytes in it, or an edge ``fastjson`` leaves to the
    standard library; the packet class is then the way."""
    try:
        body = orjson.dumps(data, option=fastjson.STRICT).decode()
    except TypeError:
        return None
    head = str(packet_type)
    if namespace is not None and namespace != "/":
        head += namespace + ","
    if id is not None:
        head += str(id)
    return head + body


class ChatsioServer(socketio.AsyncServer):
    """``AsyncServer`` that ignores forged reserved events, says when a
    namespace connection is complete, and closes connections nobody owns.

    python-socketio dispatches a client event named ``connect`` or
    ``disconnect`` to the same handler as the real thing; here such events are
    dropped. And events emitted from inside a connect handler would reach the
    client before its CONNECT packet, so a namespace's ``after_connect`` hook runs
    once the connection is accepted, for the ``welcome`` event.
    """

    def _engineio_server_class(self):
        return ChatsioEngine

    async def _send_packet(self, eio_sid, pkt):
        """As python-socketio's, but a text packet (an ack, above all) is
        written straight to an idle WebSocket, as the fan-out does (see
        ChatsioEngine.write_now); binary packets and busy sockets queue."""
        encoded = pkt.encode()
        if isinstance(encoded, list):
            for part in encoded:
                await self.eio.send(eio_sid, part)
            return
        await self.eio.deliver(eio_sid, *outgoing(encoded))

    async def _handle_eio_connect(self, eio_sid, environ):
        await super()._handle_eio_connect(eio_sid, environ)
        self.start_background_task(self._expel_if_anonymous, eio_sid, AUTH_GRACE)

    async def _handle_event(self, eio_sid, namespace, id, data):
        if not isinstance(data, list) or not data or not isinstance(data[0], str):
            logger.warning("dropped a malformed event packet from %s", eio_sid)
            return
        if data[0] in RESERVED_EVENTS:
            logger.warning(
                "ignored a client event named %r from %s on %s",
                data[0],
                eio_sid,
                namespace or "/",
            )
            return
        handler = self.namespace_handlers.get(namespace or "/")
        if handler is None or self.handlers or self.async_handlers:
            await super()._handle_event(eio_sid, namespace, id, data)
        else:
            await self._handle_namespace_event(handler, eio_sid, namespace, id, data)

    async def _handle_namespace_event(self, handler, eio_sid, namespace, id, data):
        """python-socketio's ``_handle_event`` when the namespace's handler
        class is all there is (no ``@sio.on`` handlers, handlers awaited in
        turn, as chatsio runs): the same checks and ack, in fewer steps."""
        namespace = namespace or "/"
        sid = self.manager.sid_from_eio_sid(eio_sid, namespace)
        if not self.manager.is_connected(sid, namespace):
            logger.warning("%s is not connected to namespace %s", sid, namespace)
            return
        reply = await handler.trigger_event(data[0], sid, *data[1:])
        if id is None:
            return
        if reply is None:
            args = []
        elif isinstance(reply, tuple):
            args = list(reply)
        else:
            args = [reply]
        encoded = encode_text(packet.ACK, namespace, id, args)
        if encoded is None:
            await self._send_packet(
                eio_sid,
                self.packet_class(packet.ACK, namespace=namespace, id=id, data=args),
            )
        else:
            await self.eio.deliver(eio_sid, *outgoing(encoded))

    async def _handle_eio_message(self, eio_sid, data):
        """Drop what python-socketio would choke on, and say so once, briefly.

        Left to the library, a binary packet announcing no attachment or many,
        an attachment nobody announced, or an undecodable packet logged a
        traceback or wedged the connection (every later packet taken for an
        attachment). Only ``file`` carries binary data, and exactly one piece.
        """
        pending = self._binary_packet.get(eio_sid)
        if pending is not None and not isinstance(data, bytes):
            del self._binary_packet[eio_sid]  # its attachment never came
            logger.warning("dropped an unfinished binary packet from %s", eio_sid)
        elif pending is None and isinstance(data, bytes):
            logger.warning("dropped an unannounced attachment from %s", eio_sid)
            return
        elif pending is not None and completes(pending):
            if not placeholders_fit(pending.data, pending.attachment_count):
                del self._binary_packet[eio_sid]
                await self._refuse(
                    eio_sid, pending, "a placeholder names no attachment"
                )
                return
        try:
            if isinstance(data, str) and data[:1] in BINARY_TYPES:
                header = self.packet_class(encoded_packet=data)
                if not 1 <= header.attachment_count <= MAX_ATTACHMENTS:
                    await self._refuse(
                        eio_sid,
                        header,
                        f"a packet may carry 1 to {MAX_ATTACHMENTS} binary attachments",
                    )
                    return
            await super()._handle_eio_message(eio_sid, data)
        except Exception as exc:  # a malformed packet is the client's problem
            self._binary_packet.pop(eio_sid, None)
            logger.warning("dropped a malformed packet from %s: %s", eio_sid, exc)

    async def _refuse(self, eio_sid: str, header, why: str) -> None:
        """Drop a binary packet, answering ``invalid`` if it asked for an ack."""
        logger.warning("refused a binary packet from %s: %s", eio_sid, why)
        handler = self.namespace_handlers.get(header.namespace or "/")
        if handler is not None:  # counted as the namespace counts its errors
            handler.metrics.child(handler.metrics.errors, "invalid", "socket").inc()
        if header.id is not None and header.packet_type == packet.BINARY_EVENT:
            await self._send_packet(
                eio_sid,
                self.packet_class(
                    packet.ACK,
                    namespace=header.namespace,
                    id=header.id,
                    data=[{"ok": False, "error": InvalidPayload(why).to_dict()}],
                ),
            )

    async def _handle_connect(self, eio_sid, namespace, data):
        namespace = namespace or "/"
        if self.manager.sid_from_eio_sid(eio_sid, namespace) is not None:
            # Already connected here: python-socketio refuses it; nothing to add.
            return await super()._handle_connect(eio_sid, namespace, data)
        await super()._handle_connect(eio_sid, namespace, data)
        sid = self.manager.sid_from_eio_sid(eio_sid, namespace)
        handler = self.namespace_handlers.get(namespace)
        after_connect = getattr(handler, "after_connect", None)
        if (
            sid is not None
            and after_connect
            and self.manager.is_connected(sid, namespace)
        ):
            await after_connect(sid)
        elif sid is None or not self.manager.is_connected(sid, namespace):
            self.start_background_task(self._expel_if_anonymous, eio_sid, REFUSED_GRACE)

    async def _expel_if_anonymous(self, eio_sid: str, grace: float) -> None:
        """Close an Engine.IO connection that has no accepted namespace.

        Without this a refused or silent client keeps its session (and a
        socket) open until it leaves by itself.
        """
        await asyncio.sleep(grace)
        if eio_sid not in self.eio.sockets:
            return
        namespaces = self.manager.get_namespaces()
        if any(self.manager.sid_from_eio_sid(eio_sid, ns) for ns in namespaces):
            return
        logger.info("closing %s: no namespace accepted it", eio_sid)
        await self.eio.expel(eio_sid)


def completes(pending) -> bool:
    """Whether the next attachment is the last one ``pending`` waits for."""
    return len(pending.attachments) + 1 == pending.attachment_count


def placeholders_fit(data, count: int) -> bool:
    """Whether every binary placeholder in ``data`` names one of ``count``
    attachments; python-socketio indexes with ``num`` unchecked."""
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            if item.get("_placeholder") and "num" in item:
                num = item["num"]
                if type(num) is not int or not 0 <= num < count:
                    return False
            else:
                stack.extend(item.values())
    return True
