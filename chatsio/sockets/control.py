"""The /control namespace: who is online, starting, leaving and ending chats."""

from __future__ import annotations

import logging
from typing import Any

from chatsio.protocol import WELCOME, iso, now_ms, user_room
from chatsio.schemas import chat_out, chat_ref_in, load, presence_out, start_in
from chatsio.sockets.base import BaseNamespace

logger = logging.getLogger(__name__)


class ControlNamespace(BaseNamespace):
    async def chatsio_authenticated(self, sid: str, user: str) -> None:
        # Counted with the connection, as on_disconnect uncounts it.
        self.chatsio_services.presence.connected(user)
        # Joined before the connection is accepted, so no invite can slip
        # past, nor a presence change between welcome's reading and its event.
        await self.enter_room(sid, user_room(user))

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        connection = self.chatsio_connections.get(sid)
        await super().on_disconnect(sid, reason)
        if connection:
            self.chatsio_services.presence.disconnected(connection.user)

    async def chatsio_after_connect(self, sid: str) -> None:
        """Send ``welcome`` with the user's active chats and the presence of
        the users in them."""
        connection = self.chatsio_connections.get(sid)
        if connection is None:
            return
        try:
            chats = await self.chatsio_services.chats.of_user(
                connection.user, active_only=True
            )
            presence = await self.chatsio_services.presence.visible(connection.user)
        except Exception:
            # The connection stands; the client can still start and join chats.
            logger.exception("welcome failed: sid=%s user=%s", sid, connection.user)
            return
        await self.emit(
            WELCOME,
            {
                "user": connection.user,
                "chats": chat_out.dump(chats, many=True),
                "presence": presence_out.dump(presence, many=True),
                "server_time": iso(now_ms()),
                "max_file_bytes": self.chatsio_services.messages.max_file_bytes,
            },
            to=sid,
        )

    async def on_start(self, sid: str, user: str, payload: Any) -> dict:
        """start: create a chat and invite its members."""
        request = load(start_in, payload)
        started = await self.chatsio_services.chats.start(
            user, request["members"], request["title"], origin=sid
        )
        return {
            "chat": chat_out.dump(started.chat),
            "presence": presence_out.dump(started.presence, many=True),
        }

    async def on_terminate(self, sid: str, user: str, payload: Any) -> dict:
        """terminate: end a chat for all its members."""
        request = load(chat_ref_in, payload)
        await self.chatsio_services.chats.terminate(user, request["id"])
        return {}

    async def on_leave(self, sid: str, user: str, payload: Any) -> dict:
        """leave: leave a chat for good, on every device."""
        request = load(chat_ref_in, payload)
        await self.chatsio_services.chats.leave(user, request["id"])
        return {}
