"""Cross-origin access to the REST API: none unless CHATSIO_CORS_ORIGINS allows it."""

from __future__ import annotations

import aiohttp_cors
from aiohttp import web


def setup_cors(app: web.Application, origins: tuple[str, ...]) -> None:
    """Let the configured origins call every /api/ route with a token.

    Without an entry, browsers refuse a foreign page's preflight, so it can send
    no ``Authorization`` header. Socket.IO checks its own origins (see app.py).
    """
    if not origins:
        return
    options = aiohttp_cors.ResourceOptions(
        allow_credentials=False,
        allow_headers=("Authorization", "Content-Type"),
        expose_headers=("Content-Disposition",),
        max_age=600,
    )
    cors = aiohttp_cors.setup(app, defaults={origin: options for origin in origins})
    for route in list(app.router.routes()):
        if route.resource and route.resource.canonical.startswith("/api/"):
            cors.add(route)
