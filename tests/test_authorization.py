"""Who may do what: members only in a chat, and no connection without a token.

PROTOCOL.md, Identity and Acknowledgements: a non-member gets ``forbidden``, an
unknown chat ``not_found``; a missing, malformed, forged or expired token is
refused with ``connect_error`` data ``{"code": "unauthorized", "message"}``.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
import pytest_asyncio
import socketio
from conftest import TIMEOUT, Harness, Peer, tracebacks

from chatsio.config import Config, database_url
from chatsio.protocol import CHAT, CONTROL

# One server for the whole module; each test connects its own devices.
pytestmark = pytest.mark.asyncio(loop_scope="module")

SECRET = "s" * 40  # the server's signing key, so tests can forge its tokens
ID = "<the chat's id>"  # placeholder, replaced by a chat's id

# event: (namespace, a payload that a member of the chat may send)
EVENTS = {
    "join": (CHAT, {"id": ID}),
    "leave": (CHAT, {"id": ID}),
    "notify": (CHAT, {"id": ID, "kind": "message", "text": "let me in"}),
    "typing": (CHAT, {"id": ID}),
    "history": (CHAT, {"id": ID}),
    "file": (CHAT, {"id": ID, "name": "a.txt", "type": "text/plain", "data": b"hi"}),
    "terminate": (CONTROL, {"id": ID}),
}


@dataclass
class Server:
    harness: Harness
    tokens: dict[str, str]


@dataclass
class Outsider:
    """alice and bob in a chat alice started; carol, online, not in it."""

    id: str
    alice: Peer
    bob: Peer
    carol: Peer


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server(tmp_path_factory) -> AsyncIterator[Server]:
    """One server, with a known secret, and three users: hashing takes time."""
    path = tmp_path_factory.mktemp("authorization") / "chatsio.db"
    config = Config(
        database_url=database_url(f"sqlite:///{path}"),
        secret=SECRET,
        rate_limit=1000,
        rate_burst=1000,
        chats_per_minute=100_000,  # every test starts chats on this one server
    )
    harness = await Harness(config).start()
    tokens = {name: await harness.user(name) for name in ("alice", "bob", "carol")}
    yield Server(harness, tokens)
    await harness.close()


@pytest_asyncio.fixture(loop_scope="module")
async def outsider(server: Server) -> AsyncIterator[Outsider]:
    harness = server.harness
    peers = [
        (await harness.member(server.tokens[n]))[0] for n in ("alice", "bob", "carol")
    ]
    alice, bob, carol = peers
    started = await alice.call(CONTROL, "start", {"members": ["bob"]})
    assert started["ok"], started
    await bob.next(CONTROL, "invite")
    yield Outsider(started["chat"]["id"], alice, bob, carol)
    await close(harness, *peers)


async def close(harness: Harness, *peers: Peer) -> None:
    for peer in peers:
        harness.peers.remove(peer)
        await peer.close()


def payload_for(event: str, chat_id: str) -> tuple[str, dict]:
    namespace, payload = EVENTS[event]
    return namespace, {k: chat_id if v == ID else v for k, v in payload.items()}


def assert_error(reply: Any, code: str) -> None:
    assert isinstance(reply, dict) and reply.get("ok") is False, reply
    assert reply["error"]["code"] == code, reply
    assert isinstance(reply["error"]["message"], str), reply


@pytest.mark.parametrize("event", EVENTS)
async def test_a_non_member_is_forbidden(outsider, server_log, event):
    namespace, payload = payload_for(event, outsider.id)
    assert_error(await outsider.carol.call(namespace, event, payload), "forbidden")

    # Nothing changed: the chat is active, its members and messages as before.
    joined = await outsider.alice.call(CHAT, "join", {"id": outsider.id})
    assert joined["ok"], joined
    assert joined["chat"]["active"] is True
    assert sorted(joined["chat"]["members"]) == ["alice", "bob"]
    assert joined["messages"] == []
    # The very same payload from a member is fine: only membership differed.
    reply = await outsider.alice.call(namespace, event, payload)
    assert reply["ok"] is True, reply
    assert outsider.carol.client.connected
    assert tracebacks(server_log) == []


@pytest.mark.parametrize("event", EVENTS)
async def test_a_chat_that_does_not_exist_is_not_found(outsider, server_log, event):
    namespace, payload = payload_for(event, str(uuid.uuid4()))
    for peer in (outsider.alice, outsider.carol):
        assert_error(await peer.call(namespace, event, payload), "not_found")
    assert tracebacks(server_log) == []


async def test_a_non_member_hears_nothing_of_the_chat(outsider):
    alice, bob, carol = outsider.alice, outsider.bob, outsider.carol
    chat_id = outsider.id
    for peer in (alice, bob):
        assert (await peer.call(CHAT, "join", {"id": chat_id}))["ok"]
    assert_error(await carol.call(CHAT, "join", {"id": chat_id}), "forbidden")

    sent = await alice.call(CHAT, "notify", {"id": chat_id, "text": "secret"})
    assert sent["ok"], sent
    _, upload = payload_for("file", chat_id)
    uploaded = await alice.call(CHAT, "file", upload)
    assert uploaded["ok"], uploaded
    assert (await alice.call(CHAT, "typing", {"id": chat_id}))["ok"]
    assert (await alice.call(CONTROL, "terminate", {"id": chat_id}))["ok"]
    # bob, a member, got all of it: it was sent.
    assert await bob.next(CHAT, "notify") == sent["message"]
    assert await bob.next(CHAT, "notify") == uploaded["message"]
    assert await bob.next(CHAT, "typing") == {"id": chat_id, "user": "alice"}
    assert (await bob.next(CONTROL, "terminate"))["id"] == chat_id

    # Barrier: carol's invite was sent after all of the above, on her connection.
    with_carol = await alice.call(CONTROL, "start", {"members": ["carol"]})
    assert with_carol["ok"], with_carol
    invite = await carol.next(CONTROL, "invite")
    assert invite["chat"]["id"] == with_carol["chat"]["id"]
    assert carol.received(CHAT, "notify") == []
    assert carol.received(CHAT, "typing") == []
    assert carol.received(CONTROL, "terminate") == []
    assert carol.received(CONTROL, "invite") == []


# Connecting: every namespace connection needs a valid token.


def forged(claims: dict, key: str | None = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=algorithm)


def later(seconds: int) -> int:
    return int(time.time()) + seconds


def swap_subject(token: str, subject: str) -> str:
    """The token with another user in its claims and its old signature."""
    header, claims, signature = token.split(".")
    decoded = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    decoded["sub"] = subject
    raw = json.dumps(decoded, separators=(",", ":")).encode()
    return ".".join(
        [header, base64.urlsafe_b64encode(raw).decode().rstrip("="), signature]
    )


BAD_CREDENTIALS = [
    pytest.param({}, id="nothing"),
    pytest.param({"auth": {}}, id="empty-auth"),
    pytest.param({"auth": {"token": ""}}, id="empty-token"),
    pytest.param({"auth": {"token": 42}}, id="token-not-a-string"),
    pytest.param({"auth": {"token": "not a token"}}, id="malformed"),
    pytest.param({"auth": {"token": "a.b.c"}}, id="three-garbage-parts"),
    pytest.param({"auth": {"token": "\ud800abc"}}, id="lone-surrogate"),
    pytest.param({"auth": {"token": "é.é.é"}}, id="not-ascii"),
    pytest.param(
        {"auth": {"token": forged({"sub": "alice", "exp": later(3600)}, "x" * 40)}},
        id="another-key",
    ),
    pytest.param(
        {"auth": {"token": forged({"sub": "alice", "exp": later(-3600)})}},
        id="expired",
    ),
    pytest.param({"auth": {"token": forged({"sub": "alice"})}}, id="no-expiry"),
    pytest.param(
        {"auth": {"token": forged({"sub": 5, "exp": later(3600)})}},
        id="subject-not-a-string",
    ),
    pytest.param(
        {"auth": {"token": forged({"sub": "alice", "exp": later(3600)}, None, "none")}},
        id="unsigned",
    ),
    pytest.param(
        {"headers": {"Authorization": "Bearer not-a-token"}}, id="header-malformed"
    ),
    pytest.param(
        {"headers": {"Authorization": "Basic YWxpY2U6Y29ycmVjdCBob3JzZQ=="}},
        id="header-basic",
    ),
]


async def refused(harness: Harness, **connect: Any) -> dict[str, list]:
    """Connect with ``connect``; expect refusal; what each connect_error got."""
    client = socketio.AsyncClient(reconnection=False)
    errors: dict[str, list] = {CONTROL: [], CHAT: []}
    for namespace, received in errors.items():
        client.on("connect_error", lambda *data, r=received: r.append(data), namespace)
    try:
        with pytest.raises(socketio.exceptions.ConnectionError):
            await client.connect(
                harness.url, namespaces=[CONTROL, CHAT], wait_timeout=TIMEOUT, **connect
            )
    finally:
        await client.disconnect()  # in case it was let in
    return errors


def assert_unauthorized(errors: dict[str, list]) -> None:
    for namespace, received in errors.items():
        # python-socketio hands the handler {"message", "data"}; data is ours.
        assert len(received) == 1, (namespace, received)
        (data,) = received[0]
        assert isinstance(data["message"], str), (namespace, data)
        assert data["data"]["code"] == "unauthorized", (namespace, data)
        assert isinstance(data["data"]["message"], str), (namespace, data)


@pytest.mark.parametrize("connect", BAD_CREDENTIALS)
async def test_a_connection_without_a_valid_token_is_refused(
    server, server_log, connect
):
    assert_unauthorized(await refused(server.harness, **connect))
    assert tracebacks(server_log) == []


async def test_a_token_with_another_users_name_swapped_in_is_refused(server):
    token = swap_subject(server.tokens["alice"], "bob")
    assert_unauthorized(await refused(server.harness, auth={"token": token}))


async def test_a_token_signed_with_the_servers_key_is_accepted(server):
    # The control for the forged cases above: only the flaw made them fail.
    account = jwt.decode(server.tokens["alice"], SECRET, ["HS256"])["acct"]
    token = forged({"sub": "alice", "acct": account, "exp": later(60)})
    peer, welcome = await server.harness.member(token)
    assert welcome["user"] == "alice"
    await close(server.harness, peer)


# The default transport sends the header on its first (polling) request; pure
# WebSocket sends it on the upgrade request. (A polling-only client is left out:
# python-engineio's client takes about 30 s to disconnect from one.)
@pytest.mark.parametrize(
    "transports", [None, ["websocket"]], ids=["default", "websocket"]
)
async def test_a_bearer_header_serves_instead_of_auth(server, transports):
    harness = server.harness
    headers = {"Authorization": f"Bearer {server.tokens['alice']}"}
    peer = await harness.peer(None, headers=headers, transports=transports)
    welcome = await peer.next(CONTROL, "welcome")
    assert welcome["user"] == "alice"
    started = await peer.call(CONTROL, "start", {"members": ["bob"]})
    assert started["ok"] and started["chat"]["created_by"] == "alice", started
    assert (await peer.call(CHAT, "join", {"id": started["chat"]["id"]}))["ok"]
    await close(harness, peer)
