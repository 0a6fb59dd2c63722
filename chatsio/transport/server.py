"""The Socket.IO server: python-socketio's ``AsyncServer`` with guards and
a shorter path for events and acks.

Replaces, in ``AsyncServer``:

- ``_handle_eio_message`` for binary packets: the stock one holds a header's
  attachments without a bound (one account held 533 MB on 6 sockets) and
  logged a traceback, or wedged the connection, for a malformed one. Here the
  budget of ``attachments`` applies and junk is logged once (``junk``). A guard.
- ``_handle_event``: client events named ``connect`` or ``disconnect`` reached
  the real handlers; they are dropped. A guard.
- ``_handle_connect``: a hook once the CONNECT is sent (``welcome`` must not
  overtake it), and sessions no namespace accepts are closed. A guard.
- the dispatch of an event to its namespace class
  (``_chatsio_handle_namespace_event``) and acks written straight to idle
  WebSockets (``_send_packet``): speed-ups of 6.5 % and 11.6 % of the CPU per
  delivery at 9,000/s, each measured alone (bench/perf/README.md, "Each
  speed-up, alone"). Each can be taken away (``pieces``).
- ``ChatsioPacket``: orjson for the packets' JSON rather than ``json``
  (14.8 %, measured the same way). ``encode_text`` writes a packet's text in
  one orjson pass for the fan-out. An ack encoded the same way, and orjson's
  check for binary data in place of the library's walk, saved under 2 % each
  and were removed in favour of the library's path.
"""

from __future__ import annotations

import asyncio
import logging

import orjson
import socketio
from socketio import packet

from chatsio.errors import ChatsioError, InvalidPayload, RateLimited, TooLarge
from chatsio.protocol import RESERVED_EVENTS
from chatsio.transport import fastjson
from chatsio.transport.attachments import HEADER_MAX, AttachmentBudget, placeholders_fit
from chatsio.transport.engine import ChatsioEngine, outgoing
from chatsio.transport.junk import JunkLog

logger = logging.getLogger(__name__)

# An Engine.IO connection must have a namespace accepted within AUTH_GRACE of
# opening, and within REFUSED_GRACE of a refusal (time to try another token).
AUTH_GRACE = 3.0
REFUSED_GRACE = 1.0
BINARY_TYPES = ("5", "6")  # Socket.IO BINARY_EVENT, BINARY_ACK


class ChatsioPacket(packet.Packet):
    """Socket.IO packets encoded with orjson (see ``fastjson``).

    A packet class of its own rather than ``AsyncServer(json=...)``, which sets
    ``json`` on python-socketio's and python-engineio's shared ``Packet``
    classes: every client and server in the process would change with it.
    """

    json = fastjson


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
    client before its CONNECT packet, so a namespace's ``chatsio_after_connect``
    hook runs once the connection is accepted, for the ``welcome`` event.

    What it needs of a namespace it asks through optional hooks, never its
    internals: ``chatsio_after_connect(sid)`` (coroutine), ``chatsio_user_of(sid)``
    (the user, or None) for attachment budgets, ``chatsio_refused(error)`` to
    count a packet refused here as the namespace counts its errors.
    """

    def __init__(self, *args, chatsio_attachments: AttachmentBudget, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._chatsio_junk = JunkLog()
        self.chatsio_attachments = chatsio_attachments

    def _engineio_server_class(self):
        return ChatsioEngine

    async def _send_packet(self, eio_sid, pkt):
        """As python-socketio's, but a text packet (an ack, above all) is
        written straight to an idle WebSocket, as the fan-out does (see
        ``ChatsioEngine.chatsio_write_now``); binary packets and busy sockets
        queue."""
        encoded = pkt.encode()
        if isinstance(encoded, list):
            for part in encoded:
                await self.eio.send(eio_sid, part)
            return
        await self.eio.chatsio_deliver(eio_sid, *outgoing(encoded))

    async def _handle_eio_disconnect(self, eio_sid, reason=None):
        if eio_sid in self._binary_packet:  # else a running handler releases it
            self._chatsio_drop_pending(eio_sid)
        await super()._handle_eio_disconnect(eio_sid, reason)
        self._chatsio_junk.forget(eio_sid)

    async def _handle_eio_connect(self, eio_sid, environ):
        await super()._handle_eio_connect(eio_sid, environ)
        self.start_background_task(
            self._chatsio_expel_if_anonymous, eio_sid, AUTH_GRACE
        )

    async def _handle_event(self, eio_sid, namespace, id, data):
        if not isinstance(data, list) or not data or not isinstance(data[0], str):
            self._chatsio_junk.note(
                eio_sid, "dropped a malformed event packet from %s", eio_sid
            )
            return
        if data[0] in RESERVED_EVENTS:
            self._chatsio_junk.note(
                eio_sid,
                "ignored a client event named %r from %s on %s",
                data[0],
                eio_sid,
                namespace or "/",
            )
            return
        handler = self.namespace_handlers.get(namespace or "/")
        shortcut = getattr(self, "_chatsio_handle_namespace_event", None)
        if handler is None or self.handlers or self.async_handlers or not shortcut:
            await super()._handle_event(eio_sid, namespace, id, data)
        else:
            await shortcut(handler, eio_sid, namespace, id, data)

    async def _chatsio_handle_namespace_event(
        self, handler, eio_sid, namespace, id, data
    ):
        """python-socketio's ``_handle_event`` when the namespace's handler
        class is all there is (no ``@sio.on`` handlers, handlers awaited in
        turn, as chatsio runs): the same checks and ack, in fewer steps."""
        namespace = namespace or "/"
        sid = self.manager.sid_from_eio_sid(eio_sid, namespace)
        if not self.manager.is_connected(sid, namespace):
            self._chatsio_junk.note(
                eio_sid, "%s is not connected to namespace %s", eio_sid, namespace
            )
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
        ack = self.packet_class(packet.ACK, namespace=namespace, id=id, data=args)
        await self._send_packet(eio_sid, ack)

    async def _handle_eio_message(self, eio_sid, data):
        """Drop what python-socketio would choke on, and say so once, briefly.

        Left to the library, a binary packet announcing no attachment or many,
        an attachment nobody announced, or an undecodable packet logged a
        traceback or wedged the connection (every later packet taken for an
        attachment). Only ``file`` carries binary data, and exactly one piece.
        """
        pending = self._binary_packet.get(eio_sid)
        if pending is not None and not isinstance(data, bytes):
            self._chatsio_drop_pending(eio_sid)  # its attachment never came
            self._chatsio_junk.note(
                eio_sid, "dropped an unfinished binary packet from %s", eio_sid
            )
        elif pending is None and isinstance(data, bytes):
            self._chatsio_junk.note(
                eio_sid, "dropped an unannounced attachment from %s", eio_sid
            )
            return
        elif pending is not None:
            await self._chatsio_take_attachment(eio_sid, pending, data)
            return
        try:
            if isinstance(data, str) and data[:1] in BINARY_TYPES:
                await self._chatsio_take_header(eio_sid, data)
            else:
                await super()._handle_eio_message(eio_sid, data)
        except Exception as exc:  # a malformed packet is the client's problem
            self._chatsio_drop_pending(eio_sid)
            if isinstance(exc, fastjson.Unreadable):
                await self._chatsio_answer_unreadable(eio_sid, data)
            self._chatsio_junk.note(
                eio_sid, "dropped a malformed packet from %s: %s", eio_sid, exc
            )

    async def _chatsio_take_header(self, eio_sid: str, data: str) -> None:
        """Hold a binary packet's header for its one attachment, if the
        user's budget has room (see ``transport/attachments``); decoded once."""
        if len(data) > HEADER_MAX:
            await self._chatsio_refuse(
                eio_sid,
                self.packet_class(encoded_packet=data[: max(data.find("["), 0)]),
                TooLarge(f"a binary packet's header may be at most {HEADER_MAX} bytes"),
            )
            return
        header = self.packet_class(encoded_packet=data)
        if header.attachment_count != 1:  # only ``file`` has one, and only one
            why = "a packet may carry exactly one binary attachment"
            await self._chatsio_refuse(eio_sid, header, InvalidPayload(why))
            return
        user = self._chatsio_user_of(eio_sid, header.namespace or "/")
        if user is None:
            raise ValueError("a binary packet for a namespace not connected")
        if not self.chatsio_attachments.admits(eio_sid, user, len(data)):
            await self._chatsio_refuse(eio_sid, header, self._chatsio_over_budget())
            return
        # python-socketio's partial packets (AsyncServer._binary_packet), filled
        # here as its _handle_eio_message would, without decoding again (if an
        # upgrade moves it, test_budgets' in-flight test fails).
        self._binary_packet[eio_sid] = header
        self.chatsio_attachments.start_clock(
            eio_sid,
            lambda: self.start_background_task(self._chatsio_expire, eio_sid, header),
        )

    async def _chatsio_take_attachment(
        self, eio_sid: str, pending, data: bytes
    ) -> None:
        """Complete the pending packet with its one attachment and handle it."""
        self.chatsio_attachments.stop_clock(eio_sid)
        refusal: ChatsioError | None = None
        if not placeholders_fit(pending.data, pending.attachment_count):
            refusal = InvalidPayload("a placeholder names no attachment")
        elif not self.chatsio_attachments.admits(
            eio_sid, self.chatsio_attachments.held[eio_sid].user, len(data)
        ):
            refusal = self._chatsio_over_budget()
        if refusal is not None:
            self._chatsio_drop_pending(eio_sid)
            await self._chatsio_refuse(eio_sid, pending, refusal)
            return
        try:
            await super()._handle_eio_message(eio_sid, data)  # runs the handler
        except Exception as exc:  # as _handle_eio_message's
            self._binary_packet.pop(eio_sid, None)
            self._chatsio_junk.note(
                eio_sid, "dropped a malformed packet from %s: %s", eio_sid, exc
            )
        finally:
            self.chatsio_attachments.release(eio_sid)

    def _chatsio_over_budget(self) -> RateLimited:
        return RateLimited(
            f"over {self.chatsio_attachments.per_user} bytes of files in flight for "
            "this user: send the next one when one is stored"
        )

    async def _chatsio_expire(self, eio_sid: str, header) -> None:
        """A header's attachment did not arrive in time: drop it, say so."""
        if self._binary_packet.get(eio_sid) is not header:
            return  # completed or dropped meanwhile
        self._chatsio_drop_pending(eio_sid)
        timeout = self.chatsio_attachments.timeout
        why = f"the attachment did not arrive within {timeout:g} s"
        await self._chatsio_refuse(eio_sid, header, InvalidPayload(why))

    def _chatsio_drop_pending(self, eio_sid: str) -> None:
        self._binary_packet.pop(eio_sid, None)
        self.chatsio_attachments.release(eio_sid)

    def _chatsio_user_of(self, eio_sid: str, namespace: str) -> str | None:
        """The user of this connection's accepted namespace, if any (its
        handler's ``chatsio_user_of``; see ``ChatsioServer``)."""
        handler = self.namespace_handlers.get(namespace)
        sid = self.manager.sid_from_eio_sid(eio_sid, namespace)
        user_of = getattr(handler, "chatsio_user_of", None)
        return user_of(sid) if user_of and sid else None

    async def _chatsio_answer_unreadable(self, eio_sid: str, data: str) -> None:
        """Answer ``too_large`` to an event too large to read (past
        ``fastjson.FALLBACK_MAX``, decoded once), if it asked for an ack on a
        namespace the session has connected."""
        header = self.packet_class(encoded_packet=data[: max(data.find("["), 0)])
        namespace = header.namespace or "/"
        sid = self.manager.sid_from_eio_sid(eio_sid, namespace)
        if (
            header.id is None
            or header.packet_type != packet.EVENT
            or sid is None
            or not self.manager.is_connected(sid, namespace)
        ):
            return
        error = TooLarge("this packet is over every payload's limit")
        await self._chatsio_answer_error(eio_sid, header, error, ack=True)

    async def _chatsio_refuse(self, eio_sid: str, header, error: ChatsioError) -> None:
        """Drop a binary packet, answering ``error`` if it asked for an ack."""
        self._chatsio_junk.note(
            eio_sid, "refused a binary packet from %s: %s", eio_sid, error.message
        )
        wants_ack = header.id is not None and header.packet_type == packet.BINARY_EVENT
        await self._chatsio_answer_error(eio_sid, header, error, ack=wants_ack)

    async def _chatsio_answer_error(
        self, eio_sid: str, header, error: ChatsioError, *, ack: bool
    ) -> None:
        """Tell the namespace (its ``chatsio_refused``) so that it counts
        ``error`` as its own; with ``ack``, answer the packet ``header`` names
        with it."""
        handler = self.namespace_handlers.get(header.namespace or "/")
        refused = getattr(handler, "chatsio_refused", None)
        if refused is not None:
            refused(error)
        if ack:
            await self._send_packet(
                eio_sid,
                self.packet_class(
                    packet.ACK,
                    namespace=header.namespace,
                    id=header.id,
                    data=[{"ok": False, "error": error.to_dict()}],
                ),
            )

    async def _handle_connect(self, eio_sid, namespace, data):
        namespace = namespace or "/"
        if self.manager.sid_from_eio_sid(eio_sid, namespace) is not None:
            # Already connected here: python-socketio refuses it; nothing to add.
            return await super()._handle_connect(eio_sid, namespace, data)
        await super()._handle_connect(eio_sid, namespace, data)
        sid = self.manager.sid_from_eio_sid(eio_sid, namespace)
        accepted = sid is not None and self.manager.is_connected(sid, namespace)
        if accepted:
            self.eio.chatsio_accepted(eio_sid)  # large packets (files) from now on
        handler = self.namespace_handlers.get(namespace)
        after_connect = getattr(handler, "chatsio_after_connect", None)
        if accepted and after_connect:
            await after_connect(sid)
        elif not accepted:
            self.start_background_task(
                self._chatsio_expel_if_anonymous, eio_sid, REFUSED_GRACE
            )

    async def _chatsio_expel_if_anonymous(self, eio_sid: str, grace: float) -> None:
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
        await self.eio.chatsio_expel(eio_sid)
