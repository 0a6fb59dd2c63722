"""After a Redis outage, what a node's sockets missed, from the database.

While Redis is down (or frozen) the bus drops what nodes publish: stock
python-socketio loses it, and a member in a quiet chat only sees it on reload.
When this node's bus works again, or another node's publishing does
(``ClusterFanout`` calls ``schedule`` with when that outage began), one
catch-up runs (a ``Rerun``: asked again meanwhile, it runs once more after),
in turn:

- The rooms: for every chat room with sockets here, the messages above what
  the ``DeliveryLedger`` says was delivered here, delivered to this node's
  sockets only, the ledger dropping any that also came live. A chat found
  ended meanwhile is ended here as the live path would have: its members'
  ``/control`` sockets get ``terminate`` and its room is closed, once. So is
  a chat whose room another node closed here while its ``terminate`` never
  came (the ledger's ``unterminated``: the close and the ``terminate``
  crossed on different Redis Cluster masters, one of them out).
- What changed in the window, which leaves no seq to find it by: the read
  marks moved (``read_catchup``), and, for the users with /control sockets
  here (who may have joined no room here), the chats of theirs started
  (``invite`` as ``start`` sends it, to each of their connections here that
  has not joined the chat's room: one that has knows the chat) and ended
  (ended here as above).

The window runs from when the outage began, less ``CLOCK_MARGIN``, to now.
The bus dates its outages: for this node's listening, from when it first
failed; for another node's publishing (which may fail while this node's bus
is fine), that node's ``catch_up`` hint says when its own first failed (a
hint of a node of the previous version says nothing: ``cluster.UNDATED_WINDOW``
then). Recoveries asked for before a run starts make one run, from the
earliest. One outage may give two windows (this node's listening recovers,
then another node's hint comes): an invite a catch-up sent is not sent again
while a window may still reach its chat, nor a ``terminate`` (the ledger's
``ended``).
"""

from __future__ import annotations

import logging
from collections import defaultdict

from chatsio.protocol import (
    CHAT,
    CONTROL,
    INVITE,
    NOTIFY,
    TERMINATE,
    chat_room,
    user_room,
)
from chatsio.schemas import message_out
from chatsio.services.chats import ChatService
from chatsio.services.missed import MissedMessages
from chatsio.transport.cluster import ClusterFanout
from chatsio.transport.ledger import ROOM_PREFIX
from chatsio.transport.read_catchup import ReadCatchUp
from chatsio.transport.rerun import Rerun

logger = logging.getLogger(__name__)

# Rows are stamped, and outages dated, by the clocks of different nodes, and a
# bus notices an outage seconds after it began (a silent Redis:
# ``bus.SILENCE_LIMIT``).
CLOCK_MARGIN = 10_000  # ms
USER_PREFIX = user_room("")


class CatchUp(Rerun):
    def __init__(
        self,
        manager: ClusterFanout,
        missed: MissedMessages,
        reads: ReadCatchUp,
        chats: ChatService,
    ) -> None:
        super().__init__()
        self.manager = manager
        self.missed = missed
        self.reads = reads
        self.chats = chats
        self.pending_since: int | None = None  # ms: the next run's outage began
        # (chat id, user) a catch-up invited, to the chat's created_at: kept
        # while a window may still find the chat.
        self.invited: dict[tuple[str, str], int] = {}

    def schedule(self, since: int) -> None:
        """Catch up on an outage that began at ``since`` (ms); asked again
        before the run starts, from the earliest outage asked for."""
        if self.pending_since is None or since < self.pending_since:
            self.pending_since = since
        super().schedule()

    async def run(self) -> None:
        since, self.pending_since = self.pending_since - CLOCK_MARGIN, None
        await self.rooms()
        users = self.hosted(CONTROL, USER_PREFIX)
        await self.reads.resend(since, self.hosted(CHAT, ROOM_PREFIX), users)
        await self.control_users(since, users)

    async def rooms(self) -> None:
        """Deliver what the chat rooms here missed; end the chats ended."""
        rooms = self.manager.rooms.get(CHAT, {})
        hosted = [r for r in rooms if isinstance(r, str) and r.startswith(ROOM_PREFIX)]
        floors = self.manager.chatsio_ledger.floors(hosted)
        read, ended = 0, {}
        async for page in self.missed.since(floors):
            for missed in page:
                message = missed.message
                if not missed.chat_active:
                    ended[message.chat_id] = missed.ended_by
                await self.manager.chatsio_deliver(
                    NOTIFY, message_out.dump(message), CHAT, chat_room(message.chat_id)
                )
                read += 1
        for chat_id, by in ended.items():
            await self.end(chat_id, by)
        closed = await self.end_unterminated()
        logger.info(
            "caught up after a redis outage: %d chats, %d messages read, "
            "%d ended, %d closed without their terminate",
            len(floors),
            read,
            len(ended),
            closed,
        )

    async def end_unterminated(self) -> int:
        """End here the chats whose room another node closed here while
        their ``terminate`` never came; how many there were."""
        unterminated = self.manager.chatsio_ledger.unterminated
        chats = list(unterminated)
        for chat_id in chats:
            done, by = await self.missed.ending(chat_id)
            if done and chat_id in unterminated:  # still not come live
                await self.end(chat_id, by)
            unterminated.pop(chat_id, None)
        return len(chats)

    async def end(self, chat_id: str, by: str | None) -> None:
        """End the chat here, as ``ChatService.end`` would have."""
        members = await self.missed.members(chat_id)
        await self.manager.chatsio_deliver(
            TERMINATE,
            {"id": chat_id, "by": by},
            CONTROL,
            [user_room(name) for name in members],
        )
        self.manager.chatsio_ledger.end(chat_id)  # a late live copy is dropped
        self.manager.basic_close_room(chat_room(chat_id), CHAT)

    async def control_users(self, since: int, users: set[str]) -> None:
        """Invite ``users`` (those with /control sockets here) to the chats
        of theirs started at ``since`` or later; end here those ended."""
        self.invited = {
            key: created for key, created in self.invited.items() if created >= since
        }
        started: dict[str, list[str]] = defaultdict(list)
        created_at: dict[str, int] = {}
        ended: dict[str, str | None] = {}
        async for page in self.missed.changed(since, users):
            for change in page:
                if not change.active:
                    ended[change.chat_id] = change.ended_by
                elif (change.chat_id, change.member) not in self.invited:
                    started[change.chat_id].append(change.member)
                    created_at[change.chat_id] = change.created_at
        ended = {
            c: by
            for c, by in ended.items()
            if c not in self.manager.chatsio_ledger.ended
        }
        for chat_id, by in ended.items():
            await self.end(chat_id, by)
        invited = 0
        for chat_id, names in started.items():
            invited += await self.invite(chat_id, names, created_at[chat_id])
        logger.info(
            "caught up /control users after a redis outage: %d users, "
            "%d connections invited, %d chats ended",
            len(users),
            invited,
            len(ended),
        )

    async def invite(self, chat_id: str, names: list[str], created_at: int) -> int:
        """Send each of ``names`` the chat's ``invite`` on their /control
        connections here that have not joined its room; to how many."""
        joined = {
            eio for _, eio in self.manager.get_participants(CHAT, chat_room(chat_id))
        }
        devices = {
            name: [
                sid
                for sid, eio in self.manager.get_participants(CONTROL, user_room(name))
                if eio not in joined
            ]
            for name in names
        }
        wanted = [name for name, sids in devices.items() if sids]
        invitations = await self.chats.invitations(chat_id, wanted)
        for name, invitation in invitations.items():
            await self.manager.chatsio_deliver(
                INVITE, invitation, CONTROL, devices[name]
            )
            self.invited[(chat_id, name)] = created_at
        return sum(len(devices[name]) for name in invitations)

    def hosted(self, namespace: str, prefix: str) -> set[str]:
        """What this node's rooms of ``namespace`` named ``prefix...`` name."""
        rooms = self.manager.rooms.get(namespace, {})
        return {
            room.removeprefix(prefix)
            for room in rooms
            if isinstance(room, str) and room.startswith(prefix)
        }
