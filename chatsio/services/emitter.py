"""The one thing services need from the transport: a way to emit."""

from __future__ import annotations

from typing import Any, Protocol


class Emitter(Protocol):
    """``emit`` and ``close_room`` are ``socketio.AsyncServer``'s own (a
    write-only ``socketio.AsyncRedisManager``'s too, which ``chatsio notify``
    emits through); ``evict`` is ``sockets.emitter.MeteredEmitter``'s.

    ``room`` may be one room or a list of rooms; ``skip_sid`` is the socket that
    caused the event, which must not hear its own echo.
    """

    async def emit(
        self,
        event: str,
        data: Any = None,
        *,
        namespace: str | None = None,
        room: str | list[str] | None = None,
        skip_sid: str | None = None,
    ) -> Any: ...

    async def close_room(self, room: str, namespace: str | None = None) -> Any: ...

    async def evict(self, room: str, holders: str, *, namespace: str) -> Any:
        """Take every socket in room ``holders`` out of ``room``, on every node."""
