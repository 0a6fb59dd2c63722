"""The error tree: services and storage raise these; each edge translates them once."""

from __future__ import annotations


class ChatsioError(Exception):
    """A failure a client can be told about, in the protocol's Error shape."""

    code = "internal"
    status = 500
    default_message = "internal server error"

    def __init__(
        self,
        message: str | None = None,
        fields: dict[str, list[str]] | None = None,
        *,
        retry_after: float | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.fields = fields
        # Seconds after which trying again may succeed (REST: Retry-After).
        self.retry_after = retry_after
        super().__init__(self.message)

    def to_dict(self) -> dict:
        return {"code": self.code, "message": self.message, "fields": self.fields}


class InvalidPayload(ChatsioError):
    code, status, default_message = "invalid", 400, "invalid payload"


class Unauthorized(ChatsioError):
    code, status, default_message = "unauthorized", 401, "a valid token is required"


class Forbidden(ChatsioError):
    code, status, default_message = "forbidden", 403, "not allowed"


class NotFound(ChatsioError):
    code, status, default_message = "not_found", 404, "not found"


class Conflict(ChatsioError):
    code, status, default_message = "conflict", 409, "already exists"


class Terminated(ChatsioError):
    code, status, default_message = "terminated", 410, "the chat has ended"


class TooLarge(ChatsioError):
    code, status, default_message = "too_large", 413, "over the limit"


class RateLimited(ChatsioError):
    code, status, default_message = "rate_limited", 429, "slow down"


class InternalFault(ChatsioError):
    code, status, default_message = "internal", 500, "internal server error"


class ConfigError(Exception):
    """A setting has a bad value; the message names the setting."""
