"""The Socket.IO server, with the guards the stock one lacks."""

from __future__ import annotations

import asyncio
import logging

import socketio

from chatsio.protocol import RESERVED_EVENTS
from chatsio.sockets.engine import ChatsioEngine

logger = logging.getLogger(__name__)

# An Engine.IO connection must have a namespace accepted within AUTH_GRACE of
# opening, and within REFUSED_GRACE of a refusal (time to try another token).
AUTH_GRACE = 3.0
REFUSED_GRACE = 1.0


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
