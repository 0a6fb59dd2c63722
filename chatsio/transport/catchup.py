"""After a Redis outage, what a node's members missed, from the database.

While Redis is down (or frozen) the bus drops what nodes publish: stock
python-socketio loses it, and a member in a quiet chat only sees it on reload.
When this node's bus works again (``ClusterFanout`` calls ``schedule``), one
catch-up reads, for every chat room with sockets here, the messages above
what the ``DeliveryLedger`` says was delivered here, and delivers them to
this node's sockets only, the ledger dropping any that also came live. A chat
found ended meanwhile is ended here as the live path would have: its
members' ``/control`` sockets get ``terminate`` and its room is closed, once.
So is a chat whose room another node closed here while its ``terminate``
never came (the ledger's ``unterminated``: the close and the ``terminate``
crossed on different Redis Cluster masters, one of them out).
"""

from __future__ import annotations

import asyncio
import logging

from chatsio.protocol import CHAT, CONTROL, NOTIFY, TERMINATE, chat_room, user_room
from chatsio.schemas import message_out
from chatsio.services.missed import MissedMessages
from chatsio.transport.cluster import ClusterFanout
from chatsio.transport.ledger import ROOM_PREFIX

logger = logging.getLogger(__name__)


class CatchUp:
    def __init__(self, manager: ClusterFanout, missed: MissedMessages) -> None:
        self.manager = manager
        self.missed = missed
        self.task: asyncio.Task | None = None
        self.again = False

    def schedule(self) -> None:
        """Catch up now, or once more after the catch-up under way."""
        self.again = True
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while self.again:
            self.again = False
            try:
                await self.catch_up()
            except Exception:
                logger.exception("catching up after a redis outage failed")

    async def aclose(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    async def catch_up(self) -> None:
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
