"""A new chat's members learn each other's presence with it: the ``start`` ack
carries the others' presence, and each ``invite`` its recipient's others'."""

from __future__ import annotations

from conftest import Harness
from test_presence import chat, server, users  # noqa: F401  (server: a fixture)

from chatsio.protocol import CONTROL


async def gone_once(harness: Harness, tokens: dict[str, str], name: str) -> str:
    """Make ``name`` online, then offline; their last_seen as a partner saw it."""
    await chat(harness, tokens["dave"], name)
    dave, _ = await harness.member(tokens["dave"])
    device, _ = await harness.member(tokens[name])
    assert (await dave.next(CONTROL, "presence"))["online"] is True
    await device.close()
    offline = await dave.next(CONTROL, "presence")
    assert offline["online"] is False
    return offline["last_seen"]


async def test_the_start_ack_and_each_invite_carry_the_other_members_presence(
    server,  # noqa: F811
):
    tokens = await users(server, "alice", "bob", "carol", "dave", "erin")
    carol_seen = await gone_once(server, tokens, "carol")
    alice, _ = await server.member(tokens["alice"])
    bob, _ = await server.member(tokens["bob"])

    ack = await alice.call(CONTROL, "start", {"members": ["bob", "carol", "erin"]})
    assert ack["ok"], ack
    carol = {"user": "carol", "online": False, "last_seen": carol_seen}
    erin = {"user": "erin", "online": False, "last_seen": None}  # never seen
    assert ack["presence"] == [
        {"user": "bob", "online": True, "last_seen": None},
        carol,
        erin,
    ]
    invite = await bob.next(CONTROL, "invite")
    assert invite["presence"] == [
        {"user": "alice", "online": True, "last_seen": None},
        carol,
        erin,
    ]
    assert alice.received(CONTROL, "invite") == []  # the ack was its invite


async def test_a_chat_started_over_rest_invites_with_presence(server):  # noqa: F811
    tokens = await users(server, "alice", "bob")
    bob, _ = await server.member(tokens["bob"])
    chat_id = await chat(server, tokens["alice"], "bob")  # alice has no socket
    invite = await bob.next(CONTROL, "invite")
    assert invite["chat"]["id"] == chat_id
    assert invite["presence"] == [{"user": "alice", "online": False, "last_seen": None}]
