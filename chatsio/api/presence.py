"""REST: the presence of the users the caller shares an active chat with."""

from __future__ import annotations

from aiohttp import web

from chatsio.api.auth import caller
from chatsio.api.keys import services_key
from chatsio.schemas import load, presence_out, presence_query

routes = web.RouteTableDef()


@routes.get("/api/presence")
async def presence(request: web.Request) -> web.Response:
    """The presence of named users who share an active chat with the caller"""
    user = await caller(request)
    query = load(presence_query, dict(request.query))
    found = await request.app[services_key].presence.visible(user, query["users"])
    return web.json_response(presence_out.dump(found, many=True))
