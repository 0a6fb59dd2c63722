"""The Socket.IO server, with two guards the stock one lacks."""

from __future__ import annotations

import asyncio
import logging

import socketio
from engineio.exceptions import EngineIOError

from chatsio.protocol import RESERVED_EVENTS

logger = logging.getLogger(__name__)


class ChatsioServer(socketio.AsyncServer):
    """``AsyncServer`` that ignores forged reserved events, says when a
    namespace connection is complete, and reads polling bodies whole.

    python-socketio dispatches a client event named ``connect`` or
    ``disconnect`` to the same handler as the real thing; here such events are
    dropped. And events emitted from inside a connect handler would reach the
    client before its CONNECT packet, so a namespace's ``after_connect`` hook runs
    once the connection is accepted, for the ``welcome`` event.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        translate = self.eio._async["translate_request"]

        def translate_request(request):
            environ = translate(request)
            environ["wsgi.input"] = WholeBody(environ["wsgi.input"])
            # engineio puts 127.0.0.1 here; the peer (or, behind trusted
            # proxies, the client they name) is what a log line wants.
            environ["REMOTE_ADDR"] = request.remote or ""
            return environ

        self.eio._async = {**self.eio._async, "translate_request": translate_request}

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
        await super()._handle_event(eio_sid, namespace, id, data)

    async def _handle_connect(self, eio_sid, namespace, data):
        await super()._handle_connect(eio_sid, namespace, data)
        namespace = namespace or "/"
        sid = self.manager.sid_from_eio_sid(eio_sid, namespace)
        handler = self.namespace_handlers.get(namespace)
        after_connect = getattr(handler, "after_connect", None)
        if (
            sid is not None
            and after_connect
            and self.manager.is_connected(sid, namespace)
        ):
            await after_connect(sid)


class WholeBody:
    """A request body stream whose ``read(n)`` returns all ``n`` bytes.

    python-engineio reads a long-polling POST with one ``read(length)``, and
    aiohttp's stream answers with only what has arrived so far: a body spread
    over several TCP segments (a file of a few hundred KB) was cut short, and
    the session closed on a base64 error.
    """

    def __init__(self, stream) -> None:
        self.stream = stream

    async def read(self, length: int = -1) -> bytes:
        if length < 0:
            return await self.stream.read()
        try:
            return await self.stream.readexactly(length)
        except asyncio.IncompleteReadError:
            raise EngineIOError("the request body ended early") from None
