"""The Engine.IO layer under Socket.IO: python-engineio's ``AsyncServer``
with the limits the stock one lacks.

Replaces, in ``engineio.AsyncServer``:

- the aiohttp driver's request translation: polling bodies read whole (a body
  over several TCP segments was cut short and closed the session), small
  bodies only before a namespace accepts the session, the real peer address;
- ``send_packet``: a client with ``SEND_BACKLOG_MAX`` packets unread is cut off
  instead of queueing without bound;
- ``disconnect``: bounded by ``DISCONNECT_TIMEOUT`` (a client that stopped
  polling held a POST for good), and ``chatsio_expel`` to end a session now;
- ``_service_task`` and the ping timers: sessions forgotten as they close
  (the stock ones kept every connection of the last 20-25 s in memory under
  churn);
- the queue (``SendQueue``) and ``chatsio_write_now``: a frame written straight
  to an idle WebSocket, for the fan-out and the acks (``db2b848``, ``a27e4e3``:
  not measured alone);
- ``chatsio_receive_message``: a client's MESSAGE frame straight to
  python-socketio's handler (measured only in the ``acda5a8`` bundle, see
  ``server``; removable, ``pieces``).

Everything but the last two is a guard or a limit, not a speed-up.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time

import engineio
from engineio import packet as eio_packet
from engineio.async_socket import AsyncSocket
from engineio.exceptions import EngineIOError

from chatsio.transport.websocket import (
    ANONYMOUS_PACKET_MAX,
    BoundedWebSocket,
    is_accepted,
)

logger = logging.getLogger(__name__)

# Packets queued for one client before it counts as not reading. At chat rates
# a live client drains its queue in milliseconds; this bounds the memory a
# stalled one can hold until the ping timeout would have found it.
SEND_BACKLOG_MAX = 1000
# A disconnect that cannot deliver its CLOSE packet in this time is forced.
DISCONNECT_TIMEOUT = 0.5


class ChatsioEngine(engineio.AsyncServer):
    """``engineio.AsyncServer`` that reads polling bodies whole, takes only
    small packets from a session no namespace accepted yet, logs the real peer
    address, cuts off clients that stop reading, and offers permessage-deflate
    only when ``ws_compression`` is set.

    ``chatsio_connection_guard`` (``api.connections.ConnectionGuard``, or None) hears
    which HTTP connections carry an accepted session: those stop counting
    against their client address."""

    def __init__(
        self,
        *args,
        chatsio_ws_compression: bool = False,
        chatsio_connection_guard=None,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.chatsio_ws_compression = chatsio_ws_compression
        self._chatsio_connection_guard = chatsio_connection_guard
        translate = self._async["translate_request"]

        def translate_request(request):
            environ = translate(request)
            socket = self.sockets.get(request.query.get("sid"))
            limit = (
                self.max_http_buffer_size
                if socket is not None and is_accepted(socket)
                else ANONYMOUS_PACKET_MAX
            )
            environ["wsgi.input"] = WholeBody(environ["wsgi.input"], limit, socket)
            # engineio puts 127.0.0.1 here; the peer (or, behind trusted
            # proxies, the client they name) is what a log line wants.
            environ["REMOTE_ADDR"] = request.remote or ""
            return environ

        self._async = {
            **self._async,
            "translate_request": translate_request,
            "websocket": BoundedWebSocket,
        }
        self._chatsio_cutting_off: set[str] = set()
        self._chatsio_ping_timers: dict[str, asyncio.Task] = {}

    async def handle_request(self, request):
        response = await super().handle_request(request)
        socket = self.sockets.get(request.query.get("sid"))
        if socket is not None and is_accepted(socket):
            self.chatsio_trust_connection(request.protocol)
        return response

    def chatsio_accepted(self, sid: str) -> None:
        """A namespace accepted session ``sid``: it may send large packets
        (files), and its connections no longer count as anonymous."""
        socket = self.sockets.get(sid)
        if socket is None or is_accepted(socket):
            return
        socket.chatsio_accepted = True
        websocket = getattr(socket, "chatsio_websocket", None)
        if websocket is not None:
            websocket.chatsio_accepted()

    def chatsio_trust_connection(self, protocol) -> None:
        """``protocol`` (an aiohttp RequestHandler) carries an accepted session."""
        if self._chatsio_connection_guard is not None:
            self._chatsio_connection_guard.trust(protocol)

    def start_background_task(self, target, *args, **kwargs):
        task = super().start_background_task(target, *args, **kwargs)
        if getattr(target, "__func__", None) is AsyncSocket._send_ping:
            # engineio's ping timer sleeps a whole ping interval (25 s) and
            # keeps its socket alive meanwhile, closed or not: under churn
            # that held every connection of the last 25 s in memory.
            sid = target.__self__.sid
            self._chatsio_ping_timers[sid] = task
            task.add_done_callback(lambda done: self._chatsio_forget_ping(sid, done))
        return task

    async def _service_task(self):
        """As engineio's: check every socket's ping timeout once per
        ``ping_timeout``, spread evenly. But it holds socket ids between
        checks, where engineio's walks a copy of the socket table and so kept
        each socket closed during a pass (up to 20 s) in memory."""
        self.service_task_event = self.create_event()
        while not self.service_task_event.is_set():
            sids = list(self.sockets) or [None]
            for sid in sids:
                try:
                    await self._chatsio_check_socket(sid)
                except Exception:
                    logger.exception("checking Engine.IO session %s failed", sid)
                try:
                    async with asyncio.timeout(self.ping_timeout / len(sids)):
                        await self.service_task_event.wait()
                    return
                except TimeoutError:
                    pass

    async def _chatsio_check_socket(self, sid: str | None) -> None:
        socket = self.sockets.get(sid)
        if socket is None:
            return
        if socket.closed:
            self.sockets.pop(sid, None)
        elif not socket.closing and not getattr(socket, "chatsio_receiving", False):
            # A session whose POST body is still coming cannot answer a ping
            # (its client sends one POST at a time); the ConnectionGuard
            # closes that body if it comes slower than the minimum rate.
            await socket.check_ping_timeout()

    def _chatsio_forget_ping(self, sid: str, task: asyncio.Task) -> None:
        if self._chatsio_ping_timers.get(sid) is task:
            del self._chatsio_ping_timers[sid]

    async def _trigger_event(self, event, *args, **kwargs):
        if event == "disconnect":
            timer = self._chatsio_ping_timers.pop(args[0], None)
            if timer is not None and timer is not asyncio.current_task():
                timer.cancel()
        return await super()._trigger_event(event, *args, **kwargs)

    async def chatsio_receive_message(self, sid: str, data: str) -> None:
        """A client's MESSAGE to the ``message`` handler (python-socketio's),
        as engineio's socket and ``_trigger_event`` hand it on, errors logged,
        without their layers: every event a client sends comes this way."""
        handler = self.handlers.get("message")
        if handler is None:
            return
        try:
            await handler(sid, data)
        except Exception:
            logger.exception("handling a message from %s failed", sid)

    def _log_error_once(self, message, message_key):
        """engineio logs each kind of bad request (an unknown session, a bad
        transport) once at ERROR, then at INFO: all are the client's fault."""
        self.logger.info(message)

    def create_queue(self, *args, **kwargs):
        return SendQueue(*args, **kwargs)

    def chatsio_write_now_to(self, sids, frame: bytes) -> list[str]:
        """``chatsio_write_now`` for each of ``sids``; those it could not
        write to."""
        write_now = self.chatsio_write_now
        return [sid for sid in sids if not write_now(sid, frame)]

    def chatsio_write_now(self, sid: str, frame: bytes) -> bool:
        """Write a ready WebSocket ``frame`` to ``sid`` now, if nothing is ahead
        of it; False leaves the packet to ``send_packet``.

        Nothing is ahead when the socket's writer task waits on an empty queue:
        a frame written now cannot overtake a packet queued or in its hands.
        Polling, upgrading and closing sockets, one that owes a pong, and one
        whose transport has a backlog all take the queue.
        """
        socket = self.sockets.get(sid)
        if (
            socket is None
            or not socket.upgraded
            or socket.upgrading
            or socket.closing
            or not socket.queue.chatsio_idle()
            or (socket.last_ping and time.time() - socket.last_ping > self.ping_timeout)
        ):
            return False
        websocket = getattr(socket, "chatsio_websocket", None)
        return websocket is not None and websocket.chatsio_write_now(frame)

    async def chatsio_deliver(self, sid: str, message, frame: bytes) -> None:
        """``frame`` written now if nothing is ahead of it, else ``message``
        through the socket's queue (see ``outgoing``)."""
        if not self.chatsio_write_now(sid, frame):
            await self.send_packet(sid, message)

    async def disconnect(self, sid=None):
        """As engineio's, but never stuck: its close waits for the client's
        queue to drain, which a client that stopped polling never does (a
        POST answered by a disconnect then hung for good)."""
        if sid is None:
            return await super().disconnect()
        try:
            async with asyncio.timeout(DISCONNECT_TIMEOUT):
                await super().disconnect(sid)
        except TimeoutError:
            await self.chatsio_expel(sid)

    async def send_packet(self, sid, pkt):
        socket = self.sockets.get(sid)
        if socket is not None and socket.queue.qsize() >= SEND_BACKLOG_MAX:
            if sid not in self._chatsio_cutting_off:
                logger.warning(
                    "disconnecting %s: %d packets unread, it is not reading",
                    sid,
                    socket.queue.qsize(),
                )
                self._chatsio_cutting_off.add(sid)
                self.start_background_task(self._chatsio_cut_off, sid)
            return  # nothing more is queued for it
        await super().send_packet(sid, pkt)

    async def _chatsio_cut_off(self, sid: str) -> None:
        try:
            await self.chatsio_expel(sid)
        finally:
            self._chatsio_cutting_off.discard(sid)

    async def chatsio_expel(self, sid: str, reason: str | None = None) -> None:
        """End a session now, whatever the client does (for ``reason``, by
        default a server disconnect).

        ``disconnect`` waits for the client's queue to drain and leaves a
        WebSocket open until the client closes it; a hostile or stalled client
        does neither. Here the session ends and its WebSocket is aborted.
        """
        socket = self.sockets.pop(sid, None)
        if socket is None:
            return
        await socket.close(wait=False, reason=reason or self.reason.SERVER_DISCONNECT)
        abort_websocket(socket)


class SendQueue(asyncio.Queue):
    """A socket's Engine.IO send queue, which knows when its consumer (the
    WebSocket writer task) is parked on it empty-handed."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._chatsio_waiting = 0

    async def get(self):
        self._chatsio_waiting += 1
        try:
            return await super().get()
        finally:
            self._chatsio_waiting -= 1

    def chatsio_discard(self) -> None:
        """Drop what is queued: its writer is gone. A ``close()`` that raced
        with the client's own (its CLOSE packet queued after the writer took
        its last batch) waits on ``join()``, which would otherwise never end."""
        while not self.empty():
            self.get_nowait()
            self.task_done()

    def chatsio_idle(self) -> bool:
        # A put wakes the waiter but leaves the item queued until it runs:
        # not empty, so not idle, until the writer is back in get().
        return self._chatsio_waiting > 0 and self.empty()


def abort_websocket(socket) -> None:
    """Abort the Engine.IO ``socket``'s WebSocket, if it has one: a client
    need not close it on a CLOSE packet, and a hostile one does not."""
    websocket = getattr(socket, "chatsio_websocket", None)
    if websocket is not None:
        websocket.chatsio_abort()


def outgoing(encoded: str) -> tuple[eio_packet.Packet, bytes]:
    """A Socket.IO packet's text as the Engine.IO MESSAGE a socket's queue
    takes, and as the WebSocket frame ``chatsio_write_now`` takes: encoded once, for
    any number of recipients."""
    message = eio_packet.Packet(eio_packet.MESSAGE, encoded)
    return message, text_frame(message.encode())


def text_frame(message: str) -> bytes:
    """An unmasked, uncompressed WebSocket text frame (RFC 6455 5.2), as a
    server sends it."""
    payload = message.encode()
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x81, length)
    elif length < 65536:
        header = struct.pack("!BBH", 0x81, 126, length)
    else:
        header = struct.pack("!BBQ", 0x81, 127, length)
    return header + payload


class WholeBody:
    """A request body stream whose ``read(n)`` returns all ``n`` bytes, or fails.

    python-engineio reads a long-polling POST with one ``read(length)``, and
    aiohttp's stream answers with only what has arrived so far: a body spread
    over several TCP segments (a file of a few hundred KB) was cut short, and
    the session closed on a base64 error. A body over ``limit`` is refused
    unread, which closes the session. A body that comes too slowly has its
    connection closed by the app's ``ConnectionGuard``, an error here.

    While the body of ``socket`` (its Engine.IO session) comes, the session
    is ``receiving``, spared the ping check, and a body received counts as an
    answer to the last ping: a phone's 5 MiB file at 64 KiB/s takes 110 s.
    """

    def __init__(self, stream, limit: int, socket=None) -> None:
        self.stream = stream
        self.limit = limit
        self.socket = socket

    async def read(self, length: int = -1) -> bytes:
        if length == 0:
            return b""  # an empty payload: no packets
        if length > self.limit:
            raise EngineIOError(f"a body over {self.limit} bytes, refused unread")
        socket = self.socket
        if socket is not None:
            socket.chatsio_receiving = True
        try:
            if length < 0:
                body = await self.stream.read()
            else:
                body = await self.stream.readexactly(length)
        except asyncio.IncompleteReadError:
            raise EngineIOError("the request body ended early") from None
        except OSError:  # the connection closed, a slow body's included
            raise EngineIOError("the connection closed during the body") from None
        finally:
            if socket is not None:
                socket.chatsio_receiving = False
        if socket is not None and socket.last_ping:
            socket.last_ping = time.time()
        try:
            body.decode("utf-8")  # engineio decodes it, and would crash
        except UnicodeDecodeError:
            raise EngineIOError("the request body is not UTF-8") from None
        return body
