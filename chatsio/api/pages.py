"""The demo page: ``GET /`` and the files under ``/static/``."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

import chatsio

# The checkout's static/ tree, with static/node_modules/ from `npm ci --prefix
# static`. nginx in front may serve the same tree itself (deploy/nginx.conf).
STATIC_DIR = Path(chatsio.__file__).resolve().parent.parent / "static"

routes = web.RouteTableDef()


@routes.get("/")
async def index(request: web.Request) -> web.FileResponse:
    """The demo page"""
    # Revalidated on every load (ETag), so a deploy is seen at once.
    return web.FileResponse(
        STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"}
    )


# A non-editable install (pip install .) has no static/ beside the package:
# the API still runs, and / answers 404, rather than the app failing to start.
if STATIC_DIR.is_dir():
    routes.static("/static", STATIC_DIR, show_index=False, follow_symlinks=False)
