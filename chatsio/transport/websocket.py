"""An Engine.IO session's WebSocket: served by chatsio, with bounded sends.

python-engineio's own loop (``AsyncSocket._websocket_handler``) starts a task
and a ``wait_for`` for every frame it reads, to give up on a client silent
for a ping cycle: at chat rates that was a few per cent of the server's CPU.
``BoundedWebSocket._chatsio_serve`` speaks the same protocol and reads on the
connection's own task, with no timeout per frame. A silent client still goes
as soon: it stops answering pings, so engineio's ping check closes its
session, and the writer, given nothing for a ping cycle, closes the
WebSocket, which ends the read. Measured (``daffd51``, bench/perf saturate at
9,000 deliveries/s): about 34 -> 30 µs of server CPU per delivery.

Also replaced: the driver's WebSocket, whose sends block for ever on a client
that stopped reading (here ``SEND_TIMEOUT``) and which negotiated deflate with
every client that offered it (~90 KB per connection; ``414543a``); its upgrade,
which waited for the client without a limit and let a second WebSocket take
over the session; and frames larger than ``ANONYMOUS_PACKET_MAX`` before a
namespace accepts the session. These are guards, not speed-ups.
"""

from __future__ import annotations

import asyncio
import base64
import logging

from aiohttp import web
from engineio import packet as eio_packet
from engineio.async_drivers import aiohttp as aiohttp_driver
from engineio.exceptions import QueueEmpty, SocketIsClosedError, UnknownPacketError

logger = logging.getLogger(__name__)

# A WebSocket frame that cannot be written for this long (the client's buffers
# are full: it stopped reading) ends that connection. As python-engineio's
# default ping timeout: a client that reads nothing would miss its pings too.
SEND_TIMEOUT = 20.0
# A frame written straight to a WebSocket (see ChatsioEngine.chatsio_write_now) needs a
# transport holding less than this unsent. Past it, packets take the queue,
# where SEND_BACKLOG_MAX and SEND_TIMEOUT cut off a client that stopped reading.
DIRECT_BUFFER_MAX = 64 * 1024
# The largest polling body or WebSocket frame a session may send before a
# namespace accepted it: a CONNECT packet with a 4,096-character token, with
# room to spare. Anything larger closes the session, undecoded; an accepted
# session may send up to the engine's max_http_buffer_size (a file).
ANONYMOUS_PACKET_MAX = 8 * 1024
# Engine.IO packet types: OPEN, CLOSE, PING, PONG, MESSAGE, UPGRADE, NOOP.
ENGINEIO_TYPES = frozenset("0123456")
DIGITS = frozenset("0123456789")


class BoundedWebSocket(aiohttp_driver.WebSocket):
    """python-engineio's aiohttp WebSocket, whose sends give up after
    SEND_TIMEOUT and drop the connection instead of blocking its writer task
    (and so its handler) for ever, and which serves its Engine.IO session
    itself (see the module's docstring)."""

    _chatsio_transport = None  # the connection's, once the upgrade is answered
    _chatsio_direct = False  # whether chatsio_write_now may write frames itself
    # The largest frame taken: aiohttp's limit (max_msg_size, fixed when the
    # connection opens) is the file's, but until a namespace accepts the
    # session a larger frame than this closes it, before any decoding.
    _chatsio_frame_max = ANONYMOUS_PACKET_MAX

    async def __call__(self, environ):
        # As the stock driver, but with the compression the engine was given:
        # aiohttp's default would negotiate deflate with every client that
        # offers it, and a deflate context holds ~90 KB per connection.
        self._chatsio_request = environ["aiohttp.request"]
        self.environ = environ
        # The handler is engineio's, a bound method of the Engine.IO socket
        # this serves.
        socket = self.handler.__self__
        if socket.upgrading or socket.upgraded:
            # A session has one WebSocket: engineio refuses one once upgraded,
            # and one during the upgrade would take it over, then mark the
            # session not upgraded when it gave up.
            logger.info("%s: refused a second WebSocket", socket.sid)
            return self.server._bad_request("The session has a WebSocket")
        # Claimed before any await, so a second attempt meanwhile is refused.
        socket.upgrading = socket.connected
        self._sock = web.WebSocketResponse(
            max_msg_size=self.server.max_http_buffer_size,
            compress=self.server.chatsio_ws_compression,
        )
        # The socket keeps a way back, so that ChatsioEngine.chatsio_expel can abort it.
        socket.chatsio_websocket = self
        try:
            await self._sock.prepare(self._chatsio_request)
            # Kept for chatsio_write_now: the request's property is a look-up per frame,
            # and whether deflate was agreed (then frames need aiohttp's writer)
            # is settled by the handshake.
            self._chatsio_transport = self._chatsio_request.transport
            self._chatsio_direct = not self._sock.compress
            if is_accepted(socket):
                self.chatsio_accepted()
            await self._chatsio_serve(socket)
            return self._sock
        finally:
            # Break the socket <-> WebSocket cycle, so a closed connection is
            # freed at once rather than at the next full garbage collection.
            socket.chatsio_websocket = None
            socket.upgrading = False  # the claim, should prepare() have failed
            if socket.closed:
                socket.queue.chatsio_discard()

    def chatsio_accepted(self) -> None:
        """A namespace accepted the session: frames up to aiohttp's limit, and
        the connection no longer counts as anonymous."""
        self._chatsio_frame_max = self.server.max_http_buffer_size
        self.server.chatsio_trust_connection(self._chatsio_request.protocol)

    async def _chatsio_serve(self, socket) -> None:
        """The session over this WebSocket, as engineio's handler runs it: the
        upgrade handshake if it began on polling, then a writer task for the
        queued packets while this task reads, until either side closes."""
        if socket.connected:
            if not await self._chatsio_upgrade(socket):
                return
        else:
            socket.connected = socket.upgraded = True
        writer = asyncio.create_task(self._chatsio_write_queued(socket))
        try:
            await self._chatsio_read_packets(socket)
        except BaseException:  # cancelled (the server stopping): the writer too
            writer.cancel()
            raise
        await socket.queue.put(None)  # the writer's signal to stop
        await writer
        await socket.close(
            wait=False, abort=True, reason=self.server.reason.TRANSPORT_CLOSE
        )

    async def _chatsio_upgrade(self, socket) -> bool:
        """A polling session's move here: the client's PING "probe" answered,
        the pending poll ended with a NOOP, then the client's UPGRADE. Sends
        are held meanwhile (``upgrading``, set by ``__call__``). False: the
        client did not follow through within a ping timeout, and the session
        goes on polling. (engineio's waits for the client without a limit.)"""
        try:
            async with asyncio.timeout(self.server.ping_timeout):
                upgraded = await self._chatsio_handshake(socket)
        except TimeoutError:
            logger.info("%s: WebSocket upgrade timed out", socket.sid)
            upgraded = False
        socket.upgraded, socket.upgrading = upgraded, False
        return upgraded

    async def _chatsio_handshake(self, socket) -> bool:
        probe = await self.wait()
        if probe is None or not is_packet(probe, eio_packet.PING, "probe"):
            logger.info("%s: failed WebSocket upgrade, no PING probe", socket.sid)
            return False
        await self.send(eio_packet.Packet(eio_packet.PONG, data="probe").encode())
        await socket.queue.put(eio_packet.Packet(eio_packet.NOOP))  # ends the poll
        upgrade = await self.wait()
        if upgrade is None or not is_packet(upgrade, eio_packet.UPGRADE):
            logger.info("%s: failed WebSocket upgrade, no UPGRADE", socket.sid)
            return False
        return True

    async def _chatsio_read_packets(self, socket) -> None:
        """Hand each packet the client sends to the Engine.IO socket, until the
        WebSocket closes or the socket is closed. aiohttp refuses frames over
        the engine's ``max_http_buffer_size`` (``max_msg_size``)."""
        # The engine's shortcut for Socket.IO packets, unless a benchmark took
        # it away (transport/pieces.py): then engineio's decoding.
        receive_message = getattr(self.server, "chatsio_receive_message", None)
        while (data := await self.wait()) is not None:
            if receive_message is not None and carries_socketio_packet(data):
                await receive_message(socket.sid, data[1:])
                continue
            try:
                await socket.receive(eio_packet.Packet(encoded_packet=data))
            except UnknownPacketError:  # OPEN, PING or NOOP from a client
                pass
            except SocketIsClosedError:
                break
            except Exception:  # one packet's failure is not the connection's
                logger.exception("%s: receiving a packet failed", socket.sid)

    async def _chatsio_write_queued(self, socket) -> None:
        """Send what is queued for the socket (what ``chatsio_write_now`` could not
        write at once), until the reader or the queue's idle limit ends it."""
        while True:
            try:
                packets = await socket.poll()
            except QueueEmpty:  # nothing, not even a ping, for a ping cycle
                break
            if not packets:  # the reader is done
                break
            try:
                for packet in packets:
                    await self.send(packet.encode())
            except Exception:  # the connection is gone or cut off
                break
        try:  # a close handshake waits on the client's buffers
            async with asyncio.timeout(SEND_TIMEOUT):
                await self.close()
        except TimeoutError:
            self.chatsio_abort()

    async def wait(self):
        """The next Engine.IO packet, as text or bytes; None once the
        WebSocket has closed.

        engineio's raises OSError at the close, and that exception's traceback
        holds the handler's frames in a reference cycle: every closed
        connection waited for a full garbage collection. A frame engineio
        cannot decode ends the session here, as it ends stock's (whose
        handler fails on it, leaving the session to the ping timeout); one of
        a packet type engineio lacks is dropped, as stock drops it.
        """
        while True:
            data = (await self._sock.receive()).data
            if not isinstance(data, (str, bytes)):
                return None
            if len(data) > self._chatsio_frame_max:
                await self._chatsio_refuse_large(len(data))
                return None
            if isinstance(data, bytes) or is_engineio_packet(data):
                return data
            if data[:1] not in DIGITS:
                await self._chatsio_refuse_invalid()
                return None
            logger.warning(
                "dropped an Engine.IO packet of unknown type from %s",
                self.handler.__self__.sid,
            )

    async def _chatsio_refuse_large(self, size: int) -> None:
        """End the session of a client that sent a large frame before any
        namespace accepted it: nothing of it is decoded."""
        sid = self.handler.__self__.sid
        logger.info("closing %s: a %d-byte frame before any namespace", sid, size)
        await self.server.chatsio_expel(sid)

    async def _chatsio_refuse_invalid(self) -> None:
        """End the session of a client that sent a frame engineio cannot
        decode: empty, of a type that is no digit, or bad base64."""
        sid = self.handler.__self__.sid
        logger.info("closing %s: an invalid Engine.IO packet", sid)
        await self.server.chatsio_expel(sid, reason=self.server.reason.TRANSPORT_ERROR)

    def chatsio_abort(self) -> None:
        if self._chatsio_request.transport is not None:
            self._chatsio_request.transport.abort()

    def chatsio_write_now(self, frame: bytes) -> bool:
        """Hand ``frame`` to the transport unless it is closing, compressing
        (deflate needs aiohttp's writer) or backed up past DIRECT_BUFFER_MAX."""
        transport = self._chatsio_transport
        if (
            not self._chatsio_direct
            or self._sock.closed
            or transport.is_closing()
            or transport.get_write_buffer_size() > DIRECT_BUFFER_MAX
        ):
            return False
        transport.write(frame)
        return True

    async def send(self, message):
        try:
            async with asyncio.timeout(SEND_TIMEOUT):
                await super().send(message)
        except TimeoutError:
            logger.warning("dropping a WebSocket client that stopped reading")
            self.chatsio_abort()
            raise ConnectionResetError("the client stopped reading") from None


def is_accepted(socket) -> bool:
    """Whether a namespace accepted the Engine.IO ``socket``'s session."""
    return getattr(socket, "chatsio_accepted", False)


def is_packet(data: str | bytes, packet_type: int, payload: str | None = None) -> bool:
    """Whether ``data`` is an Engine.IO packet of ``packet_type`` (carrying
    ``payload``, if given), decoded as engineio decodes it."""
    packet = eio_packet.Packet(encoded_packet=data)
    return packet.packet_type == packet_type and (
        payload is None or packet.data == payload
    )


def carries_socketio_packet(data: str | bytes) -> bool:
    """Whether ``data`` is an Engine.IO MESSAGE holding a Socket.IO packet as
    text (a digit, the Socket.IO packet type, after the ``4``): every event a
    client sends. engineio would decode it to that text, and the socket pass
    it to the engine's ``message`` handler; ``ChatsioEngine.chatsio_receive_message``
    does so directly. Anything else takes engineio's decoding."""
    return type(data) is str and data[:1] == "4" and data[1:2] in DIGITS


def is_engineio_packet(text: str) -> bool:
    """Whether ``text`` is an Engine.IO packet a session takes: a known packet
    type, or ``b`` and base64 (binary data in a text frame)."""
    if text[:1] == "b":
        try:
            base64.b64decode(text[1:])
        except ValueError:  # binascii.Error, or characters beyond ASCII
            return False
        return True
    return text[:1] in ENGINEIO_TYPES
