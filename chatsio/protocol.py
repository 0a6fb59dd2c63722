"""Wire names and fixed limits of docs/protocol.md that are not schemas."""

from __future__ import annotations

import time
from datetime import UTC, datetime

CONTROL = "/control"
CHAT = "/chat"

# Server -> client events.
WELCOME = "welcome"
INVITE = "invite"
TERMINATE = "terminate"
LEFT = "left"
NOTIFY = "notify"
TYPING = "typing"
READ = "read"  # also a /chat client event
PRESENCE = "presence"

# Client events that only the server's own connection logic may run.
RESERVED_EVENTS = frozenset({"connect", "disconnect", "connect_error"})

# Limits fixed by the protocol (code points, items, messages).
USERNAME_MAX = 32
PASSWORD_MIN, PASSWORD_MAX = 8, 128
TEXT_MAX = 4000
TITLE_MAX = 100
MEMBERS_MAX = 100
CLIENT_ID_MAX = 64
JOIN_RECENT = 50
SINCE_MAX = 1000
HISTORY_DEFAULT, HISTORY_MAX = 50, 100
REST_PAGE_MAX = 1000
PRESENCE_NAMES_MAX = 100
FILE_NAME_MAX = 255
SEQ_MAX = 2**31 - 1

KIND_MESSAGE = "message"
KIND_NOTIFICATION = "notification"
KIND_FILE = "file"


def chat_room(chat_id: str) -> str:
    """Room on /chat holding the sockets that joined a chat."""
    return f"chat:{chat_id}"


def user_room(username: str) -> str:
    """Room holding every device of one user (on /control and on /chat)."""
    return f"user:{username}"


def file_url(file_id: str) -> str:
    """Where a stored file is downloaded (members only, with a token)."""
    return f"/api/files/{file_id}"


def now_ms() -> int:
    """Milliseconds since the epoch, the unit every timestamp is stored in."""
    return time.time_ns() // 1_000_000


def iso(ms: int) -> str:
    """ISO-8601 UTC with milliseconds and a Z, as every timestamp goes on the wire."""
    moment = datetime.fromtimestamp(ms // 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
