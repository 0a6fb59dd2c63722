"""REST: registering and logging in."""

from __future__ import annotations

from aiohttp import web

from chatsio.api.errors import read_json
from chatsio.api.keys import services_key
from chatsio.protocol import iso
from chatsio.schemas import credentials_in, load

routes = web.RouteTableDef()


@routes.post("/api/users")
async def register(request: web.Request) -> web.Response:
    """Register a user"""
    body = load(credentials_in, await read_json(request))
    user = await request.app[services_key].identity.register(
        body["username"], body["password"], address=request.remote
    )
    return web.json_response({"username": user.username}, status=201)


@routes.post("/api/tokens")
async def log_in(request: web.Request) -> web.Response:
    """Log in: trade a username and password for a token"""
    body = load(credentials_in, await read_json(request))
    token = await request.app[services_key].identity.login(
        body["username"], body["password"], address=request.remote
    )
    return web.json_response(
        {
            "token": token.token,
            "username": token.username,
            "expires_at": iso(token.expires_at),
        }
    )
