"""REST: every route of PROTOCOL.md's table, its effects and its errors.

PROTOCOL.md, REST: JSON in and out; errors are ``{"error": Error}`` with the
status that fits. A chat started or ended over REST has the same effects as
``start`` / ``terminate`` on /control; a message posted over REST reaches every
socket in the room, since a REST call has no sending socket to skip.
(/api/health, /metrics, /api/openapi.json and / are tested elsewhere.)
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from conftest import PASSWORD, Harness, tracebacks
from helpers import (
    ISO_MS,
    assert_chat_shape,
    assert_message_shape,
    error_code,
    fast_user,
    join,
    say,
    start_chat,
    store_messages,
)
from multidict import CIMultiDictProxy

from chatsio.config import Config
from chatsio.protocol import CHAT, CONTROL

SECRET = "rest-tests-" + "k" * 32
NO_BODY = object()
UNKNOWN_ID = "0b5d2a4e-8f6b-4c1e-9a57-3d2f1e0c9b8a"


@pytest.fixture
def config(sqlite_url: str) -> Config:
    """The shared test config, with a known secret to forge tokens against."""
    return Config(
        database_url=sqlite_url, rate_limit=1000, rate_burst=1000, secret=SECRET
    )


@dataclass
class Reply:
    status: int
    body: Any
    headers: CIMultiDictProxy
    content_type: str


async def call(
    harness: Harness,
    method: str,
    path: str,
    token: str | None = None,
    *,
    json: Any = NO_BODY,
    data: bytes | None = None,
    params: dict | None = None,
    headers: dict | None = None,
) -> Reply:
    """One HTTP request; the reply's JSON body (or None when it has none)."""
    sent = dict(headers or {})
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    kwargs: dict[str, Any] = {"headers": sent, "params": params}
    if json is not NO_BODY:
        kwargs["json"] = json
    if data is not None:
        kwargs["data"] = data
        sent.setdefault("Content-Type", "application/json")
    async with harness.http.request(method, harness.url + path, **kwargs) as r:
        raw = await r.read()
        body = await r.json(content_type=None) if raw else None
        return Reply(r.status, body, r.headers, r.content_type)


def assert_error(reply: Reply, status: int, code: str, field: str | None = None):
    """Exactly ``{"error": {"code", "message", "fields"}}`` with that status."""
    assert reply.status == status, (reply.status, reply.body)
    assert reply.content_type == "application/json", reply.content_type
    assert isinstance(reply.body, dict) and set(reply.body) == {"error"}, reply.body
    error = reply.body["error"]
    assert set(error) == {"code", "message", "fields"}, error
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"], error
    fields = error["fields"]
    assert fields is None or isinstance(fields, dict), error
    for name, reasons in (fields or {}).items():
        assert isinstance(name, str) and isinstance(reasons, list) and reasons, error
        assert all(isinstance(reason, str) for reason in reasons), error
    if field is not None:
        assert fields and field in fields, error
    return error


def assert_ok(reply: Reply, status: int = 200) -> Any:
    assert reply.status == status, (reply.status, reply.body)
    assert reply.content_type == "application/json", reply.content_type
    return reply.body


async def make_admin(harness: Harness, name: str = "root") -> str:
    """An admin user, as `chatsio createuser --admin` makes one; its token."""
    return await fast_user(harness, name, admin=True)


async def each(cases: list, check) -> None:
    """Run ``check(*values)`` for every pytest.param; report every failing case."""
    failures = []
    for case in cases:
        try:
            await check(*case.values)
        except AssertionError as exc:
            failures.append(f"[{case.id}] {exc}")
    assert not failures, "\n".join(failures)


def seqs(messages: list[dict]) -> list[int]:
    return [message["seq"] for message in messages]


@pytest.fixture
async def tokens(chatsio) -> dict[str, str]:
    return {name: await fast_user(chatsio, name) for name in ("alice", "bob", "carol")}


@pytest.fixture
async def chat_id(chatsio, tokens) -> str:
    """A chat of alice and bob, started over REST; carol is not in it."""
    body = {"members": ["bob"], "title": "pair"}
    return assert_ok(
        await call(chatsio, "POST", "/api/chats", tokens["alice"], json=body), 201
    )["id"]


# --- authorization, for every route -----------------------------------------

ROUTES = [
    ("GET", "/api/me", NO_BODY),
    ("GET", "/api/chats", NO_BODY),
    ("POST", "/api/chats", {"members": ["bob"]}),
    ("GET", "/api/chats/{chat}", NO_BODY),
    ("DELETE", "/api/chats/{chat}", NO_BODY),
    ("DELETE", "/api/chats/{chat}/members/me", NO_BODY),
    ("GET", "/api/chats/{chat}/messages", NO_BODY),
    ("POST", "/api/chats/{chat}/messages", {"text": "sneaky"}),
    ("GET", "/api/files/{file}", NO_BODY),
    ("POST", "/api/notifications", {"text": "sneaky"}),
    ("POST", "/api/notifications", {"text": "sneaky", "id": "{chat}"}),
]


def expired_token() -> str:
    past = int(time.time()) - 3600
    return jwt.encode({"sub": "alice", "exp": past, "iat": past - 60}, SECRET, "HS256")


def forged_token() -> str:
    claims = {"sub": "alice", "exp": int(time.time()) + 3600}
    return jwt.encode(claims, "not the server's secret at all, no" * 2, "HS256")


BAD_AUTH = [
    pytest.param(None, id="none"),
    pytest.param("Bearer", id="empty-bearer"),
    pytest.param("Bearer not-a-token", id="garbage"),
    pytest.param("Basic YWxpY2U6Y29ycmVjdCBob3JzZQ==", id="basic"),
    pytest.param("Bearer " + forged_token(), id="forged"),
    pytest.param("Bearer " + expired_token(), id="expired"),
    pytest.param(
        "Bearer "
        + jwt.encode({"sub": "alice", "exp": int(time.time()) + 3600}, None, "none"),
        id="unsigned",
    ),
]


def fill(value: Any, chat_id: str) -> Any:
    return value.format(chat=chat_id) if isinstance(value, str) else value


async def test_every_route_refuses_a_missing_or_bad_token(chatsio, tokens, chat_id):
    file_id = str(uuid.uuid4())

    async def check(authorization: str | None) -> None:
        headers = {} if authorization is None else {"Authorization": authorization}
        for method, template, body in ROUTES:
            path = template.format(chat=chat_id, file=file_id)
            if isinstance(body, dict):
                body = {k: fill(v, chat_id) for k, v in body.items()}
            reply = await call(chatsio, method, path, json=body, headers=headers)
            try:
                assert_error(reply, 401, "unauthorized")
            except AssertionError as exc:
                raise AssertionError(f"{method} {path}: {exc}") from None

    await each(BAD_AUTH, check)
    # None of it had an effect: no chat started or ended, nothing stored.
    listed = assert_ok(await call(chatsio, "GET", "/api/chats", tokens["bob"]))
    assert [(c["id"], c["active"]) for c in listed] == [(chat_id, True)]
    path = f"/api/chats/{chat_id}/messages"
    assert assert_ok(await call(chatsio, "GET", path, tokens["bob"])) == []


# --- POST /api/users and POST /api/tokens -------------------------------------


async def test_register_then_log_in(chatsio):
    credentials = {"username": "dave", "password": PASSWORD}
    reply = await call(chatsio, "POST", "/api/users", json=credentials)
    assert assert_ok(reply, 201) == {"username": "dave"}

    again = await call(chatsio, "POST", "/api/users", json=credentials)
    assert_error(again, 409, "conflict")

    reply = await call(chatsio, "POST", "/api/tokens", json=credentials)
    body = assert_ok(reply)
    assert set(body) == {"token", "username", "expires_at"}
    assert body["username"] == "dave" and isinstance(body["token"], str)
    assert ISO_MS.match(body["expires_at"]), body
    expires = datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00"))
    assert abs(expires - (datetime.now(UTC) + timedelta(hours=24))) < timedelta(
        minutes=2
    )
    assert (
        PASSWORD
        not in jwt.decode(body["token"], options={"verify_signature": False}).values()
    )

    me = assert_ok(await call(chatsio, "GET", "/api/me", body["token"]))
    assert me == {"username": "dave", "is_admin": False}


@pytest.mark.parametrize(
    "username,password",
    [("a" * 32, "p" * 8), ("A.b_c-9", "p" * 128)],
    ids=["longest-name", "longest-password"],
)
async def test_register_accepts_the_bounds(chatsio, username, password):
    body = {"username": username, "password": password}
    assert assert_ok(await call(chatsio, "POST", "/api/users", json=body), 201) == {
        "username": username
    }
    assert assert_ok(await call(chatsio, "POST", "/api/tokens", json=body))["token"]


BAD_CREDENTIALS = [
    pytest.param({"password": PASSWORD}, "username", id="no-username"),
    pytest.param({"username": "erin"}, "password", id="no-password"),
    pytest.param({"username": "", "password": PASSWORD}, "username", id="empty-name"),
    pytest.param(
        {"username": "a" * 33, "password": PASSWORD}, "username", id="long-name"
    ),
    pytest.param(
        {"username": "bad name", "password": PASSWORD}, "username", id="space-in-name"
    ),
    pytest.param({"username": "erin/x", "password": PASSWORD}, "username", id="slash"),
    pytest.param({"username": 5, "password": PASSWORD}, "username", id="int-name"),
    pytest.param({"username": "erin", "password": "p" * 7}, "password", id="short-pw"),
    pytest.param({"username": "erin", "password": "p" * 129}, "password", id="long-pw"),
    pytest.param(
        {"username": "erin", "password": PASSWORD, "is_admin": True},
        "is_admin",
        id="is_admin",
    ),
    pytest.param(["erin", PASSWORD], None, id="list"),
]


async def test_bad_credentials_bodies_are_invalid(chatsio):
    async def check(body: Any, field: str | None) -> None:
        for path in ("/api/users", "/api/tokens"):
            reply = await call(chatsio, "POST", path, json=body)
            assert_error(reply, 400, "invalid", field)

    await each(BAD_CREDENTIALS, check)
    for raw in (b"", b"{not json", b"\xff\xfe", b"null"):
        for path in ("/api/users", "/api/tokens"):
            assert_error(await call(chatsio, "POST", path, data=raw), 400, "invalid")
    # Nobody was registered on the way, and certainly not an admin.
    login = {"username": "erin", "password": PASSWORD}
    reply = await call(chatsio, "POST", "/api/tokens", json=login)
    assert_error(reply, 401, "unauthorized")


async def test_log_in_with_wrong_password_or_unknown_user_is_unauthorized(
    chatsio, tokens
):
    wrong = {"username": "alice", "password": "wrong password"}
    assert_error(
        await call(chatsio, "POST", "/api/tokens", json=wrong), 401, "unauthorized"
    )
    nobody = {"username": "nobody", "password": PASSWORD}
    assert_error(
        await call(chatsio, "POST", "/api/tokens", json=nobody), 401, "unauthorized"
    )


async def test_registration_closed_is_forbidden(make_config):
    harness = await Harness(make_config(registration_open=False)).start()
    try:
        body = {"username": "erin", "password": PASSWORD}
        assert_error(
            await call(harness, "POST", "/api/users", json=body), 403, "forbidden"
        )
        assert_error(
            await call(harness, "POST", "/api/tokens", json=body), 401, "unauthorized"
        )
    finally:
        await harness.close()


# --- GET /api/me ----------------------------------------------------------------


async def test_me_names_the_caller_and_the_role(chatsio, tokens):
    me = assert_ok(await call(chatsio, "GET", "/api/me", tokens["alice"]))
    assert me == {"username": "alice", "is_admin": False}
    root = await make_admin(chatsio)
    assert assert_ok(await call(chatsio, "GET", "/api/me", root)) == {
        "username": "root",
        "is_admin": True,
    }


# --- POST /api/chats ----------------------------------------------------------


async def test_start_over_rest_invites_every_device_of_every_member(chatsio, tokens):
    alice1, _ = await chatsio.member(tokens["alice"])
    alice2, _ = await chatsio.member(tokens["alice"])
    bob1, _ = await chatsio.member(tokens["bob"])
    bob2, _ = await chatsio.member(tokens["bob"])
    carol, _ = await chatsio.member(tokens["carol"])

    body = {"members": ["bob"], "title": "lunch"}
    chat = assert_ok(
        await call(chatsio, "POST", "/api/chats", tokens["alice"], json=body), 201
    )
    assert_chat_shape(chat)
    assert chat["members"] == ["alice", "bob"] and chat["created_by"] == "alice"
    assert chat["title"] == "lunch" and chat["active"] is True
    # A REST call has no origin connection: the creator's devices are invited too.
    online = {"online": True, "last_seen": None}
    for device, other in ((alice1, "bob"), (alice2, "bob"), (bob1, "alice")):
        assert await device.next(CONTROL, "invite") == {
            "chat": chat,
            "by": "alice",
            "presence": [{"user": other, **online}],
        }
    assert (await bob2.next(CONTROL, "invite"))["chat"] == chat

    # Barrier: carol's first invite is to a chat she is in, not alice and bob's.
    second = assert_ok(
        await call(
            chatsio, "POST", "/api/chats", tokens["bob"], json={"members": ["carol"]}
        ),
        201,
    )
    assert await carol.next(CONTROL, "invite") == {
        "chat": second,
        "by": "bob",
        "presence": [{"user": "bob", **online}],
    }
    assert second["title"] is None

    # The same rows as a /control start: welcome, the listings, join.
    _, welcome = await chatsio.member(tokens["bob"])
    assert chat in welcome["chats"] and second in welcome["chats"]
    listed = assert_ok(await call(chatsio, "GET", "/api/chats", tokens["alice"]))
    assert listed == [chat]
    assert (
        assert_ok(await call(chatsio, "GET", f"/api/chats/{chat['id']}", tokens["bob"]))
        == chat
    )
    joined = await join(bob1, chat["id"])
    assert joined["chat"] == chat and joined["messages"] == []
    sent = await say(alice1, chat["id"], "hello")
    assert await bob1.next(CHAT, "notify") == sent


async def test_start_over_rest_drops_duplicates_and_the_creator(chatsio, tokens):
    body = {"members": ["carol", "bob", "alice", "bob"]}
    chat = assert_ok(
        await call(chatsio, "POST", "/api/chats", tokens["alice"], json=body), 201
    )
    assert chat["members"] == ["alice", "bob", "carol"]


BAD_STARTS = [
    pytest.param({}, 400, "invalid", "members", id="no-members"),
    pytest.param({"members": []}, 400, "invalid", "members", id="empty-members"),
    pytest.param({"members": ["alice"]}, 400, "invalid", "members", id="only-self"),
    pytest.param({"members": "bob"}, 400, "invalid", "members", id="members-str"),
    pytest.param({"members": ["bad name"]}, 400, "invalid", None, id="bad-name"),
    pytest.param({"members": [7]}, 400, "invalid", None, id="int-member"),
    pytest.param(
        {"members": ["bob"], "title": 5}, 400, "invalid", "title", id="int-title"
    ),
    pytest.param({"members": ["bob"], "extra": 1}, 400, "invalid", "extra", id="extra"),
    pytest.param(["bob"], 400, "invalid", None, id="list-body"),
    pytest.param(
        {"members": ["bob"], "title": "t" * 101},
        413,
        "too_large",
        "title",
        id="long-title",
    ),
    # The schema comes first: over-long even though the names are unknown.
    pytest.param(
        {"members": [f"ghost{n}" for n in range(101)]},
        413,
        "too_large",
        "members",
        id="101-members",
    ),
]


async def test_bad_start_bodies(chatsio, tokens):
    alice, _ = await chatsio.member(tokens["alice"])

    async def check(body: Any, status: int, code: str, field: str | None) -> None:
        reply = await call(chatsio, "POST", "/api/chats", tokens["alice"], json=body)
        assert_error(reply, status, code, field)

    await each(BAD_STARTS, check)
    headers = {"Authorization": f"Bearer {tokens['alice']}"}
    reply = await call(chatsio, "POST", "/api/chats", data=b"{members", headers=headers)
    assert_error(reply, 400, "invalid")
    assert assert_ok(await call(chatsio, "GET", "/api/chats", tokens["alice"])) == []
    # Barrier: the first invite alice gets is for the chat started after them all.
    chat = await start_chat((await chatsio.member(tokens["bob"]))[0], "alice")
    assert (await alice.next(CONTROL, "invite"))["chat"] == chat


async def test_start_with_the_longest_title_and_unknown_members(chatsio, tokens):
    body = {"members": ["bob"], "title": "\u2603" * 100}  # code points, not bytes
    chat = assert_ok(
        await call(chatsio, "POST", "/api/chats", tokens["alice"], json=body), 201
    )
    assert chat["title"] == body["title"]

    body = {"members": ["bob", "zed", "yan"]}
    reply = await call(chatsio, "POST", "/api/chats", tokens["alice"], json=body)
    error = assert_error(reply, 404, "not_found", "members")
    assert sorted(error["fields"]["members"]) == [
        "unknown user: yan",
        "unknown user: zed",
    ]
    listed = assert_ok(await call(chatsio, "GET", "/api/chats", tokens["alice"]))
    assert [c["id"] for c in listed] == [chat["id"]]


# --- GET /api/chats and GET /api/chats/{id} ---------------------------------------


async def test_list_chats_gives_the_users_chats_active_first(chatsio, tokens):
    def start(token: str, *members: str) -> Any:
        return call(
            chatsio, "POST", "/api/chats", token, json={"members": list(members)}
        )

    assert assert_ok(await call(chatsio, "GET", "/api/chats", tokens["alice"])) == []
    made = [assert_ok(await start(tokens["alice"], "bob"), 201) for _ in range(4)]
    with_carol = assert_ok(await start(tokens["alice"], "carol"), 201)
    assert_ok(await start(tokens["bob"], "carol"), 201)  # alice is not in it
    for chat in (made[0], made[2]):
        reply = await call(chatsio, "DELETE", f"/api/chats/{chat['id']}", tokens["bob"])
        assert reply.status in (200, 204), reply.body

    listed = assert_ok(await call(chatsio, "GET", "/api/chats", tokens["alice"]))
    for chat in listed:
        assert_chat_shape(chat)
        assert "alice" in chat["members"]
    ended = {made[0]["id"], made[2]["id"]}
    assert {c["id"] for c in listed} == {c["id"] for c in [*made, with_carol]}
    assert [c["active"] for c in listed] == [True, True, True, False, False]
    assert {c["id"] for c in listed if not c["active"]} == ended


async def test_get_chat_is_for_members_only(chatsio, tokens, chat_id):
    chat = assert_ok(await call(chatsio, "GET", f"/api/chats/{chat_id}", tokens["bob"]))
    assert_chat_shape(chat)
    assert chat["id"] == chat_id and chat["members"] == ["alice", "bob"]
    assert chat["title"] == "pair" and chat["active"] is True

    outsider = await call(chatsio, "GET", f"/api/chats/{chat_id}", tokens["carol"])
    assert_error(outsider, 403, "forbidden")
    unknown = await call(chatsio, "GET", f"/api/chats/{UNKNOWN_ID}", tokens["bob"])
    assert_error(unknown, 404, "not_found")
    # Any spelling of the UUID names the same chat.
    upper = await call(chatsio, "GET", f"/api/chats/{chat_id.upper()}", tokens["bob"])
    assert assert_ok(upper) == chat


async def test_a_malformed_chat_id_is_an_error_not_a_crash(chatsio, tokens, server_log):
    for bad in ("not-a-uuid", "1", "%00", "x" * 300):
        for method, path in (
            ("GET", f"/api/chats/{bad}"),
            ("DELETE", f"/api/chats/{bad}"),
            ("GET", f"/api/chats/{bad}/messages"),
        ):
            reply = await call(chatsio, method, path, tokens["alice"])
            assert reply.status in (400, 404), (method, path, reply.body)
            assert_error(
                reply, reply.status, {400: "invalid", 404: "not_found"}[reply.status]
            )
    assert tracebacks(server_log) == []


# --- DELETE /api/chats/{id} ---------------------------------------------------


async def test_end_over_rest_has_the_effects_of_terminate(chatsio, tokens, chat_id):
    alice1, _ = await chatsio.member(tokens["alice"])
    alice2, _ = await chatsio.member(tokens["alice"])
    bob1, _ = await chatsio.member(tokens["bob"])
    carol, _ = await chatsio.member(tokens["carol"])
    await join(alice1, chat_id)
    await join(bob1, chat_id)
    first = await say(alice1, chat_id, "before the end")
    assert await bob1.next(CHAT, "notify") == first

    reply = await call(chatsio, "DELETE", f"/api/chats/{chat_id}", tokens["bob"])
    assert reply.status in (200, 204), reply.body
    for device in (alice1, alice2, bob1):
        assert await device.next(CONTROL, "terminate") == {"id": chat_id, "by": "bob"}
    for device in (alice1, bob1):  # the sockets in the room hear the notice
        notice = await device.next(CHAT, "notify")
        assert_message_shape(notice)
        assert notice["id"] == chat_id and notice["seq"] == first["seq"] + 1
        assert notice["kind"] == "notification" and notice["sender"] is None
        assert notice["file"] is None

    chat = assert_ok(
        await call(chatsio, "GET", f"/api/chats/{chat_id}", tokens["alice"])
    )
    assert chat["active"] is False
    ack = await bob1.call(CHAT, "join", {"id": chat_id})
    assert error_code(ack) == "terminated"
    history = assert_ok(
        await call(chatsio, "GET", f"/api/chats/{chat_id}/messages", tokens["alice"])
    )
    assert history == [first, notice]
    ack = await alice1.call(CHAT, "history", {"id": chat_id})
    assert ack["ok"] and ack["messages"] == [first, notice]
    posted = await call(
        chatsio,
        "POST",
        f"/api/chats/{chat_id}/messages",
        tokens["alice"],
        json={"text": "hi"},
    )
    assert_error(posted, 410, "terminated")
    again = await call(chatsio, "DELETE", f"/api/chats/{chat_id}", tokens["alice"])
    assert_error(again, 410, "terminated")
    _, welcome = await chatsio.member(tokens["alice"])
    assert welcome["chats"] == []

    # Barrier: carol's first terminate is of her own chat, not alice and bob's.
    own = await start_chat(carol, "alice")
    assert (await carol.call(CONTROL, "terminate", {"id": own["id"]}))["ok"]
    assert await carol.next(CONTROL, "terminate") == {"id": own["id"], "by": "carol"}


async def test_end_by_a_non_member_or_of_an_unknown_chat(chatsio, tokens, chat_id):
    bob, _ = await chatsio.member(tokens["bob"])
    reply = await call(chatsio, "DELETE", f"/api/chats/{chat_id}", tokens["carol"])
    assert_error(reply, 403, "forbidden")
    reply = await call(chatsio, "DELETE", f"/api/chats/{UNKNOWN_ID}", tokens["carol"])
    assert_error(reply, 404, "not_found")

    chat = assert_ok(await call(chatsio, "GET", f"/api/chats/{chat_id}", tokens["bob"]))
    assert chat["active"] is True
    await join(bob, chat_id)
    assert bob.received(CONTROL, "terminate") == []


# --- POST /api/chats/{id}/messages --------------------------------------------


async def test_post_message_reaches_every_socket_in_the_room(chatsio, tokens, chat_id):
    alice1, _ = await chatsio.member(tokens["alice"])
    alice2, _ = await chatsio.member(tokens["alice"])
    bob1, _ = await chatsio.member(tokens["bob"])
    bob2, _ = await chatsio.member(tokens["bob"])  # connected, not in the room
    for device in (alice1, alice2, bob1):
        await join(device, chat_id)

    path = f"/api/chats/{chat_id}/messages"
    message = assert_ok(
        await call(chatsio, "POST", path, tokens["alice"], json={"text": "over rest"}),
        201,
    )
    assert_message_shape(message)
    assert message["id"] == chat_id and message["seq"] == 1
    assert message["kind"] == "message" and message["text"] == "over rest"
    assert message["sender"] == "alice"
    assert message["client_id"] is None and message["file"] is None
    # No socket is skipped: the sender's own devices get it too.
    for device in (alice1, alice2, bob1):
        assert await device.next(CHAT, "notify") == message

    # Barrier: bob2 joins now; the first thing it hears is the next message.
    await join(bob2, chat_id)
    after = await say(alice1, chat_id, "now you are in")
    assert await bob2.next(CHAT, "notify") == after
    history = assert_ok(await call(chatsio, "GET", path, tokens["bob"]))
    assert history == [message, after]


async def test_post_message_is_idempotent_with_a_client_id(chatsio, tokens, chat_id):
    bob, _ = await chatsio.member(tokens["bob"])
    await join(bob, chat_id)
    path = f"/api/chats/{chat_id}/messages"
    body = {"text": "once", "client_id": "c-1"}

    first = assert_ok(
        await call(chatsio, "POST", path, tokens["alice"], json=body), 201
    )
    assert first["client_id"] == "c-1" and first["seq"] == 1
    repeat = await call(chatsio, "POST", path, tokens["alice"], json=body)
    assert repeat.status in (200, 201), repeat.body
    assert repeat.body == first
    # The same client_id over the socket is the same send, too.
    ack = await (await chatsio.peer(tokens["alice"], namespaces=(CHAT,))).call(
        CHAT,
        "notify",
        {"id": chat_id, "kind": "message", "text": "once", "client_id": "c-1"},
    )
    assert ack["ok"] and ack["message"] == first
    # Another user's c-1 is another message.
    bobs = assert_ok(await call(chatsio, "POST", path, tokens["bob"], json=body), 201)
    assert bobs["seq"] == 2 and bobs["sender"] == "bob"

    assert await bob.next(CHAT, "notify") == first
    assert await bob.next(CHAT, "notify") == bobs  # nothing sent twice before it
    history = assert_ok(await call(chatsio, "GET", path, tokens["alice"]))
    assert history == [first, bobs]


async def test_post_message_accepts_the_longest_text(chatsio, tokens, chat_id):
    path = f"/api/chats/{chat_id}/messages"
    text = "\U0001f600" * 4000  # 4000 code points, 16000 UTF-8 bytes
    body = {"text": text, "client_id": "k" * 64}
    message = assert_ok(
        await call(chatsio, "POST", path, tokens["bob"], json=body), 201
    )
    assert message["text"] == text and message["client_id"] == "k" * 64


BAD_MESSAGES = [
    pytest.param({}, 400, "invalid", "text", id="no-text"),
    pytest.param({"text": ""}, 400, "invalid", "text", id="empty-text"),
    pytest.param({"text": 5}, 400, "invalid", "text", id="int-text"),
    pytest.param({"text": None}, 400, "invalid", "text", id="null-text"),
    pytest.param({"text": "x" * 4001}, 413, "too_large", "text", id="long-text"),
    pytest.param(
        {"text": "hi", "client_id": "c" * 65},
        400,
        "invalid",
        "client_id",
        id="long-cid",
    ),
    pytest.param(
        {"text": "hi", "client_id": 7}, 400, "invalid", "client_id", id="int-cid"
    ),
    pytest.param(
        {"text": "hi", "sender": "bob"}, 400, "invalid", "sender", id="sender"
    ),
    pytest.param(["hi"], 400, "invalid", None, id="list-body"),
    pytest.param("hi", 400, "invalid", None, id="string-body"),
]


async def test_bad_message_bodies(chatsio, tokens, chat_id):
    path = f"/api/chats/{chat_id}/messages"

    async def check(body: Any, status: int, code: str, field: str | None) -> None:
        reply = await call(chatsio, "POST", path, tokens["alice"], json=body)
        assert_error(reply, status, code, field)

    await each(BAD_MESSAGES, check)
    assert assert_ok(await call(chatsio, "GET", path, tokens["alice"])) == []


async def test_post_message_errors(chatsio, tokens, chat_id):
    body = {"text": "hi"}
    path = f"/api/chats/{chat_id}/messages"
    assert_error(
        await call(chatsio, "POST", path, tokens["carol"], json=body), 403, "forbidden"
    )
    unknown = f"/api/chats/{UNKNOWN_ID}/messages"
    assert_error(
        await call(chatsio, "POST", unknown, tokens["carol"], json=body),
        404,
        "not_found",
    )
    headers = {"Authorization": f"Bearer {tokens['alice']}"}
    assert_error(
        await call(chatsio, "POST", path, data=b"{text", headers=headers),
        400,
        "invalid",
    )
    assert assert_ok(await call(chatsio, "GET", path, tokens["alice"])) == []

    ended = await call(chatsio, "DELETE", f"/api/chats/{chat_id}", tokens["alice"])
    assert ended.status in (200, 204), ended.body
    reply = await call(chatsio, "POST", path, tokens["bob"], json=body)
    assert_error(reply, 410, "terminated")
    history = assert_ok(await call(chatsio, "GET", path, tokens["alice"]))
    assert [m["kind"] for m in history] == ["notification"]  # only the closing notice


# --- GET /api/chats/{id}/messages ---------------------------------------------


async def test_messages_pages_before_after_and_limit(chatsio, tokens, chat_id):
    await store_messages(chatsio, chat_id, "alice", 120)
    path = f"/api/chats/{chat_id}/messages"

    async def page(**params: Any) -> list[dict]:
        query = {k: str(v) for k, v in params.items()}
        return assert_ok(await call(chatsio, "GET", path, tokens["bob"], params=query))

    newest = await page()
    for message in newest:
        assert_message_shape(message)
    assert seqs(newest) == list(range(71, 121))  # newest 50, oldest first
    assert [m["text"] for m in newest[:2]] == ["m71", "m72"]
    assert seqs(await page(limit=10)) == list(range(111, 121))
    assert seqs(await page(limit=1)) == [120]
    assert seqs(await page(limit=1000)) == list(range(1, 121))
    assert seqs(await page(before=30, limit=5)) == list(range(25, 30))
    assert seqs(await page(before=30)) == list(range(1, 30))
    assert seqs(await page(before=1)) == []
    assert seqs(await page(before=500, limit=3)) == [118, 119, 120]
    assert seqs(await page(after=100)) == list(range(101, 121))
    assert seqs(await page(after=10, limit=5)) == list(range(11, 16))
    assert seqs(await page(after=0)) == list(range(1, 51))  # the oldest 50
    assert seqs(await page(after=0, limit=1000)) == list(range(1, 121))
    assert seqs(await page(after=120)) == []
    # after and before together are a window (tests/test_message_window.py)
    assert seqs(await page(after=5, before=9, limit=2)) == [6, 7]
    assert seqs(await page(after=5, before=3, limit=2)) == []


BAD_QUERIES = [
    pytest.param({"limit": "0"}, id="limit-0"),
    pytest.param({"limit": "1001"}, id="limit-1001"),
    pytest.param({"limit": "-1"}, id="limit-negative"),
    pytest.param({"limit": "abc"}, id="limit-abc"),
    pytest.param({"limit": ""}, id="limit-empty"),
    pytest.param({"limit": "2.5"}, id="limit-float"),
    pytest.param({"before": "abc"}, id="before-abc"),
    pytest.param({"before": "-1"}, id="before-negative"),
    pytest.param({"after": "x"}, id="after-x"),
    pytest.param({"after": "-1"}, id="after-negative"),
]


async def test_bad_message_queries_are_invalid(chatsio, tokens, chat_id):
    path = f"/api/chats/{chat_id}/messages"

    async def check(query: dict) -> None:
        reply = await call(chatsio, "GET", path, tokens["alice"], params=query)
        error = assert_error(reply, 400, "invalid")
        assert error["fields"], error  # fields says which parameter is wrong

    await each(BAD_QUERIES, check)


async def test_messages_for_non_members_and_unknown_chats(chatsio, tokens, chat_id):
    path = f"/api/chats/{chat_id}/messages"
    assert_error(await call(chatsio, "GET", path, tokens["carol"]), 403, "forbidden")
    unknown = f"/api/chats/{UNKNOWN_ID}/messages"
    assert_error(await call(chatsio, "GET", unknown, tokens["carol"]), 404, "not_found")


# --- POST /api/notifications ----------------------------------------------------


@pytest.fixture
async def root(chatsio) -> str:
    return await make_admin(chatsio)


async def test_global_notification_reaches_every_control_socket(chatsio, tokens, root):
    devices = [
        (await chatsio.member(tokens["alice"]))[0],
        (await chatsio.member(tokens["bob"]))[0],
        (await chatsio.member(tokens["bob"]))[0],
        (await chatsio.member(tokens["carol"]))[0],
        (await chatsio.member(root))[0],
    ]
    body = {"text": "maintenance at noon"}
    reply = await call(chatsio, "POST", "/api/notifications", root, json=body)
    assert reply.status == 202, reply.body
    for device in devices:
        notice = await device.next(CONTROL, "notify")
        assert set(notice) == {"kind", "text", "id", "ts"}, notice
        assert notice["kind"] == "notification" and notice["id"] is None
        assert notice["text"] == "maintenance at noon"
        assert ISO_MS.match(notice["ts"]), notice


async def test_chat_notification_is_a_stored_message(chatsio, tokens, chat_id, root):
    alice, _ = await chatsio.member(tokens["alice"])
    bob, _ = await chatsio.member(tokens["bob"])
    await join(alice, chat_id)
    await join(bob, chat_id)
    first = await say(alice, chat_id, "hi")
    assert await bob.next(CHAT, "notify") == first

    body = {"text": "this chat is archived soon", "id": chat_id}
    message = assert_ok(
        await call(chatsio, "POST", "/api/notifications", root, json=body), 201
    )
    assert_message_shape(message)
    assert message["id"] == chat_id and message["seq"] == 2
    assert message["kind"] == "notification" and message["sender"] is None
    assert message["text"] == "this chat is archived soon"
    assert message["client_id"] is None and message["file"] is None
    for device in (alice, bob):  # the whole room, the sender's socket included
        assert await device.next(CHAT, "notify") == message

    path = f"/api/chats/{chat_id}/messages"
    assert assert_ok(await call(chatsio, "GET", path, tokens["bob"])) == [
        first,
        message,
    ]
    ack = await bob.call(CHAT, "history", {"id": chat_id})
    assert ack["ok"] and ack["messages"] == [first, message]


async def test_notifications_are_for_admins_only(chatsio, tokens, chat_id, root):
    alice, _ = await chatsio.member(tokens["alice"])
    await join(alice, chat_id)
    for body in ({"text": "fake outage"}, {"text": "fake notice", "id": chat_id}):
        reply = await call(
            chatsio, "POST", "/api/notifications", tokens["alice"], json=body
        )
        assert_error(reply, 403, "forbidden")

    # Barrier: the first notices alice gets are the admin's, sent afterwards.
    real = {"text": "real notice"}
    assert (
        await call(chatsio, "POST", "/api/notifications", root, json=real)
    ).status == 202
    assert (await alice.next(CONTROL, "notify"))["text"] == "real notice"
    said = await say((await chatsio.member(tokens["bob"]))[0], chat_id, "barrier")
    assert await alice.next(CHAT, "notify") == said
    path = f"/api/chats/{chat_id}/messages"
    assert assert_ok(await call(chatsio, "GET", path, tokens["alice"])) == [said]


BAD_NOTIFICATIONS = [
    pytest.param({}, 400, "invalid", "text", id="no-text"),
    pytest.param({"text": ""}, 400, "invalid", "text", id="empty-text"),
    pytest.param({"text": 1}, 400, "invalid", "text", id="int-text"),
    pytest.param({"text": "x" * 4001}, 413, "too_large", "text", id="long-text"),
    pytest.param({"text": "x", "id": "nope"}, 400, "invalid", "id", id="bad-id"),
    pytest.param({"text": "x", "id": 5}, 400, "invalid", "id", id="int-id"),
    pytest.param({"text": "x", "kind": "message"}, 400, "invalid", "kind", id="extra"),
    pytest.param(["x"], 400, "invalid", None, id="list-body"),
    pytest.param({"text": "x", "id": UNKNOWN_ID}, 404, "not_found", None, id="unknown"),
]


async def test_bad_notifications(chatsio, root):
    device, _ = await chatsio.member(root)

    async def check(body: Any, status: int, code: str, field: str | None) -> None:
        reply = await call(chatsio, "POST", "/api/notifications", root, json=body)
        assert_error(reply, status, code, field)

    await each(BAD_NOTIFICATIONS, check)
    # Barrier: nothing went out before this one.
    good = {"text": "after the bad ones"}
    reply = await call(chatsio, "POST", "/api/notifications", root, json=good)
    assert reply.status == 202, reply.body
    assert (await device.next(CONTROL, "notify"))["text"] == "after the bad ones"


async def test_notification_to_an_ended_chat_is_terminated(
    chatsio, tokens, chat_id, root
):
    ended = await call(chatsio, "DELETE", f"/api/chats/{chat_id}", tokens["alice"])
    assert ended.status in (200, 204), ended.body
    body = {"text": "too late", "id": chat_id}
    reply = await call(chatsio, "POST", "/api/notifications", root, json=body)
    assert_error(reply, 410, "terminated")
    path = f"/api/chats/{chat_id}/messages"
    history = assert_ok(await call(chatsio, "GET", path, tokens["alice"]))
    assert [m["text"] for m in history if m["text"] == "too late"] == []
