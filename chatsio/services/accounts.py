"""Removing an account, and what goes with it."""

from __future__ import annotations

from chatsio.errors import NotFound
from chatsio.storage.users import UserStore


async def delete_user(users: UserStore, username: str) -> None:
    """Delete ``username`` for good (``chatsio deleteuser``), or NotFound.

    Their memberships go with them, and so do their tokens: each names the
    account's key, which no longer matches a row, even once someone registers
    the name again. What they wrote stays, as others saw it: their messages
    keep ``sender`` and the chats they started keep ``created_by``, both plain
    names, and those chats go on for the members left. Sockets they hold are
    not reached from here (see README, "Limits against abuse").
    """
    if not await users.delete(username):
        raise NotFound(f"no user {username!r}")
