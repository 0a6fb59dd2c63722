"""marshmallow schemas: every incoming payload is loaded through one of these.

``load`` turns a schema failure into the protocol's error: ``too_large`` when
every complaint is an over-limit one (text, title, member list), ``invalid``
otherwise, with ``fields`` taken from marshmallow's messages.
"""

from __future__ import annotations

import functools
import re
import uuid
from typing import Any

from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    validate,
)

from chatsio import protocol
from chatsio.errors import InvalidPayload, TooLarge

OVER_LIMIT = "over the limit: "
# RFC 6838 type/subtype, without parameters: safe to send back as Content-Type.
MEDIA_TYPE = r"^[A-Za-z0-9][\w!#$&^.+-]{0,126}/[A-Za-z0-9][\w!#$&^.+-]{0,126}\Z"


class Text(fields.String):
    """A string that PostgreSQL and UTF-8 can store: no lone surrogates, no NUL."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str):
            raise self.make_error("invalid")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValidationError("Not valid Unicode (lone surrogate).") from None
        if "\x00" in value:
            raise ValidationError("NUL characters are not allowed.")
        return value


class ChatId(Text):
    """A chat id: any UUID spelling in, the canonical lowercase form out."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            if len(text) > 45:
                raise ValueError
            return str(uuid.UUID(text))
        except ValueError:
            raise ValidationError("Not a valid chat id.") from None


class BoundedList(fields.List):
    """A list whose length is checked before any item is looked at."""

    def __init__(self, cls_or_instance, *, max_items: int, **kwargs):
        super().__init__(cls_or_instance, **kwargs)
        self.max_items = max_items

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, list) and len(value) > self.max_items:
            raise ValidationError(f"{OVER_LIMIT}at most {self.max_items} items.")
        return super()._deserialize(value, attr, data, **kwargs)


class Binary(fields.Field):
    """Raw bytes, as a Socket.IO binary attachment delivers them."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bytes):
            raise ValidationError("Expected a binary attachment.")
        return value


class Limit(validate.Length):
    """Length bounds whose upper bound reports as ``too_large``."""

    def __call__(self, value):
        if self.max is not None and len(value) > self.max:
            raise ValidationError(f"{OVER_LIMIT}at most {self.max} characters.")
        return super().__call__(value)


class WholeNumber(fields.Integer):
    """A JSON integer as JSON Schema counts one: 3 or 3.0, never 3.5 or true
    (REST bodies are checked against the OpenAPI document's schemas)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if type(value) is float and value.is_integer():
            value = int(value)
        return super()._deserialize(value, attr, data, **kwargs)


def seq_field(**kwargs) -> fields.Integer:
    return fields.Integer(
        strict=True, validate=validate.Range(0, protocol.SEQ_MAX), **kwargs
    )


def username_field(**kwargs) -> Text:
    return Text(
        validate=validate.Regexp(
            rf"^[A-Za-z0-9_.-]{{1,{protocol.USERNAME_MAX}}}\Z",
            error="1-32 characters of A-Z a-z 0-9 _ . -",
        ),
        **kwargs,
    )


class InSchema(Schema):
    class Meta:
        unknown = RAISE


class CredentialsIn(InSchema):
    username = username_field(required=True)
    password = Text(
        required=True,
        validate=validate.Length(protocol.PASSWORD_MIN, protocol.PASSWORD_MAX),
    )


class StartIn(InSchema):
    members = BoundedList(
        username_field(),
        max_items=protocol.MEMBERS_MAX,
        required=True,
        validate=validate.Length(min=1),
    )
    title = Text(
        allow_none=True, load_default=None, validate=Limit(max=protocol.TITLE_MAX)
    )


class ChatRefIn(InSchema):
    id = ChatId(required=True)


class JoinIn(ChatRefIn):
    since = seq_field(load_default=None)


class MessageIn(InSchema):
    """The body of ``POST /api/chats/{id}/messages``."""

    text = Text(required=True, validate=Limit(min=1, max=protocol.TEXT_MAX))
    client_id = Text(
        allow_none=True,
        load_default=None,
        validate=validate.Length(1, protocol.CLIENT_ID_MAX),
    )


class NotifyIn(ChatRefIn, MessageIn):
    kind = Text(
        load_default=protocol.KIND_MESSAGE, validate=validate.OneOf(["message"])
    )

    def load(self, data: Any, **kwargs: Any) -> Any:
        """What marshmallow makes of a plainly valid ``notify`` (a test holds
        the two equal), checked directly: every chat message is loaded here.
        Anything else, an error above all, takes marshmallow's path."""
        if not kwargs and not self.many:
            loaded = plain_notify(data)
            if loaded is not None:
                return loaded
        return super().load(data, **kwargs)


NOTIFY_KEYS = frozenset(["id", "text", "client_id", "kind"])
CANONICAL_UUID = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
)


def plain_notify(data: Any) -> dict | None:
    """``data`` as NotifyIn loads it when every field is plainly valid (a
    canonical chat id, storable strings within their bounds); None otherwise,
    which says nothing about its validity."""
    if type(data) is not dict or not data.keys() <= NOTIFY_KEYS:
        return None
    chat_id, text = data.get("id"), data.get("text")
    client_id = data.get("client_id")
    kind = data.get("kind", protocol.KIND_MESSAGE)
    if (
        type(chat_id) is not str
        or not CANONICAL_UUID.fullmatch(chat_id)
        or not plain_text(text, protocol.TEXT_MAX)
        or not (client_id is None or plain_text(client_id, protocol.CLIENT_ID_MAX))
        or kind != protocol.KIND_MESSAGE
        or type(kind) is not str
    ):
        return None
    return {"id": chat_id, "text": text, "client_id": client_id, "kind": kind}


def plain_text(value: Any, most: int) -> bool:
    """A str of 1 to ``most`` characters that Text accepts: no NUL, and UTF-8
    encodable (ASCII is, at no cost to find out)."""
    if type(value) is not str or not 0 < len(value) <= most or "\x00" in value:
        return False
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class FileIn(ChatRefIn):
    name = Text(required=True, validate=validate.Length(1, protocol.FILE_NAME_MAX))
    type = Text(
        required=True,
        validate=validate.Regexp(MEDIA_TYPE, error="a media type such as image/png"),
    )
    data = Binary(required=True)


class NotificationIn(InSchema):
    text = Text(required=True, validate=Limit(min=1, max=protocol.TEXT_MAX))
    id = ChatId(allow_none=True, load_default=None)


class MessagesQuery(InSchema):
    """Query of ``GET /api/chats/{id}/messages``; values arrive as strings.

    ``after`` and ``before`` together are a window, empty (not an error) when
    ``before <= after + 1`` (docs/protocol.md, REST).
    """

    before = fields.Integer(validate=validate.Range(0, protocol.SEQ_MAX))
    after = fields.Integer(validate=validate.Range(0, protocol.SEQ_MAX))
    limit = fields.Integer(
        load_default=protocol.HISTORY_DEFAULT,
        validate=validate.Range(1, protocol.REST_PAGE_MAX),
    )


class Usernames(Text):
    """Comma-separated usernames (a query parameter): a list without repeats."""

    def __init__(self, *, max_items: int, **kwargs):
        # What OpenAPI says of it; each name is checked as a username below.
        name = rf"[A-Za-z0-9_.-]{{1,{protocol.USERNAME_MAX}}}"
        pattern = rf"^{name}(,{name}){{0,{max_items - 1}}}$"
        super().__init__(metadata={"pattern": pattern}, **kwargs)
        self.max_items = max_items

    def _deserialize(self, value, attr, data, **kwargs):
        names = super()._deserialize(value, attr, data, **kwargs).split(",")
        if len(names) > self.max_items:
            raise ValidationError(f"{OVER_LIMIT}at most {self.max_items} names.")
        username = username_field()
        return list(dict.fromkeys(username.deserialize(name) for name in names))


class PresenceQuery(InSchema):
    """Query of ``GET /api/presence``."""

    users = Usernames(max_items=protocol.PRESENCE_NAMES_MAX, required=True)


class ReadMarkIn(InSchema):
    """The body of ``POST /api/chats/{id}/read``."""

    seq = WholeNumber(
        strict=True, required=True, validate=validate.Range(0, protocol.SEQ_MAX)
    )


class ReadIn(ChatRefIn, ReadMarkIn):
    """``/chat read``: the member has read up to ``seq``."""


class HistoryIn(ChatRefIn):
    before = seq_field(load_default=None)
    limit = fields.Integer(
        strict=True,
        load_default=protocol.HISTORY_DEFAULT,
        validate=validate.Range(1, protocol.HISTORY_MAX),
    )


class ChatOut(Schema):
    id = fields.String()
    title = fields.String(allow_none=True)
    members = fields.List(fields.String())
    created_by = fields.String()
    created_at = fields.Function(lambda chat: protocol.iso(chat.created_at))
    active = fields.Boolean()
    read_seq = fields.Integer()
    unread = fields.Integer()
    reads = fields.Dict(keys=fields.String(), values=fields.Integer())


class PresenceOut(Schema):
    """The protocol's Presence."""

    user = fields.String()
    online = fields.Boolean()
    last_seen = fields.Function(
        lambda presence: (
            None if presence.last_seen is None else protocol.iso(presence.last_seen)
        )
    )


class MessageOut(Schema):
    id = fields.String(attribute="chat_id")
    seq = fields.Integer()
    kind = fields.String()
    text = fields.String()
    sender = fields.String(allow_none=True)
    ts = fields.Function(lambda message: protocol.iso(message.ts))
    client_id = fields.String(allow_none=True)
    file = fields.Function(lambda message: file_out(message.file))

    def dump(self, obj: Any, *, many: bool | None = None) -> Any:
        """What marshmallow makes of the fields above (a test holds the two
        equal), built directly: every message sent is dumped at least twice."""
        if self.only or self.exclude:
            return super().dump(obj, many=many)
        if self.many if many is None else many:
            return [message_dict(message) for message in obj]
        return message_dict(obj)


def message_dict(message) -> dict:
    return {
        "id": message.chat_id,
        "seq": message.seq,
        "kind": message.kind,
        "text": message.text,
        "sender": message.sender,
        "ts": iso_ms(message.ts),
        "client_id": message.client_id,
        "file": file_out(message.file),
    }


@functools.lru_cache(maxsize=256)
def iso_second(second: int) -> str:
    """``protocol.iso`` up to the milliseconds, for messages of one second."""
    return protocol.iso(second * 1000)[:-4]


def iso_ms(ms: int) -> str:
    return f"{iso_second(ms // 1000)}{ms % 1000:03d}Z"


def file_out(file) -> dict | None:
    if file is None:
        return None
    return {
        "file_id": file.file_id,
        "name": file.name,
        "type": file.type,
        "size": file.size,
        "url": protocol.file_url(file.file_id),
    }


credentials_in = CredentialsIn()
start_in = StartIn()
chat_ref_in = ChatRefIn()
join_in = JoinIn()
notify_in = NotifyIn()
message_in = MessageIn()
file_in = FileIn()
notification_in = NotificationIn()
messages_query = MessagesQuery()
history_in = HistoryIn()
read_in = ReadIn()
read_mark_in = ReadMarkIn()
presence_query = PresenceQuery()
presence_out = PresenceOut()
chat_out = ChatOut()
message_out = MessageOut()


def load(schema: Schema, payload: Any) -> dict:
    """Validate ``payload``; raise InvalidPayload or TooLarge naming the fields."""
    try:
        return schema.load(payload)
    except ValidationError as exc:
        reasons = flatten(exc.messages)
        every = [reason for field in reasons.values() for reason in field]
        error = (
            TooLarge if all(r.startswith(OVER_LIMIT) for r in every) else InvalidPayload
        )
        raise error(fields=reasons) from None


def flatten(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """Turn marshmallow's nested messages into ``{"field": ["reason", ...]}``."""
    if isinstance(messages, dict):
        flat: dict[str, list[str]] = {}
        for key, value in messages.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            for field, reasons in flatten(value, name).items():
                flat.setdefault(field, []).extend(reasons)
        return flat
    if isinstance(messages, list):
        return {prefix or "_schema": [str(m) for m in messages]}
    return {prefix or "_schema": [str(messages)]}


# Replies that have no schema of their own above. The handlers build these
# dicts directly; the schemas describe them for GET /api/openapi.json.

ERROR_CODES = [
    "invalid",
    "unauthorized",
    "forbidden",
    "not_found",
    "conflict",
    "terminated",
    "too_large",
    "rate_limited",
    "internal",
]


class FileOut(Schema):
    """The protocol's File, as ``file_out`` builds it."""

    file_id = fields.String()
    name = fields.String()
    type = fields.String()
    size = fields.Integer()
    url = fields.String()


class ErrorOut(Schema):
    """The protocol's Error."""

    code = fields.String(validate=validate.OneOf(ERROR_CODES))
    message = fields.String()
    # "fields" would shadow the module inside this class body, hence data_key.
    reasons = fields.Dict(
        keys=fields.String(),
        values=fields.List(fields.String()),
        allow_none=True,
        data_key="fields",
    )


class ErrorReplyOut(Schema):
    """Every REST failure: ``{"error": Error}``."""

    error = fields.Nested(ErrorOut)


class UserOut(Schema):
    username = fields.String()


class TokenOut(Schema):
    token = fields.String()
    username = fields.String()
    expires_at = fields.String()


class MeOut(Schema):
    username = fields.String()
    is_admin = fields.Boolean()


class NoticeOut(Schema):
    """A system notification as /control ``notify`` carries it."""

    kind = fields.String(validate=validate.OneOf([protocol.KIND_NOTIFICATION]))
    text = fields.String()
    id = fields.String(allow_none=True)
    ts = fields.String()


class ReadStateOut(Schema):
    """``POST /api/chats/{id}/read``'s reply: the caller's mark now."""

    read_seq = fields.Integer()


class HealthOut(Schema):
    status = fields.String(validate=validate.OneOf(["ok", "degraded"]))
    database = fields.String(validate=validate.OneOf(["ok", "down"]))
    redis = fields.String(validate=validate.OneOf(["ok", "down", "off"]))
