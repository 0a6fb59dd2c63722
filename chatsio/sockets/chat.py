"""The /chat namespace: rooms, messages, typing, read marks and history."""

from __future__ import annotations

from typing import Any

from chatsio.protocol import chat_room, user_room
from chatsio.schemas import (
    chat_out,
    chat_ref_in,
    file_in,
    history_in,
    join_in,
    load,
    message_out,
    notify_in,
    read_in,
)
from chatsio.sockets.base import BaseNamespace


class ChatNamespace(BaseNamespace):
    async def chatsio_authenticated(self, sid: str, user: str) -> None:
        # So that a member leaving a chat takes all their sockets out of its
        # room, on every node (ChatService.leave, MeteredEmitter.evict).
        await self.enter_room(sid, user_room(user))

    async def on_join(self, sid: str, user: str, payload: Any) -> dict:
        """join: enter a chat's room and catch up."""
        request = load(join_in, payload)
        room = chat_room(request["id"])
        chat, messages = await self.chatsio_services.messages.join(
            user,
            request["id"],
            request["since"],
            admit=lambda: self.enter_room(sid, room),
        )
        return {
            "chat": chat_out.dump(chat),
            "messages": message_out.dump(messages, many=True),
        }

    async def on_leave(self, sid: str, user: str, payload: Any) -> dict:
        """leave: stop receiving a chat's traffic on this socket."""
        request = load(chat_ref_in, payload)
        room = chat_room(request["id"])
        await self.chatsio_services.messages.leave(
            user, request["id"], depart=lambda: self.leave_room(sid, room)
        )
        return {}

    async def on_notify(self, sid: str, user: str, payload: Any) -> dict:
        """notify: store a message and send it to the room."""
        request = load(notify_in, payload)
        message = await self.chatsio_services.messages.post(
            user, request["id"], request["text"], request["client_id"], origin=sid
        )
        return {"message": message_out.dump(message)}

    async def on_typing(self, sid: str, user: str, payload: Any) -> dict:
        """typing: tell the room that the user is typing."""
        request = load(chat_ref_in, payload)
        chat_id = request["id"]
        await self.chatsio_services.messages.typing(
            user, chat_id, origin=sid, joined=self._chatsio_joined(sid, chat_id)
        )
        return {}

    async def on_read(self, sid: str, user: str, payload: Any) -> dict:
        """read: move the user's read mark forward."""
        request = load(read_in, payload)
        mark = await self.chatsio_services.reads.read(
            user, request["id"], request["seq"], origin=sid
        )
        return {"read_seq": mark}

    def _chatsio_joined(self, sid: str, chat_id: str) -> bool:
        """Whether the socket is in the chat's room (where join put it after
        checking membership; terminate closes it on every node the bus
        reaches, so ``MessageService.typing`` trusts it only briefly).

        Asks the manager's room table directly: ``self.rooms(sid)`` would scan
        every room of the namespace.
        """
        rooms = self.server.manager.rooms.get(self.namespace, {})
        return sid in rooms.get(chat_room(chat_id), ())

    async def on_history(self, sid: str, user: str, payload: Any) -> dict:
        """history: older messages, page by page."""
        request = load(history_in, payload)
        messages = await self.chatsio_services.messages.history(
            user, request["id"], before=request["before"], limit=request["limit"]
        )
        return {"messages": message_out.dump(messages, many=True)}

    async def on_file(self, sid: str, user: str, payload: Any) -> dict:
        """file: store a binary attachment and announce it to the room."""
        request = load(file_in, payload)
        message = await self.chatsio_services.messages.post_file(
            user,
            request["id"],
            request["name"],
            request["type"],
            request["data"],
            origin=sid,
        )
        return {"message": message_out.dump(message)}
