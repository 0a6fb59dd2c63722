"""Security headers on every kind of HTTP response."""

from __future__ import annotations

import pytest
from helpers import fast_user

from chatsio.api.headers import HEADERS


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/health"),
        ("GET", "/metrics"),
        ("GET", "/api/openapi.json"),
        ("POST", "/api/users"),  # an error reply
        ("GET", "/api/me"),  # unauthorized
        ("GET", "/api/nothing-here"),  # not found
        ("GET", "/socket.io/?EIO=4&transport=polling"),  # Engine.IO handshake
    ],
)
async def test_every_response_carries_the_security_headers(chatsio, method, path):
    async with chatsio.http.request(method, chatsio.url + path, data=b"{") as reply:
        for name, value in HEADERS.items():
            assert reply.headers.get(name) == value, (name, reply.status)


async def test_the_page_policy_allows_nothing_inline(chatsio):
    policy = HEADERS["Content-Security-Policy"]
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    token = await fast_user(chatsio, "alice")
    headers = {"Authorization": f"Bearer {token}"}
    async with chatsio.http.get(chatsio.url + "/api/me", headers=headers) as reply:
        assert reply.status == 200
        assert reply.headers["X-Content-Type-Options"] == "nosniff"
