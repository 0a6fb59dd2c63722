"""The client's address behind trusted proxies (CHATSIO_TRUSTED_PROXIES).

aiohttp-remotes was the first choice, but its strict mode rejects requests
that do not come through the proxy (a platform's health check, an operator's
curl on the node) and its relaxed mode believes any client's header. Here a
request from a trusted address has its ``X-Forwarded-For`` read from the right,
skipping trusted hops; any other request keeps its peer address.
"""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import ip_address, ip_network

from aiohttp import web


def forwarded_for(trusted: Iterable[str]):
    networks = [ip_network(item, strict=False) for item in trusted]

    def is_trusted(address: str) -> bool:
        try:
            ip = ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in networks)

    @web.middleware
    async def middleware(request: web.Request, handler) -> web.StreamResponse:
        peer = request.remote or ""
        hops = request.headers.get("X-Forwarded-For")
        if hops and is_trusted(peer):
            chain = [peer, *reversed([hop.strip() for hop in hops.split(",")])]
            client = next((hop for hop in chain if not is_trusted(hop)), chain[-1])
            if is_address(client):
                request = request.clone(remote=client)
        return await handler(request)

    return middleware


def is_address(text: str) -> bool:
    try:
        ip_address(text)
    except ValueError:
        return False
    return True
