"""The transport's speed-ups, each one removable, so that each can be measured.

A piece is an override that only saves time: without it the library's own
code does the same work, more slowly. The guards and limits (bounded
WebSocket reads, attachment budgets, junk logging, reserved events, send
backlogs) are not pieces: taking one away would change what the server
allows. Where chatsio's own code calls a piece, it looks it up and takes the
library's path when it is gone, so ``without`` leaves a working server.
"""

from __future__ import annotations

from dataclasses import dataclass

from chatsio.transport.engine import ChatsioEngine
from chatsio.transport.fanout import DirectFanout
from chatsio.transport.server import ChatsioPacket, ChatsioServer


@dataclass(frozen=True)
class Piece:
    name: str
    replaces: str  # the upstream behaviour it replaces
    overrides: tuple[tuple[type, str], ...]  # (chatsio class, attribute)


PIECES: dict[str, Piece] = {
    piece.name: piece
    for piece in (
        Piece(
            "orjson-packets",
            "the standard library's json encoding and decoding each packet "
            "python-socketio builds or reads",
            ((ChatsioPacket, "json"),),
        ),
        Piece(
            "event-shortcut",
            "AsyncServer._handle_event's dispatch through _trigger_event and "
            "the namespace's lookup, and its ack built by _handle_event_internal",
            ((ChatsioServer, "_chatsio_handle_namespace_event"),),
        ),
        Piece(
            "direct-ack-write",
            "AsyncServer._send_packet queueing each packet (an ack above all) "
            "for the socket's writer task",
            ((ChatsioServer, "_send_packet"),),
        ),
        Piece(
            "message-shortcut",
            "engineio decoding each WebSocket frame into a Packet and handing "
            "it through AsyncSocket.receive and AsyncServer._trigger_event",
            ((ChatsioEngine, "chatsio_receive_message"),),
        ),
        Piece(
            "direct-fanout",
            "AsyncManager.emit: a task per recipient, each queueing the packet "
            "for its writer task, which encodes it",
            ((DirectFanout, "emit"),),
        ),
        Piece(
            "direct-participants",
            "AsyncManager.get_participants' generator and copy of the room",
            ((DirectFanout, "chatsio_participants"),),
        ),
    )
}


def without(*names: str) -> None:
    """Delete the named pieces' overrides so the library's own code runs instead
    (benchmarks and tests only; process-wide). An unknown name deletes nothing."""
    unknown = [name for name in names if name not in PIECES]
    if unknown:
        raise ValueError(
            f"no transport piece named {', '.join(map(repr, unknown))}; "
            f"the pieces: {', '.join(PIECES)}"
        )
    for name in names:
        for cls, attribute in PIECES[name].overrides:
            if attribute in vars(cls):
                delattr(cls, attribute)
