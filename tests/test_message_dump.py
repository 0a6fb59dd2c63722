"""The fast MessageOut.dump gives exactly what marshmallow would."""

from __future__ import annotations

from marshmallow import Schema

from chatsio.protocol import KIND_FILE, KIND_MESSAGE, KIND_NOTIFICATION, iso
from chatsio.schemas import MessageOut, iso_ms, message_out
from chatsio.storage.records import FileRef, Message

CHAT = "d069b28f-5df2-4177-9b09-e23095bf6fcf"
MESSAGES = [
    Message(CHAT, 1, KIND_MESSAGE, "hello", "alice", 1795747595020, "c-1"),
    Message(CHAT, 2, KIND_MESSAGE, "ünïcødé 🎉", "bob", 1795747595999, None),
    Message(CHAT, 3, KIND_NOTIFICATION, "alice ended the chat", None, 0, None),
    Message(
        CHAT,
        4,
        KIND_FILE,
        "a.txt",
        "alice",
        1795747596000,
        None,
        FileRef("0b3c1f2e-1111-4222-8333-944455556666", "a.txt", "text/plain", 5),
    ),
]


def by_marshmallow(message: Message) -> dict:
    return Schema.dump(message_out, message)


def test_dump_matches_marshmallow() -> None:
    for message in MESSAGES:
        assert message_out.dump(message) == by_marshmallow(message)
    assert message_out.dump(MESSAGES, many=True) == [
        by_marshmallow(m) for m in MESSAGES
    ]
    assert MessageOut(many=True).dump(MESSAGES) == [by_marshmallow(m) for m in MESSAGES]


def test_dump_with_only_falls_back_to_marshmallow() -> None:
    assert MessageOut(only=("seq",)).dump(MESSAGES[0]) == {"seq": 1}


def test_timestamps_match_protocol_iso_in_every_millisecond() -> None:
    for ms in [0, 1, 999, 1000, 1795747595020, *range(1795747590000, 1795747602000, 7)]:
        assert iso_ms(ms) == iso(ms)
