"""What binary packets may hold on a node: bytes per socket and user, and time.

Replaces python-socketio's unbounded holding of a binary packet's pieces
(``AsyncServer._binary_packet``), with ``server``'s ``_handle_eio_message``.

A Socket.IO binary event (``file``) arrives as a text header announcing its
attachments, then one frame per attachment; python-socketio holds the header
and the pieces until the last one arrives. Left at that, one account held
533 MB on 6 sockets by announcing ten pieces and never sending the tenth.
Here:

- per socket: a header announces exactly one attachment (all ``file`` takes)
  and is at most ``HEADER_MAX`` bytes, so a socket holds one small header
  while it waits, then one attachment, no larger than the Engine.IO buffer;
- per user: the bytes of a user's packets held on this node, from header to
  stored file, stay within ``per_user``, except that a user with nothing else
  in flight may always send one packet (one file fits whatever the setting);
- in time: a header whose attachment has not arrived within ``timeout``
  seconds is dropped (the server answers it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

# A ``file`` header holds a chat id, a name of up to 255 characters (each up
# to 12 bytes as JSON escapes) and a media type of up to 255: under 4 KB.
HEADER_MAX = 8192


@dataclass
class Held:
    user: str
    size: int
    clock: asyncio.TimerHandle | None = None  # runs until the attachment is in


class AttachmentBudget:
    def __init__(self, *, per_user: int, timeout: float) -> None:
        self.per_user = per_user
        self.timeout = timeout
        self.held: dict[str, Held] = {}  # Engine.IO sid -> what it holds
        self.by_user: dict[str, int] = {}

    def admits(self, eio_sid: str, user: str, size: int) -> bool:
        """Whether ``size`` more bytes for this socket's packet fit the
        user's budget; if so they are counted until ``release``."""
        held = self.held.get(eio_sid)
        own = held.size if held else 0
        total = self.by_user.get(user, 0)
        if total > own and total + size > self.per_user:
            return False
        if held is None:
            held = self.held[eio_sid] = Held(user, 0)
        held.size += size
        self.by_user[user] = total + size
        return True

    def start_clock(self, eio_sid: str, expire: Callable[[], object]) -> None:
        """Call ``expire`` unless the attachment arrives within the timeout."""
        loop = asyncio.get_running_loop()
        self.held[eio_sid].clock = loop.call_later(self.timeout, expire)

    def stop_clock(self, eio_sid: str) -> None:
        held = self.held.get(eio_sid)
        if held is not None and held.clock is not None:
            held.clock.cancel()
            held.clock = None

    def release(self, eio_sid: str) -> None:
        """The packet is done with (stored, refused or dropped)."""
        held = self.held.pop(eio_sid, None)
        if held is None:
            return
        if held.clock is not None:
            held.clock.cancel()
        left = self.by_user[held.user] - held.size
        if left:
            self.by_user[held.user] = left
        else:
            del self.by_user[held.user]


def placeholders_fit(data, count: int) -> bool:
    """Whether every binary placeholder in ``data`` names one of ``count``
    attachments; python-socketio indexes with ``num`` unchecked."""
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            if item.get("_placeholder") and "num" in item:
                num = item["num"]
                if type(num) is not int or not 0 <= num < count:
                    return False
            else:
                stack.extend(item.values())
    return True
