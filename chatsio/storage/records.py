"""Plain records that storage hands to the service layer."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class User:
    username: str
    password_hash: str
    is_admin: bool
    token_key: str  # signed into the user's tokens; see tables.users


@dataclass(frozen=True, slots=True)
class Chat:
    """A chat as one member sees it: ``read_seq`` and ``unread`` are that
    member's (0 when loaded for no member); ``reads`` is every member's mark."""

    id: str
    title: str | None
    members: tuple[str, ...]
    created_by: str
    created_at: int
    active: bool
    reads: dict[str, int] = field(default_factory=dict)
    read_seq: int = 0
    unread: int = 0


@dataclass(frozen=True, slots=True)
class FileRef:
    file_id: str
    name: str
    type: str
    size: int


@dataclass(frozen=True, slots=True)
class StoredFile:
    chat_id: str
    ref: FileRef
    data: bytes


@dataclass(frozen=True, slots=True)
class Message:
    chat_id: str
    seq: int
    kind: str
    text: str
    sender: str | None
    ts: int
    client_id: str | None
    file: FileRef | None = None


@dataclass(frozen=True, slots=True)
class Missed:
    """A message that a node may not have delivered, with its chat's state."""

    message: Message
    chat_active: bool
    ended_by: str | None


@dataclass(frozen=True, slots=True)
class ChatChange:
    """A chat started or ended lately, named for one of its members."""

    chat_id: str
    member: str
    created_at: int
    active: bool
    ended_by: str | None


@dataclass(frozen=True, slots=True)
class Access:
    """What one user may do with one chat, read in a single query, and how
    far they have read it."""

    exists: bool
    member: bool
    active: bool
    read_seq: int = 0


@dataclass(frozen=True, slots=True)
class ReadMark:
    """How far ``user`` has read chat ``chat_id``."""

    chat_id: str
    user: str
    seq: int
