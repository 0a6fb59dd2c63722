"""The operations of ``openapi.json``: every REST route, its replies and failures."""

from __future__ import annotations

from typing import Any

from chatsio.errors import (
    ChatsioError,
    Conflict,
    Forbidden,
    InvalidPayload,
    NotFound,
    RateLimited,
    Terminated,
    TooLarge,
    Unauthorized,
)
from chatsio.schemas import MessagesQuery, PresenceQuery

BEARER = [{"bearerAuth": []}]
UUID = {"type": "string", "format": "uuid"}
FAILURES: dict[type[ChatsioError], str] = {
    InvalidPayload: "the body, a parameter or an id fails its schema; "
    "`fields` says which field and why",
    Unauthorized: "no valid `Authorization: Bearer <token>`",
    Forbidden: "not a member of that chat, or lacks the role",
    NotFound: "no such chat, user or file",
    Conflict: "the username is taken",
    Terminated: "the chat has ended",
    TooLarge: "a text, title, member list or list of names is over its limit, "
    "or the body over 1 MiB",
    RateLimited: "over an allowance; `Retry-After` says in how many seconds to retry",
}
FAILURE_BY_STATUS = {error.status: error for error in FAILURES}


def operation(
    operation_id: str,
    summary: str,
    replies: dict,
    fails: tuple[int, ...] = (),
    *,
    token: bool = True,
    **extra: Any,
) -> dict:
    """One operation; one that takes a token may also answer 401."""
    if token:
        extra["security"] = BEARER
        fails = (*fails, 401)
    responses = dict(replies)
    for status in sorted(set(fails)):
        responses[str(status)] = FAILURE_BY_STATUS[status].code
    extra["responses"] = responses
    return {"operationId": operation_id, "summary": summary, **extra}


def json_body(schema: str, example: dict) -> dict:
    media = {"schema": schema, "example": example}
    return {"required": True, "content": {"application/json": media}}


def reply(description: str, schema: Any = None, **extra: Any) -> dict:
    """A documented success; ``schema`` None means no body."""
    if schema is not None:
        extra["content"] = {"application/json": {"schema": schema}}
    return {"description": description, **extra}


def listing(schema: str) -> dict:
    return {"type": "array", "items": schema}


def chat_links() -> dict:
    """Where a new chat's id can go next (schemathesis's stateful phase uses it)."""
    names = ("getChat", "endChat", "listMessages", "postMessage")
    link = {"parameters": {"id": "$response.body#/id"}}
    return {name[0].upper() + name[1:]: {"operationId": name, **link} for name in names}


def identity_paths() -> dict:
    # A body over aiohttp's client_max_size (1 MiB) is too_large on every route.
    credentials = json_body(
        "Credentials", {"username": "alice", "password": "correct horse"}
    )
    register = operation(
        "register",
        "Register a user",
        {"201": reply("registered", "User")},
        (400, 403, 409, 413, 429),
        token=False,
        description="Each client address may register "
        "`CHATSIO_REGISTRATIONS_PER_HOUR` users an hour (per node); 429 also "
        "when the server's password hashing queue is full.",
        requestBody=credentials,
    )
    log_in = operation(
        "logIn",
        "Log in: trade a username and password for a token",
        {"200": reply("a token", "Token")},
        (400, 401, 413, 429),
        token=False,
        description="After `CHATSIO_LOGIN_FAILURES_PER_USER` failed logins for a "
        "username, or `CHATSIO_LOGIN_FAILURES_PER_ADDRESS` from a client address, "
        "further attempts are refused for a back-off that doubles with each "
        "failure (per node); 429 also when the password hashing queue is full.",
        requestBody=credentials,
    )
    me = operation("me", "The caller's name and role", {"200": reply("you", "Me")})
    return {
        "/api/users": {"post": register},
        "/api/tokens": {"post": log_in},
        "/api/me": {"get": me},
    }


def chat_paths() -> dict:
    chat_id = {"name": "id", "in": "path", "required": True, "schema": UUID}
    new_chat = json_body("NewChat", {"members": ["bob"], "title": "lunch"})
    new_message = json_body("NewMessage", {"text": "hello", "client_id": "m-1"})
    started = reply("started", "Chat", links=chat_links())
    return {
        "/api/chats": {
            "get": operation(
                "listChats",
                "The caller's chats, active first",
                {"200": reply("chats", listing("Chat"))},
            ),
            "post": operation(
                "startChat",
                "Start a chat: the same as /control start",
                {"201": started},
                (400, 404, 413, 429),
                description="Each user may start `CHATSIO_CHATS_PER_MINUTE` chats "
                "and invite `CHATSIO_INVITES_PER_MINUTE` users a minute (per node), "
                "unknown names included.",
                requestBody=new_chat,
            ),
        },
        "/api/chats/{id}": {
            "parameters": [chat_id],
            "get": operation(
                "getChat",
                "One chat, for its members",
                {"200": reply("the chat", "Chat")},
                (400, 403, 404),
            ),
            "delete": operation(
                "endChat",
                "End a chat: the same as /control terminate",
                {"204": reply("ended")},
                (400, 403, 404, 410),
            ),
        },
        "/api/chats/{id}/members/me": {
            "parameters": [chat_id],
            "delete": operation(
                "leaveChat",
                "Leave a chat for good: the same as /control leave",
                {"204": reply("left")},
                (400, 403, 404),
                description="The caller stops being a member; the others get a "
                "notification message. The last member leaving ends the chat. An "
                "ended chat may be left too: it drops out of the caller's list.",
            ),
        },
        "/api/chats/{id}/read": {
            "parameters": [chat_id],
            "post": operation(
                "readChat",
                "Move the caller's read mark forward: the same as /chat read",
                {"200": reply("the caller's mark now", "ReadState")},
                (400, 403, 404),
                description="The mark only moves forward, to the chat's last "
                "`seq` at most; ended chats too. When it moves, `read` goes to "
                "the chat's room and to the caller's /control sockets.",
                requestBody=json_body("ReadMark", {"seq": 42}),
            ),
        },
        "/api/chats/{id}/messages": {
            "parameters": [chat_id],
            "get": operation(
                "listMessages",
                "A page of a chat's messages, oldest first",
                {"200": reply("messages", listing("Message"))},
                (400, 403, 404),
                description="With `after`, the oldest `limit` messages with "
                "`seq > after` (and `seq < before` when `before` is given too: a "
                "window, empty when `before <= after + 1`); otherwise the newest "
                "`limit` with `seq < before` (the newest, without `before`).",
                parameters=[{"in": "query", "schema": MessagesQuery}],
            ),
            "post": operation(
                "postMessage",
                "Post a message to everyone in the chat's room",
                {"201": reply("stored and sent", "Message")},
                (400, 403, 404, 410, 413, 429),
                description="The same `client_id` again returns the first message. "
                "Each post spends one of the user's message allowance on the node "
                "(`CHATSIO_RATE_LIMIT`/`CHATSIO_RATE_BURST`), shared with sockets.",
                requestBody=new_message,
            ),
        },
    }


def service_paths() -> dict:
    file_id = {"name": "file_id", "in": "path", "required": True, "schema": UUID}
    download = {
        "description": "the bytes, as the type they were sent with",
        "headers": {
            "Content-Disposition": {"schema": {"type": "string"}, "required": True}
        },
        "content": {"*/*": {}},
    }
    metrics = {
        "description": "Prometheus text exposition format",
        "content": {"text/plain": {"schema": {"type": "string"}}},
    }
    return {
        "/api/files/{file_id}": {
            "get": operation(
                "download",
                "A file's bytes, as an attachment, for members of its chat",
                {"200": download},
                (403, 404),
                parameters=[file_id],
            )
        },
        "/api/notifications": {
            "post": operation(
                "notify",
                "Send a system notification: global, or stored in one chat",
                {
                    "201": reply("stored in the chat and sent", "Message"),
                    "202": reply("sent to every /control socket", "Notice"),
                },
                (400, 403, 404, 410, 413),
                description="Admins only. Without `id`, a global notice to every "
                "/control socket; with `id`, a message stored in that chat.",
                requestBody=json_body("NewNotification", {"text": "back at 10"}),
            )
        },
        "/api/presence": {
            "get": operation(
                "presence",
                "The presence of named users who share an active chat with you",
                {"200": reply("their presence", listing("Presence"))},
                (400, 413),
                description="`users`: 1 to 100 comma-separated usernames. Only "
                "the users sharing an active chat with the caller are in the "
                "reply; the others, unknown names included, are left out.",
                parameters=[{"in": "query", "schema": PresenceQuery}],
            )
        },
        "/api/health": {
            "get": operation(
                "health",
                "Whether the database and Redis answer",
                {
                    "200": reply("the database answers", "Health"),
                    "503": reply("the database does not answer", "Health"),
                },
                token=False,
            )
        },
        "/metrics": {
            "get": operation(
                "metrics", "Prometheus metrics", {"200": metrics}, token=False
            )
        },
        "/": {
            "get": operation(
                "page",
                "The demo page (its scripts and styles are under /static/)",
                {"200": {"description": "HTML", "content": {"text/html": {}}}},
                token=False,
            )
        },
        "/api/openapi.json": {
            "get": operation(
                "openapi",
                "This document",
                {"200": reply("OpenAPI 3.1", {"type": "object"})},
                token=False,
            )
        },
    }
