"""REST: ``GET /api/openapi.json``, the REST API described from its schemas.

apispec's MarshmallowPlugin turns the same ``XxxIn``/``XxxOut`` classes the
handlers load and dump through into JSON Schema, so a changed bound changes the
document too. What a schema cannot say (a Function field's shape, the timestamp
format docs/protocol.md fixes by field name) is added by the attribute functions below.
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
from chatsio.api.openapi_paths import (
    FAILURES,
    chat_paths,
    identity_paths,
    reply,
    service_paths,
)
from chatsio.errors import (
    ChatsioError,
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
    NoticeOut,
    NotificationIn,
    PresenceOut,
    ReadMarkIn,
    ReadStateOut,
    StartIn,
    Text,
    TokenOut,
    UserOut,
)

routes = web.RouteTableDef()

OPENAPI_VERSION = "3.1.0"
DESCRIPTION = (
    "The REST API of the chatsio protocol, whose full text (the Socket.IO "
    "namespaces, delivery guarantees and limits included) is docs/protocol.md "
    "in chatsio's source. Errors: {error: Error}."
)
ISO_UTC = {
    "type": "string",
    "format": "date-time",
    "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$",
}
# docs/protocol.md names timestamps by field: these are ISO_UTC wherever they occur.
TIMESTAMPS = frozenset({"ts", "created_at", "expires_at", "server_time"})
# What a schema does not say itself, by (schema, field); a fields.Function must
# be here unless it is a timestamp.
SHAPES = {
    (MessageOut, "kind"): {"enum": [KIND_MESSAGE, KIND_NOTIFICATION, KIND_FILE]},
    (MessageOut, "file"): {
        "anyOf": [{"$ref": "#/components/schemas/File"}, {"type": "null"}]
    },
    (PresenceOut, "last_seen"): {"anyOf": [ISO_UTC, {"type": "null"}]},
}
# Component name of each schema, after docs/protocol.md's Shapes where it has one.
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
    "Presence": PresenceOut,
    "ReadState": ReadStateOut,
    "Health": HealthOut,
    "Credentials": CredentialsIn,
    "NewChat": StartIn,
    "ReadMark": ReadMarkIn,
    "NewMessage": MessageIn,
    "NewNotification": NotificationIn,
}


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
        info={"description": DESCRIPTION},
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
            # docs/protocol.md: a server may add fields; clients ignore them.
            schema.pop("additionalProperties", None)


@functools.cache
def spec_body() -> bytes:
    return json.dumps(build_spec(), separators=(",", ":")).encode()


@routes.get("/api/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    """The OpenAPI 3.1 document of the REST API"""
    return web.Response(body=spec_body(), content_type="application/json")
