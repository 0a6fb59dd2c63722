"""The one thing services need from the transport: a way to emit."""

from __future__ import annotations

from typing import Any, Protocol


class Emitter(Protocol):
    """Satisfied as-is by ``socketio.AsyncServer`` and ``socketio.AsyncRedisManager``.

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
