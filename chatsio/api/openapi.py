"""REST: ``GET /api/openapi.json``, the REST API described from its schemas.

apispec's MarshmallowPlugin turns the same ``XxxIn``/``XxxOut`` classes the
handlers load and dump through into JSON Schema, so a changed bound changes the
document too. What a schema cannot say (a Function field's shape, the timestamp
format PROTOCOL.md fixes by field name) is added by the attribute functions below.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from aiohttp import web
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import fields

from chatsio import __version__
from chatsio.errors import (
    ChatsioError,
    Conflict,
    Forbidden,
    InvalidPayload,
    NotFound,
    Terminated,
    TooLarge,
    Unauthorized,
)
from chatsio.protocol import KIND_FILE, KIND_MESSAGE, KIND_NOTIFICATION
from chatsio.schemas import (
    BoundedList,
    ChatOut,
    CredentialsIn,
    ErrorOut,
    ErrorReplyOut,
    FileOut,
    HealthOut,
    MeOut,
    MessageIn,
    MessageOut,
    MessagesQuery,
    NoticeOut,
    NotificationIn,
    StartIn,
    Text,
    TokenOut,
    UserOut,
)

routes = web.RouteTableDef()

OPENAPI_VERSION = "3.1.0"
BEARER = [{"bearerAuth": []}]
ISO_UTC = {
    "type": "string",
    "format": "date-time",
    "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$",
}
# PROTOCOL.md names its timestamps by field: these are ISO_UTC wherever they occur,
# and every "id" is a chat's id, a UUID.
TIMESTAMPS = frozenset({"ts", "created_at", "expires_at", "server_time"})
UUID = {"type": "string", "format": "uuid"}
# What a schema does not say itself, by (schema, field); a fields.Function must
# be here unless it is a timestamp.
SHAPES = {
    (MessageOut, "kind"): {"enum": [KIND_MESSAGE, KIND_NOTIFICATION, KIND_FILE]},
    (MessageOut, "file"): {
        "anyOf": [{"$ref": "#/components/schemas/File"}, {"type": "null"}]
    },
}
# Component name of each schema, after PROTOCOL.md's Shapes where it has one.
COMPONENTS = {
    "Chat": ChatOut,
    "Message": MessageOut,
    "File": FileOut,
    "Error": ErrorOut,
    "ErrorReply": ErrorReplyOut,
    "User": UserOut,
    "Token": TokenOut,
    "Me": MeOut,
    "Notice": NoticeOut,
    "Health": HealthOut,
    "Credentials": CredentialsIn,
    "NewChat": StartIn,
    "NewMessage": MessageIn,
    "NewNotification": NotificationIn,
}
FAILURES: dict[type[ChatsioError], str] = {
    InvalidPayload: "the body, a parameter or an id fails its schema; "
    "`fields` says which field and why",
    Unauthorized: "no valid `Authorization: Bearer <token>`",
    Forbidden: "not a member of that chat, or lacks the role",
    NotFound: "no such chat, user or file",
    Conflict: "the username is taken",
    Terminated: "the chat has ended",
    TooLarge: "a text, title or member list is over its limit, or the body over 1 MiB",
}
FAILURE_BY_STATUS = {error.status: error for error in FAILURES}


def wire_shape(self, field: fields.Field, ret: dict, **kwargs: Any) -> dict:
    """Add what a marshmallow field does not say about its JSON form."""
    shape = SHAPES.get((type(field.parent), field.name))
    computed = isinstance(field, fields.Function)
    if computed and shape is None and field.name not in TIMESTAMPS:
        raise LookupError(f"describe {field.parent}.{field.name} in SHAPES")
    extra = dict(shape or {})
    if field.name in TIMESTAMPS:
        extra.update(ISO_UTC)
    if field.name == "id":
        extra["format"] = "uuid"
    if isinstance(field, BoundedList):
        extra["maxItems"] = field.max_items
    pattern = ret.get("pattern")
    if pattern and pattern.endswith("\\Z"):
        # \Z is Python's; JSON Schema patterns are ECMA-262, where $ means it.
        extra["pattern"] = pattern.removesuffix("\\Z") + "$"
    elif isinstance(field, Text) and not pattern:
        extra["pattern"] = "^[^\\u0000]*$"  # Text refuses NUL
    return extra


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
        (400, 403, 409, 413),
        token=False,
        requestBody=credentials,
    )
    log_in = operation(
        "logIn",
        "Log in: trade a username and password for a token",
        {"200": reply("a token", "Token")},
        (400, 401, 413),
        token=False,
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
                (400, 404, 413),
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
        "/api/chats/{id}/messages": {
            "parameters": [chat_id],
            "get": operation(
                "listMessages",
                "A page of a chat's messages, oldest first",
                {"200": reply("messages", listing("Message"))},
                (400, 403, 404),
                description="With `after`, the oldest `limit` messages with "
                "`seq > after`; otherwise the newest `limit` with `seq < before` "
                "(the newest, without `before`). Both at once is answered 400.",
                parameters=[{"in": "query", "schema": MessagesQuery}],
            ),
            "post": operation(
                "postMessage",
                "Post a message to everyone in the chat's room",
                {"201": reply("stored and sent", "Message")},
                (400, 403, 404, 410, 413),
                description="The same `client_id` again returns the first message.",
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
        "/api/openapi.json": {
            "get": operation(
                "openapi",
                "This document",
                {"200": reply("OpenAPI 3.1", {"type": "object"})},
                token=False,
            )
        },
    }


def error_reply(error: type[ChatsioError], description: str) -> dict:
    """An error response whose body's ``code`` is the one its status carries."""
    code = {"properties": {"code": {"const": error.code}}}
    schema = {"allOf": ["ErrorReply", {"properties": {"error": code}}]}
    return reply(f"{error.code}: {description}", schema)


@functools.cache
def build_spec() -> dict:
    """The OpenAPI document; it depends on no setting, so one serves every app."""
    plugin = MarshmallowPlugin()
    spec = APISpec(
        title="chatsio",
        version=__version__,
        openapi_version=OPENAPI_VERSION,
        plugins=[plugin],
        info={"description": "The REST API of PROTOCOL.md. Errors: {error: Error}."},
    )
    plugin.converter.add_attribute_function(wire_shape)
    spec.components.security_scheme(
        "bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    )
    for name, schema in COMPONENTS.items():
        spec.components.schema(name, schema=schema)
    for error, description in FAILURES.items():
        spec.components.response(error.code, error_reply(error, description))
    for path, operations in {
        **identity_paths(),
        **chat_paths(),
        **service_paths(),
    }.items():
        shared = operations.pop("parameters", None)
        spec.path(path=path, operations=operations, parameters=shared)
    document = spec.to_dict()
    describe_replies(document["components"]["schemas"])
    return document


def describe_replies(schemas: dict) -> None:
    """A reply carries every field of its Out schema, and may gain new ones."""
    for name, schema in schemas.items():
        if COMPONENTS[name].__name__.endswith("Out"):
            schema["required"] = sorted(schema["properties"])
            # PROTOCOL.md: a server may add fields; clients must ignore them.
            schema.pop("additionalProperties", None)


@functools.cache
def spec_body() -> bytes:
    return json.dumps(build_spec(), separators=(",", ":")).encode()


@routes.get("/api/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    """The OpenAPI 3.1 document of the REST API"""
    return web.Response(body=spec_body(), content_type="application/json")
