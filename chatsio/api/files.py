"""REST: downloading a file that was sent in a chat."""

from __future__ import annotations

import uuid
from urllib.parse import quote

from aiohttp import web

from chatsio.api.auth import caller
from chatsio.api.keys import services_key
from chatsio.errors import NotFound

routes = web.RouteTableDef()


@routes.get("/api/files/{file_id}")
async def download(request: web.Request) -> web.Response:
    """A file's bytes, as an attachment, for members of its chat"""
    user = await caller(request)
    try:
        file_id = str(uuid.UUID(request.match_info["file_id"]))
    except ValueError:
        raise NotFound("no such file") from None
    stored = await request.app[services_key].messages.download(user, file_id)
    return web.Response(
        body=stored.data,
        headers={
            "Content-Type": stored.ref.type,
            "Content-Disposition": attachment(stored.ref.name),
            "X-Content-Type-Options": "nosniff",
            # Even if a browser rendered it, the file could run nothing.
            "Content-Security-Policy": "sandbox; default-src 'none'",
            "Cache-Control": "private, no-store",
        },
    )


def attachment(name: str) -> str:
    """A Content-Disposition that is well-formed whatever the name holds.

    RFC 6266: an ASCII fallback with anything unsafe replaced, plus the exact
    name percent-encoded in ``filename*``.
    """
    fallback = "".join(
        c if c.isascii() and c.isprintable() and c not in '"\\/;' else "_" for c in name
    )
    return (
        f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"
    )
