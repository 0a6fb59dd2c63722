"""The demo page: ``GET /`` and the files under ``/static/``."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

import chatsio

# The page ships inside the package (package data; in a checkout chatsio/static
# links to the top-level static/), Socket.IO client included: no npm at run
# time. nginx in front may serve the same tree itself (deploy/nginx.conf).
STATIC_DIR = Path(chatsio.__file__).resolve().parent / "static"

routes = web.RouteTableDef()


@routes.get("/")
async def index(request: web.Request) -> web.FileResponse:
    """The demo page"""
    # Revalidated on every load (ETag), so a deploy is seen at once.
    return web.FileResponse(
        STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"}
    )


routes.static("/static", STATIC_DIR, show_index=False, follow_symlinks=False)
