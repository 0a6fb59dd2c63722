"""The Prometheus scrape endpoint."""

from __future__ import annotations

from aiohttp import web

from chatsio.api.keys import metrics_key
from chatsio.metrics import CONTENT_TYPE

routes = web.RouteTableDef()


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    """Prometheus text format"""
    body = request.app[metrics_key].exposition()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})
