"""After a Redis outage, the read marks a node's sockets missed, from the database.

A ``read`` event lost with the bus leaves no gap a client could notice, and
no message's seq to find it by, so the rooms' catch-up cannot recover it.
Each catch-up (``catchup.CatchUp``, which picks the time: its window) reads
instead every mark moved since then and sends each to this node's sockets
only: to the chat's room when it has sockets here (/chat), and to the
reader's /control sockets here. Clients take ``read`` as forward-only, so a
repeat changes nothing, and a run sends each room at most one event per mark,
however often it moved.
"""

from __future__ import annotations

import logging
from collections.abc import Collection

from chatsio.protocol import CHAT, CONTROL, READ, chat_room, user_room
from chatsio.services.reads import ReadService
from chatsio.transport.cluster import ClusterFanout

logger = logging.getLogger(__name__)


class ReadCatchUp:
    def __init__(self, manager: ClusterFanout, reads: ReadService) -> None:
        self.manager = manager
        self.reads = reads

    async def resend(
        self, since: int, chat_ids: Collection[str], users: Collection[str]
    ) -> None:
        """Send this node's sockets the marks moved at ``since`` (ms) or
        later in ``chat_ids`` (the chat rooms here) or of ``users`` (those
        with /control sockets here)."""
        sent = 0
        async for page in self.reads.moved_since(since, chat_ids, users):
            for mark in page:
                event = {"id": mark.chat_id, "user": mark.user, "seq": mark.seq}
                if mark.chat_id in chat_ids:
                    await self.manager.chatsio_deliver(
                        READ, event, CHAT, chat_room(mark.chat_id)
                    )
                if mark.user in users:
                    await self.manager.chatsio_deliver(
                        READ, event, CONTROL, user_room(mark.user)
                    )
                sent += 1
        logger.info("re-sent %d read marks after a redis outage", sent)
