"""Plain records that storage hands to the service layer."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class User:
    username: str
    password_hash: str
    is_admin: bool
    token_key: str  # signed into the user's tokens; see tables.users


@dataclass(frozen=True, slots=True)
class Chat:
    id: str
    title: str | None
    members: tuple[str, ...]
    created_by: str
    created_at: int
    active: bool


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
class Access:
    """What one user may do with one chat, read in a single query."""

    exists: bool
    member: bool
    active: bool
