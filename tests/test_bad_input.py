"""Bad input: every event answers once with the right error and the socket lives on.

PROTOCOL.md, Acknowledgements: a bad payload never closes the connection and
never crashes a handler; the schema is checked before anything else.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
from conftest import PASSWORD, TIMEOUT, Harness, Peer, tracebacks

from chatsio.config import Config, database_url
from chatsio.protocol import CHAT, CONTROL

# One server for the whole module; each test connects its own devices.
pytestmark = pytest.mark.asyncio(loop_scope="module")

ID = "<the chat's id>"  # placeholder, replaced by the fixture chat's id
RANDOM_ID = "0b5d2a4e-8f6b-4c1e-9a57-3d2f1e0c9b8a"
SMILE = "\U0001f600"  # one code point, two UTF-16 units, four UTF-8 bytes

# event: (namespace, a valid payload)
EVENTS = {
    "start": (CONTROL, {"members": ["bob"]}),
    "terminate": (CONTROL, {"id": ID}),
    "join": (CHAT, {"id": ID}),
    "leave": (CHAT, {"id": ID}),
    "notify": (CHAT, {"id": ID, "kind": "message", "text": "hi"}),
    "typing": (CHAT, {"id": ID}),
    "history": (CHAT, {"id": ID}),
    "file": (CHAT, {"id": ID, "name": "a.txt", "type": "text/plain", "data": b"hi"}),
}
REQUIRED = {  # others: {"id"}
    "start": {"members"},
    "notify": {"id", "text"},
    "file": {"id", "name", "type", "data"},
}
FILE_LIMIT = 5 * 2**20  # the default CHATSIO_MAX_FILE_BYTES

NOT_OBJECTS = [
    pytest.param("a string", id="string"),
    pytest.param(5, id="int"),
    pytest.param(2.5, id="float"),
    pytest.param(True, id="bool"),
    pytest.param([{"id": ID}], id="list"),
    pytest.param(None, id="null"),
    pytest.param(b"\x00binary", id="bytes"),
]


@dataclass
class Server:
    harness: Harness
    tokens: dict[str, str]


@dataclass
class TwoInAChat:
    id: str
    alice: Peer
    bob: Peer
    tokens: dict[str, str]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server(tmp_path_factory) -> AsyncIterator[Server]:
    """One server and two users for the module: each password hash takes time."""
    path = tmp_path_factory.mktemp("bad_input") / "chatsio.db"
    config = Config(
        database_url=database_url(f"sqlite:///{path}"),
        rate_limit=1000,
        rate_burst=1000,
        chats_per_minute=100_000,  # every test starts chats on this one server
        invites_per_minute=1_000_000,
    )
    harness = await Harness(config).start()
    tokens = {name: await harness.user(name) for name in ("alice", "bob")}
    yield Server(harness, tokens)
    await harness.close()


@pytest_asyncio.fixture(loop_scope="module")
async def chat(server: Server) -> AsyncIterator[TwoInAChat]:
    """alice and bob, one new device each, in a new chat alice started."""
    harness = server.harness
    alice, _ = await harness.member(server.tokens["alice"])
    bob, _ = await harness.member(server.tokens["bob"])
    started = await alice.call(CONTROL, "start", {"members": ["bob"]})
    assert started["ok"], started
    await bob.next(CONTROL, "invite")
    yield TwoInAChat(started["chat"]["id"], alice, bob, server.tokens)
    for peer in (alice, bob):
        harness.peers.remove(peer)
        await peer.close()


def fill(payload: Any, chat_id: str) -> Any:
    """``payload`` with every ID placeholder replaced by ``chat_id``."""
    if isinstance(payload, str) and payload == ID:
        return chat_id
    if isinstance(payload, dict):
        return {key: fill(value, chat_id) for key, value in payload.items()}
    if isinstance(payload, list):
        return [fill(item, chat_id) for item in payload]
    return payload


async def ack(peer: Peer, namespace: str, event: str, payload: Any) -> Any:
    """Send ``payload`` as the one argument (``None`` as a JSON null); the ack."""
    return await peer.client.call(
        event, (payload,), namespace=namespace, timeout=TIMEOUT
    )


def assert_error(reply: Any, code: str, fields: set[str] | None = None) -> None:
    """``reply`` is an error ack with ``code``; ``fields`` names the culprits."""
    assert isinstance(reply, dict) and reply.get("ok") is False, reply
    error = reply["error"]
    assert error["code"] == code, reply
    assert isinstance(error["message"], str) and error["message"], reply
    assert error["fields"] is None or isinstance(error["fields"], dict), reply
    for reasons in (error["fields"] or {}).values():
        assert reasons and all(isinstance(r, str) for r in reasons), reply
    if fields is not None:
        assert set(error["fields"] or {}) == fields, reply


async def assert_serving(peer: Peer, chat_id: str, *events: str) -> None:
    """The connection is open and each event still takes a valid payload."""
    assert peer.client.connected
    for event in events:
        namespace, payload = EVENTS[event]
        reply = await ack(peer, namespace, event, fill(payload, chat_id))
        assert reply["ok"] is True, (event, reply)


@pytest.mark.parametrize("payload", NOT_OBJECTS)
@pytest.mark.parametrize("event", EVENTS)
async def test_a_payload_that_is_no_object_is_invalid(chat, server_log, event, payload):
    namespace = EVENTS[event][0]
    assert_error(
        await ack(chat.alice, namespace, event, fill(payload, chat.id)), "invalid"
    )
    await assert_serving(chat.alice, chat.id, event)
    assert tracebacks(server_log) == []


@pytest.mark.parametrize("event", EVENTS)
async def test_no_payload_or_two_payloads_are_invalid(chat, server_log, event):
    namespace, valid = EVENTS[event]
    valid = fill(valid, chat.id)
    alice = chat.alice
    assert_error(await alice.call(namespace, event), "invalid")
    assert_error(await alice.call(namespace, event, valid, valid), "invalid")
    await assert_serving(alice, chat.id, event)
    assert tracebacks(server_log) == []


@pytest.mark.parametrize("event", EVENTS)
async def test_an_empty_object_names_the_required_fields(chat, server_log, event):
    namespace = EVENTS[event][0]
    reply = await ack(chat.alice, namespace, event, {})
    assert_error(reply, "invalid", REQUIRED.get(event, {"id"}))
    await assert_serving(chat.alice, chat.id, event)
    assert tracebacks(server_log) == []


@pytest.mark.parametrize("event", EVENTS)
async def test_an_unknown_field_is_invalid(chat, server_log, event):
    namespace, valid = EVENTS[event]
    payload = {**fill(valid, chat.id), "colour": "red"}
    assert_error(
        await ack(chat.alice, namespace, event, payload), "invalid", {"colour"}
    )
    await assert_serving(chat.alice, chat.id, event)
    assert tracebacks(server_log) == []


def case(event: str, payload: dict, code: str, fields: set[str], name: str):
    return pytest.param(event, payload, code, fields, id=f"{event}-{name}")


def start(**fields: Any) -> dict:
    return {"members": ["bob"], **fields}


def ref(**fields: Any) -> dict:
    return {"id": ID, **fields}


def say(**fields: Any) -> dict:
    return {"id": ID, "text": "hi", **fields}


def upload(**fields: Any) -> dict:
    return {**EVENTS["file"][1], **fields}


NOBODIES = [f"nobody{n}" for n in range(101)]

BAD_FIELDS = [
    # /control start
    case("start", {"members": "bob"}, "invalid", {"members"}, "members-string"),
    case("start", {"members": None}, "invalid", {"members"}, "members-null"),
    case("start", {"members": []}, "invalid", {"members"}, "members-empty"),
    case("start", {"members": ["alice"]}, "invalid", {"members"}, "only-self"),
    case("start", {"members": [1]}, "invalid", {"members.0"}, "member-int"),
    case("start", {"members": [b"bob"]}, "invalid", {"members.0"}, "member-bytes"),
    case("start", {"members": ["b o b"]}, "invalid", {"members.0"}, "member-space"),
    case("start", {"members": ["b" * 33]}, "invalid", {"members.0"}, "member-33"),
    case("start", {"members": ["b\ud800"]}, "invalid", {"members.0"}, "surrogate"),
    case("start", {"members": NOBODIES}, "too_large", {"members"}, "101-unknown"),
    case("start", start(members=[7] * 101), "too_large", {"members"}, "101-ints"),
    case("start", start(title="t" * 101), "too_large", {"title"}, "title-101"),
    case("start", start(title=SMILE * 101), "too_large", {"title"}, "title-101-astral"),
    case("start", start(title=5), "invalid", {"title"}, "title-int"),
    case("start", start(title=["t"]), "invalid", {"title"}, "title-list"),
    case("start", start(title=b"t"), "invalid", {"title"}, "title-bytes"),
    case("start", start(title="\ud800"), "invalid", {"title"}, "title-surrogate"),
    case("start", start(title="a\x00b"), "invalid", {"title"}, "title-nul"),
    # /control terminate
    case("terminate", {"id": 5}, "invalid", {"id"}, "id-int"),
    case("terminate", {"id": None}, "invalid", {"id"}, "id-null"),
    case("terminate", {"id": ""}, "invalid", {"id"}, "id-empty"),
    case("terminate", {"id": "not-a-uuid"}, "invalid", {"id"}, "id-garbage"),
    case("terminate", {"id": [ID]}, "invalid", {"id"}, "id-list"),
    case("terminate", {"id": {"id": ID}}, "invalid", {"id"}, "id-object"),
    case("terminate", {"id": RANDOM_ID.encode()}, "invalid", {"id"}, "id-bytes"),
    case("terminate", {"id": "\ud800"}, "invalid", {"id"}, "id-surrogate"),
    case("terminate", {"id": RANDOM_ID + "\x00"}, "invalid", {"id"}, "id-nul"),
    # /chat join
    case("join", {"id": 5}, "invalid", {"id"}, "id-int"),
    case("join", ref(since="3"), "invalid", {"since"}, "since-string"),
    case("join", ref(since=True), "invalid", {"since"}, "since-bool"),
    case("join", ref(since=1.5), "invalid", {"since"}, "since-float"),
    case("join", ref(since=-1), "invalid", {"since"}, "since-negative"),
    case("join", ref(since=[3]), "invalid", {"since"}, "since-list"),
    # /chat leave
    case("leave", {"id": 5}, "invalid", {"id"}, "id-int"),
    case("leave", {"id": "not-a-uuid"}, "invalid", {"id"}, "id-garbage"),
    case("leave", {"id": RANDOM_ID.encode()}, "invalid", {"id"}, "id-bytes"),
    # /chat notify
    case("notify", {"id": ID}, "invalid", {"text"}, "text-missing"),
    case("notify", say(text=None), "invalid", {"text"}, "text-null"),
    case("notify", say(text=""), "invalid", {"text"}, "text-empty"),
    case("notify", say(text=["hi"]), "invalid", {"text"}, "text-list"),
    case("notify", say(text=42), "invalid", {"text"}, "text-int"),
    case("notify", say(text=b"hi"), "invalid", {"text"}, "text-bytes"),
    case("notify", say(text="\ud800"), "invalid", {"text"}, "text-surrogate"),
    case("notify", say(text="hi\udfff"), "invalid", {"text"}, "text-low-surrogate"),
    case("notify", say(text="a\x00b"), "invalid", {"text"}, "text-nul"),
    case("notify", say(text="x" * 4001), "too_large", {"text"}, "text-4001"),
    case("notify", say(text=SMILE * 4001), "too_large", {"text"}, "text-4001-astral"),
    # Not every complaint is about size, so the whole is invalid.
    case(
        "notify", say(id=5, text="x" * 4001), "invalid", {"id", "text"}, "id-and-4001"
    ),
    case("notify", say(kind="file"), "invalid", {"kind"}, "kind-file"),
    case("notify", say(kind="notification"), "invalid", {"kind"}, "kind-notification"),
    case("notify", say(kind=1), "invalid", {"kind"}, "kind-int"),
    case("notify", say(client_id="c" * 65), "invalid", {"client_id"}, "client_id-65"),
    case("notify", say(client_id=""), "invalid", {"client_id"}, "client_id-empty"),
    case("notify", say(client_id=7), "invalid", {"client_id"}, "client_id-int"),
    case("notify", say(client_id="\ud800"), "invalid", {"client_id"}, "client_id-lone"),
    # /chat typing
    case("typing", {"id": 5}, "invalid", {"id"}, "id-int"),
    case("typing", {"id": None}, "invalid", {"id"}, "id-null"),
    case("typing", {"id": "not-a-uuid"}, "invalid", {"id"}, "id-garbage"),
    # /chat history
    case("history", {"id": 5}, "invalid", {"id"}, "id-int"),
    case("history", ref(before="3"), "invalid", {"before"}, "before-string"),
    case("history", ref(before=True), "invalid", {"before"}, "before-bool"),
    case("history", ref(before=-1), "invalid", {"before"}, "before-negative"),
    case("history", ref(limit=0), "invalid", {"limit"}, "limit-0"),
    case("history", ref(limit=101), "invalid", {"limit"}, "limit-101"),
    case("history", ref(limit="10"), "invalid", {"limit"}, "limit-string"),
    case("history", ref(limit=True), "invalid", {"limit"}, "limit-bool"),
    case("history", ref(limit=2.5), "invalid", {"limit"}, "limit-float"),
    # /chat file
    case("file", upload(id=5), "invalid", {"id"}, "id-int"),
    case("file", upload(data="hi"), "invalid", {"data"}, "data-string"),
    case("file", upload(data=None), "invalid", {"data"}, "data-null"),
    case("file", upload(data=[104, 105]), "invalid", {"data"}, "data-list"),
    case("file", upload(name=""), "invalid", {"name"}, "name-empty"),
    case("file", upload(name="n" * 256), "invalid", {"name"}, "name-256"),
    # Two binary parts: refused at the packet's header, before any field is read.
    case("file", upload(name=b"a.txt"), "invalid", set(), "name-bytes"),
    case("file", upload(name="\ud800"), "invalid", {"name"}, "name-surrogate"),
    case("file", upload(name="a\x00.txt"), "invalid", {"name"}, "name-nul"),
    case("file", upload(type=5), "invalid", {"type"}, "type-int"),
    case("file", upload(type=None), "invalid", {"type"}, "type-null"),
    case("file", upload(data=bytes(FILE_LIMIT + 1)), "too_large", {"data"}, "over"),
]


@pytest.mark.parametrize(("event", "payload", "code", "fields"), BAD_FIELDS)
async def test_a_bad_field_is_named(chat, server_log, event, payload, code, fields):
    namespace = EVENTS[event][0]
    reply = await ack(chat.alice, namespace, event, fill(payload, chat.id))
    assert_error(reply, code, fields)
    await assert_serving(chat.alice, chat.id, event)
    assert tracebacks(server_log) == []


GOOD_EDGES = [
    pytest.param("start", start(title="t" * 100), id="title-100"),
    pytest.param("start", start(title=SMILE * 100), id="title-100-astral"),
    pytest.param("start", start(title=None), id="title-null"),
    pytest.param("notify", say(text="x" * 4000), id="text-4000"),
    pytest.param("notify", say(text=SMILE * 4000), id="text-4000-astral"),
    pytest.param("notify", say(), id="kind-omitted"),
    pytest.param("notify", say(client_id="c" * 64), id="client_id-64"),
    pytest.param("join", ref(since=0), id="since-0"),
    pytest.param("history", ref(limit=1), id="limit-1"),
    pytest.param("history", ref(limit=100), id="limit-100"),
    pytest.param("history", ref(before=1), id="before-1"),
    pytest.param("file", upload(name="n" * 255), id="name-255"),
    pytest.param("file", upload(name="../../etc/passwd"), id="name-a-path"),
    pytest.param("file", upload(data=bytes(FILE_LIMIT)), id="data-at-the-limit"),
]


@pytest.mark.parametrize(("event", "payload"), GOOD_EDGES)
async def test_values_at_the_limits_are_accepted(chat, server_log, event, payload):
    namespace = EVENTS[event][0]
    reply = await ack(chat.alice, namespace, event, fill(payload, chat.id))
    assert reply["ok"] is True, reply
    if event == "notify":
        assert reply["message"]["text"] == payload["text"]
    if event == "file":
        assert reply["message"]["text"] == payload["name"]
        assert reply["message"]["file"]["size"] == len(payload["data"])
    if event == "start":
        assert reply["chat"]["title"] == payload["title"]
    assert tracebacks(server_log) == []


async def test_a_hundred_unknown_members_are_each_named(chat, server_log):
    names = [f"nobody{n}" for n in range(100)]
    reply = await ack(chat.alice, CONTROL, "start", {"members": names})
    assert_error(reply, "not_found", {"members"})
    assert reply["error"]["fields"]["members"] == [f"unknown user: {n}" for n in names]
    await assert_serving(chat.alice, chat.id, "start")
    assert tracebacks(server_log) == []


@pytest.mark.parametrize("event", EVENTS)
async def test_events_without_an_ack_callback_do_no_harm(chat, server_log, event):
    namespace, valid = EVENTS[event]
    valid = fill(valid, chat.id)
    for payload in (
        "a string",
        7,
        [valid],
        None,  # no argument at all
        (None,),  # one JSON null
        (valid, valid),  # two arguments
        {},
        {**valid, "colour": "red"},
        {**valid, "id": "\ud800", "text": "x" * 4001},
    ):
        await chat.alice.emit(namespace, event, payload)
    # Events of one connection are handled in order: this ack comes after them.
    await assert_serving(chat.alice, chat.id, event)
    assert tracebacks(server_log) == []


async def test_a_message_sent_without_an_ack_callback_is_still_delivered(chat):
    for peer in (chat.alice, chat.bob):
        assert (await peer.call(CHAT, "join", {"id": chat.id}))["ok"]
    await chat.alice.emit(CHAT, "notify", {"id": chat.id, "text": "no ack"})
    message = await chat.bob.next(CHAT, "notify")
    assert message["sender"] == "alice" and message["text"] == "no ack", message


@pytest.mark.parametrize(
    ("namespace", "event"),
    [
        (CONTROL, "no_such_event"),
        (CHAT, "no_such_event"),
        (CONTROL, "join"),  # a /chat event on /control
        (CHAT, "start"),  # a /control event on /chat
        (CHAT, "chatsio_authenticated"),  # a hook, not an event
        (CONTROL, "chatsio_after_connect"),
    ],
)
async def test_an_unknown_event_is_invalid(chat, server_log, namespace, event):
    reply = await ack(chat.alice, namespace, event, {"id": chat.id})
    assert_error(reply, "invalid")
    await chat.alice.emit(namespace, event, {"id": chat.id})
    await assert_serving(chat.alice, chat.id, "history", "start")
    assert tracebacks(server_log) == []


@pytest.mark.parametrize("event", ["connect", "disconnect", "connect_error"])
@pytest.mark.parametrize("namespace", [CONTROL, CHAT])
async def test_reserved_event_names_from_a_client_are_ignored(
    chat, server_log, namespace, event
):
    alice, bob = chat.alice, chat.bob
    sids = alice.sid
    # Forged as bob, in case the connection logic ran again on it.
    await alice.emit(namespace, event, {"token": chat.tokens["bob"]})
    await alice.emit(namespace, event, None)

    started = await alice.call(CONTROL, "start", {"members": ["bob"]})
    assert started["ok"] and started["chat"]["created_by"] == "alice", started
    await bob.next(CONTROL, "invite")
    await assert_serving(alice, chat.id, "join", "history")
    # alice's /control socket is still in her user room.
    by_bob = await bob.call(CONTROL, "start", {"members": ["alice"]})
    assert by_bob["ok"], by_bob
    invite = await alice.next(CONTROL, "invite")
    assert invite["chat"]["id"] == by_bob["chat"]["id"] and invite["by"] == "bob"
    assert alice.client.connected and alice.sid == sids
    assert alice.received(CONTROL, "welcome") == []
    assert tracebacks(server_log) == []


# REST: POST /api/users and POST /api/tokens


def login(**fields: Any) -> dict:
    return {"username": "dave", "password": PASSWORD, **fields}


BAD_CREDENTIALS = [
    pytest.param(b"not json", None, id="not-json"),
    pytest.param(b"", None, id="empty-body"),
    pytest.param(b"\xff\xfe", None, id="not-utf8"),
    pytest.param([], None, id="list"),
    pytest.param(["dave", PASSWORD], None, id="list-of-two"),
    pytest.param("dave", None, id="string"),
    pytest.param(None, None, id="null"),
    pytest.param({}, {"username", "password"}, id="empty-object"),
    pytest.param({"username": "dave"}, {"password"}, id="no-password"),
    pytest.param({"password": PASSWORD}, {"username"}, id="no-username"),
    pytest.param(login(username=""), {"username"}, id="username-empty"),
    pytest.param(login(username="d a"), {"username"}, id="username-space"),
    pytest.param(login(username="d\u00e4"), {"username"}, id="username-umlaut"),
    pytest.param(login(username="d/a"), {"username"}, id="username-slash"),
    pytest.param(login(username="d\x00"), {"username"}, id="username-nul"),
    pytest.param(login(username="d" * 33), {"username"}, id="username-33"),
    pytest.param(login(username=5), {"username"}, id="username-int"),
    pytest.param(login(password="p" * 7), {"password"}, id="password-7"),
    pytest.param(login(password="p" * 129), {"password"}, id="password-129"),
    pytest.param(login(password=12345678), {"password"}, id="password-int"),
    pytest.param(login(password="\ud800" * 8), {"password"}, id="password-surrogate"),
    pytest.param(login(admin=True), {"admin"}, id="unknown-field"),
]


async def post(server: Server, path: str, body: Any) -> tuple[int, Any]:
    """POST ``body``: bytes as they are, anything else encoded as JSON."""
    harness = server.harness
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    async with harness.http.post(harness.url + path, data=data, headers=headers) as r:
        return r.status, await r.json()


def fresh_name() -> str:
    """A username no other test of this module's shared server has taken."""
    return f"u{uuid.uuid4().hex[:16]}"


def assert_rest_error(status: int, body: Any, expected: int, code: str) -> dict:
    assert status == expected, body
    assert isinstance(body, dict) and body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str), body
    return body["error"]


@pytest.mark.parametrize(("body", "fields"), BAD_CREDENTIALS)
@pytest.mark.parametrize("path", ["/api/users", "/api/tokens"])
async def test_bad_credentials_are_invalid(server, server_log, path, body, fields):
    error = assert_rest_error(*await post(server, path, body), 400, "invalid")
    if fields is not None:
        assert set(error["fields"] or {}) == fields, error
    assert tracebacks(server_log) == []


async def test_names_and_passwords_at_the_limits_are_accepted(server):
    longest = uuid.uuid4().hex  # 32 characters
    every_kind = f"A.z_0-9{uuid.uuid4().hex[:8]}"
    for username, password in ((longest, "p" * 8), (every_kind, "p" * 128)):
        credentials = {"username": username, "password": password}
        registered = await post(server, "/api/users", credentials)
        assert registered == (201, {"username": username})
        status, body = await post(server, "/api/tokens", credentials)
        assert status == 200 and body["username"] == username, body


async def test_a_taken_username_is_a_conflict(server, server_log):
    name = fresh_name()
    credentials = {"username": name, "password": PASSWORD}
    assert (await post(server, "/api/users", credentials))[0] == 201
    again = {"username": name, "password": "another password"}
    assert_rest_error(*await post(server, "/api/users", again), 409, "conflict")
    assert tracebacks(server_log) == []


@pytest.mark.parametrize("who", ["wrong-password", "unknown-user"])
async def test_bad_credentials_are_unauthorized(server, server_log, who):
    name = fresh_name()
    await post(server, "/api/users", {"username": name, "password": PASSWORD})
    credentials = (
        {"username": name, "password": "wrong password"}
        if who == "wrong-password"
        else {"username": fresh_name(), "password": PASSWORD}
    )
    status, body = await post(server, "/api/tokens", credentials)
    assert_rest_error(status, body, 401, "unauthorized")
    assert "token" not in body
    assert tracebacks(server_log) == []
