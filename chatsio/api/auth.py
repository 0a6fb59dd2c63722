"""Who is calling: the bearer token of a REST request."""

from __future__ import annotations

from aiohttp import web

from chatsio.api.keys import services_key
from chatsio.errors import Forbidden, Unauthorized


async def caller(request: web.Request) -> str:
    """The username behind ``Authorization: Bearer <token>``, or Unauthorized
    (the token's account must still exist)."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        raise Unauthorized("send Authorization: Bearer <token>")
    return await request.app[services_key].identity.authenticate(token.strip())


async def admin_caller(request: web.Request) -> str:
    user = await caller(request)
    if not await request.app[services_key].identity.is_admin(user):
        raise Forbidden("only admins may do this")
    return user
