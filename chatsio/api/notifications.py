"""REST: system notifications, for admins."""

from __future__ import annotations

from aiohttp import web

from chatsio.api.auth import admin_caller
from chatsio.api.errors import read_json
from chatsio.api.keys import services_key
from chatsio.schemas import load, message_out, notification_in

routes = web.RouteTableDef()


@routes.post("/api/notifications")
async def notify(request: web.Request) -> web.Response:
    """Send a system notification: global, or stored in one chat"""
    await admin_caller(request)
    body = load(notification_in, await read_json(request))
    notifications = request.app[services_key].notifications
    if body["id"] is None:
        notice = await notifications.broadcast(body["text"])
        return web.json_response(notice, status=202)
    message = await notifications.to_chat(body["id"], body["text"])
    return web.json_response(message_out.dump(message), status=201)
