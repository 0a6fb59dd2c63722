"""Junk a client sends is logged once per session, then only counted.

Replaces python-socketio's log line (often a traceback) per malformed packet.

A malformed or refused packet is the client's fault and costs one INFO line;
a client sending thousands of them would otherwise write thousands of lines
(13 MB of log in seconds, without a token). The first one of a session is
logged; the rest are counted and the count is logged when the session ends.
"""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


class JunkLog:
    def __init__(self) -> None:
        self.counted: dict[str, int] = {}  # Engine.IO sid -> junk not logged

    def note(self, eio_sid: str, message: str, *args: object) -> None:
        """Log ``message % args`` if it is the session's first junk; count it."""
        if eio_sid in self.counted:
            self.counted[eio_sid] += 1
            return
        self.counted[eio_sid] = 0
        logger.info(message + " (more junk from it is counted, not logged)", *args)

    def forget(self, eio_sid: str) -> None:
        """The session ended: log how much of its junk went unlogged."""
        count = self.counted.pop(eio_sid, 0)
        if count:
            logger.info("%s sent %d more malformed or refused packets", eio_sid, count)
