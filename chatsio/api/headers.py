"""Security headers on every HTTP response, the Socket.IO ones included."""

from __future__ import annotations

from aiohttp import web

# The page loads its own scripts, styles and images only; it talks to this
# origin only (fetch and WebSocket); nothing inline runs, nothing frames it.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


async def add_security_headers(
    request: web.Request, response: web.StreamResponse
) -> None:
    """An ``on_response_prepare`` hook; a handler's own value (say, the file
    download's sandboxing policy) is kept."""
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
