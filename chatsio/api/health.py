"""REST: the health check that load balancers and platforms poll."""

from __future__ import annotations

from aiohttp import web

from chatsio.api.keys import services_key

routes = web.RouteTableDef()


@routes.get("/api/health")
async def health(request: web.Request) -> web.Response:
    """Database and Redis status; 503 when the database does not answer"""
    report = await request.app[services_key].health.check()
    status = 200 if report["database"] == "ok" else 503
    return web.json_response(report, status=status)
