"""The Socket.IO server, with two guards the stock one lacks."""

from __future__ import annotations

import logging

import socketio

from chatsio.protocol import RESERVED_EVENTS

logger = logging.getLogger(__name__)


class ChatsioServer(socketio.AsyncServer):
    """``AsyncServer`` that ignores forged reserved events and says when a
    namespace connection is complete.

    python-socketio dispatches a client event named ``connect`` or
    ``disconnect`` to the same handler as the real thing; here such events are
    dropped. And events emitted from inside a connect handler would reach the
    client before its CONNECT packet, so a namespace's ``after_connect`` hook runs
    once the connection is accepted, for the ``welcome`` event.
    """

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
