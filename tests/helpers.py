"""Small assertions and builders shared by the protocol tests."""

from __future__ import annotations

import re
import uuid

from chatsio.protocol import CHAT, CONTROL

ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def assert_chat_shape(chat: dict) -> None:
    assert set(chat) == {"id", "title", "members", "created_by", "created_at", "active"}
    assert str(uuid.UUID(chat["id"])) == chat["id"]
    assert ISO_MS.match(chat["created_at"]), chat["created_at"]
    assert chat["created_by"] in chat["members"]


def assert_message_shape(message: dict) -> None:
    assert set(message) == {
        "id",
        "seq",
        "kind",
        "text",
        "sender",
        "ts",
        "client_id",
        "file",
    }
    assert isinstance(message["seq"], int) and message["seq"] >= 1
    assert message["kind"] in ("message", "notification", "file")
    assert ISO_MS.match(message["ts"]), message["ts"]


def error_code(ack: dict) -> str:
    assert ack["ok"] is False, ack
    assert set(ack["error"]) == {"code", "message", "fields"}, ack
    return ack["error"]["code"]


async def start_chat(creator, *members: str, title: str | None = None) -> dict:
    ack = await creator.call(
        CONTROL, "start", {"members": list(members), "title": title}
    )
    assert ack["ok"], ack
    return ack["chat"]


async def say(peer, chat_id: str, text: str, **extra) -> dict:
    ack = await peer.call(
        CHAT, "notify", {"id": chat_id, "kind": "message", "text": text, **extra}
    )
    assert ack["ok"], ack
    return ack["message"]


async def join(peer, chat_id: str, **extra) -> dict:
    ack = await peer.call(CHAT, "join", {"id": chat_id, **extra})
    assert ack["ok"], ack
    return ack
