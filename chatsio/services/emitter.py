"""The one thing services need from the transport: a way to emit."""

from __future__ import annotations

from typing import Any, Protocol


class Emitter(Protocol):
    """``emit`` and ``close_room`` are ``socketio.AsyncServer``'s own;
    ``evict`` and ``joined`` are ``sockets.emitter.MeteredEmitter``'s.
    ``chatsio notify`` only emits, through ``transport.BusEmitter``.

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

    def joined(self, room: str, seq: int) -> None:
        """A socket of this node entered chat ``room`` holding every message
        up to ``seq`` (what a node catching up after a Redis outage starts
        from)."""
