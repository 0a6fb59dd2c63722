"""Starting, reading and ending chats."""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Collection
from dataclasses import dataclass

from chatsio.errors import (
    Forbidden,
    InvalidPayload,
    NotFound,
    RateLimited,
    Terminated,
)
from chatsio.metrics import Metrics
from chatsio.protocol import (
    CHAT,
    CONTROL,
    INVITE,
    KIND_NOTIFICATION,
    LEFT,
    NOTIFY,
    TERMINATE,
    chat_room,
    now_ms,
    user_room,
)
from chatsio.schemas import chat_out, message_out, presence_out
from chatsio.services.buckets import Buckets, Rate
from chatsio.services.emitter import Emitter
from chatsio.services.presence import Presence, PresenceService
from chatsio.storage import Storage
from chatsio.storage.records import Access, Chat, Message


@dataclass(frozen=True, slots=True)
class Started:
    chat: Chat
    presence: list[Presence]  # the other members', as the starter sees them


class ChatService:
    def __init__(
        self,
        storage: Storage,
        emitter: Emitter,
        metrics: Metrics,
        presence: PresenceService,
        *,
        chats_per_minute: int,
        invites_per_minute: int,
    ) -> None:
        self.storage = storage
        self.emitter = emitter
        self.metrics = metrics
        self.presence = presence
        self.started = Buckets(Rate.per_minute(chats_per_minute))
        self.invited = Buckets(Rate.per_minute(invites_per_minute))

    async def start(
        self,
        user: str,
        members: list[str],
        title: str | None,
        origin: str | None = None,
    ) -> Started:
        """Create a chat of ``user`` and ``members``; invite every member's devices.

        ``origin`` is the /control socket that asked, which gets the chat in its
        ack instead of an invite. Each member gets an invite of their own: the
        others' presence, which they may see now that they share the chat.
        """
        others = [name for name in dict.fromkeys(members) if name != user]
        if not others:
            raise InvalidPayload(fields={"members": ["name at least one other user"]})
        # Charged before the names are looked up: unknown names cost as much,
        # so start cannot test usernames faster than it can start chats.
        self.charge(user, len(others))
        unknown = await self.storage.users.unknown(others)
        if unknown:
            raise NotFound(
                "unknown users",
                fields={"members": [f"unknown user: {n}" for n in unknown]},
            )
        chat = await self.storage.chats.create(
            str(uuid.uuid4()), title, user, [user, *others], now_ms()
        )
        # The chat as each member sees it: for a chat just made, the same for
        # everyone (every mark 0, nothing unread).
        shown = chat_out.dump(chat)
        presence = await self.presence.among(chat.members)
        for name in chat.members:
            await self.emitter.emit(
                INVITE,
                invitation(shown, user, presence_for(name, presence)),
                namespace=CONTROL,
                room=user_room(name),
                skip_sid=origin,
            )
        return Started(chat, presence_for(user, presence))

    async def invitations(
        self, chat_id: str, names: Collection[str]
    ) -> dict[str, dict]:
        """The ``invite`` each of ``names`` would get for the chat now, by
        name: the chat as they see it, its starter, the others' presence.
        Only members get one, and only while the chat is active."""
        found: dict[str, dict] = {}
        presence: dict[str, Presence] | None = None
        for name in names:
            chat = await self.storage.chats.get(chat_id, viewer=name)
            if chat is None or not chat.active or name not in chat.members:
                continue
            if presence is None:
                presence = await self.presence.among(chat.members)
            shown = chat_out.dump(chat)
            found[name] = invitation(
                shown, chat.created_by, presence_for(name, presence)
            )
        return found

    def charge(self, user: str, invited: int) -> None:
        """Spend one started chat and ``invited`` invitations of the user's
        allowance on this node, or neither: ``rate_limited`` when short."""
        now = time.monotonic()
        spends = [
            (self.started, 1, "chats started"),
            (self.invited, invited, "users invited"),
        ]
        wait, per_minute, what = max(
            (buckets.wait(user, cost, now), buckets.rate.burst, what)
            for buckets, cost, what in spends
        )
        if wait > 0:
            raise RateLimited(
                f"at most {per_minute} {what} per minute: "
                f"try again in {math.ceil(wait)} s",
                retry_after=wait,
            )
        for buckets, cost, _ in spends:
            buckets.spend(user, cost, now)

    async def terminate(self, user: str, chat_id: str) -> None:
        """End a chat: tell every member, post the notice, empty the room."""
        chat = await self.get(user, chat_id)
        if not chat.active:
            raise Terminated()
        if not await self.end(chat, user, f"{user} ended the chat"):
            raise Terminated()  # someone else ended it a moment ago

    async def end(self, chat: Chat, user: str, text: str) -> bool:
        """End the chat with the notice ``text``: tell ``chat.members``
        (``terminate`` by ``user``), post the notice, empty the room. False
        when it had ended already."""
        notice = await self.storage.messages.end_chat(chat.id, text, now_ms(), user)
        if notice is None:
            return False
        await self.emitter.emit(
            TERMINATE,
            {"id": chat.id, "by": user},
            namespace=CONTROL,
            room=[user_room(name) for name in chat.members],
        )
        room = chat_room(chat.id)
        self.metrics.stored(notice.kind)
        await self.emitter.emit(
            NOTIFY, message_out.dump(notice), namespace=CHAT, room=room
        )
        await self.emitter.close_room(room, namespace=CHAT)
        return True

    async def leave(self, user: str, chat_id: str) -> None:
        """Take ``user`` out of the chat for good, on every node and device.

        Their sockets leave the room before anyone is told, so the notice and
        what follows never reach them. The last member leaving ends the chat.
        An ended chat may be left too: it drops out of the user's list, and its
        history gets no notice.
        """
        chat = await self.get(user, chat_id)
        remaining = await self.storage.chats.remove_member(chat_id, user)
        if remaining is None:  # the same user leaving twice at once
            raise Forbidden("you are not a member of this chat")
        await self.emitter.evict(chat_room(chat_id), user_room(user), namespace=CHAT)
        await self.emitter.emit(
            LEFT,
            {"id": chat_id, "user": user},
            namespace=CONTROL,
            room=[user_room(name) for name in chat.members],
        )
        if not chat.active:
            return
        text = f"{user} left"
        if remaining == 0:
            await self.end(chat, user, text)  # False: ended meanwhile, fine
        else:
            await self.post_notice(chat_id, text)  # None: ended meanwhile, fine

    async def post_notice(self, chat_id: str, text: str) -> Message | None:
        """Store a notification in an active chat and send it to the room;
        None when there is no such active chat."""
        notice, _ = await self.storage.messages.append(
            chat_id,
            kind=KIND_NOTIFICATION,
            text=text,
            sender=None,
            client_id=None,
            now=now_ms(),
        )
        if notice is not None:
            self.metrics.stored(notice.kind)
            await self.emitter.emit(
                NOTIFY,
                message_out.dump(notice),
                namespace=CHAT,
                room=chat_room(chat_id),
            )
        return notice

    async def get(self, user: str, chat_id: str) -> Chat:
        """The chat as ``user`` sees it, for its members only."""
        chat = await self.storage.chats.get(chat_id, viewer=user)
        if chat is None:
            raise NotFound("no such chat")
        if user not in chat.members:
            raise Forbidden("you are not a member of this chat")
        return chat

    async def of_user(self, user: str, *, active_only: bool = False) -> list[Chat]:
        return await self.storage.chats.for_user(user, active_only=active_only)

    async def require_member(self, user: str, chat_id: str, *, active: bool) -> Access:
        """Raise unless ``user`` is a member (and, with ``active``, the chat is
        on); what they may do, and their read mark."""
        access = await self.storage.chats.access(chat_id, user)
        if not access.exists:
            raise NotFound("no such chat")
        if not access.member:
            raise Forbidden("you are not a member of this chat")
        if active and not access.active:
            raise Terminated()
        return access


def invitation(shown: dict, by: str, presence: list[Presence]) -> dict:
    """An ``invite``: the chat as dumped for its recipient, who started it,
    and the presence of its other members."""
    return {
        "chat": shown,
        "by": by,
        "presence": presence_out.dump(presence, many=True),
    }


def presence_for(viewer: str, presence: dict[str, Presence]) -> list[Presence]:
    """Everyone's presence but the viewer's own, by name."""
    return [presence[name] for name in sorted(presence) if name != viewer]
