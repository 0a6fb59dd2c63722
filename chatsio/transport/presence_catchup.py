"""After a Redis outage, the presence this node's users may have missed.

A ``presence`` event published while this node was not subscribed is lost,
and nothing later repeats it: when Redis comes back, the node that made the
change may well publish it (its tracker retrying) before this node has
subscribed again. When this node's bus works again (the hook that calls
``CatchUp``), this sends each user with /control sockets here the presence
of everyone they may see, as ``welcome`` has it, to this node's sockets only.
Presence is state, so a repeat changes nothing on a client.

Why that suffices: a node changes the directory before it announces the
change, so a change whose event was published before this node subscribed
is in the directory when this reads it. It reads after WAIT, so that the
other nodes have registered their users again if Redis came back empty (their
directory's heartbeat finds that within a second of Redis answering, and
their tracker then arrives everyone): else this would report them offline
for a moment.
"""

from __future__ import annotations

import logging

from chatsio.protocol import CONTROL, PRESENCE, user_room
from chatsio.schemas import presence_out
from chatsio.services.presence import PresenceService
from chatsio.transport.cluster import ClusterFanout
from chatsio.transport.rerun import Rerun

logger = logging.getLogger(__name__)

WAIT = 3.0  # the tracker's retry (2 s) and the heartbeat's while failing (1 s)
USER_PREFIX = user_room("")


class PresenceCatchUp(Rerun):
    wait = WAIT

    def __init__(self, manager: ClusterFanout, presence: PresenceService) -> None:
        super().__init__()
        self.manager = manager
        self.presence = presence

    async def run(self) -> None:
        rooms = self.manager.rooms.get(CONTROL, {})
        users = [
            room.removeprefix(USER_PREFIX)
            for room in rooms
            if isinstance(room, str) and room.startswith(USER_PREFIX)
        ]
        for user in users:
            seen = await self.presence.visible(user)
            for presence in seen:
                await self.manager.chatsio_deliver(
                    PRESENCE, presence_out.dump(presence), CONTROL, user_room(user)
                )
        logger.info("re-sent presence to %d users after a redis outage", len(users))
