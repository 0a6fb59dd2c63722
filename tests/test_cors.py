"""Cross-origin access: same origin only, unless CHATSIO_CORS_ORIGINS allows more.

A page on another site must not open a Socket.IO connection with a user's
credentials, on either transport, nor read the REST API; ``Origin: null``
(sandboxed frames, file: pages) is foreign too. Clients that send no Origin
(scripts, python-socketio) are not affected.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import socketio
from conftest import TIMEOUT, Harness, Peer
from helpers import fast_user

from chatsio.protocol import CHAT, CONTROL

APP = "https://app.example"
EVIL = "https://evil.example"
UNKNOWN_ID = "0b5d2a4e-8f6b-4c1e-9a57-3d2f1e0c9b8a"
TRANSPORTS = [
    pytest.param(["polling"], id="polling"),
    pytest.param(["websocket"], id="websocket"),
]


@pytest.fixture
async def app_origin(make_config) -> AsyncIterator[Harness]:
    """A server that lets pages of https://app.example in."""
    harness = await Harness(make_config(cors_origins=(APP,))).start()
    yield harness
    await harness.close()


async def refused(harness: Harness, token: str, origin: str, transports) -> None:
    """A connection with that Origin fails, and no namespace ever connected."""
    client = socketio.AsyncClient(reconnection=False)
    connected: list[str] = []
    for namespace in (CONTROL, CHAT):
        client.on("connect", lambda n=namespace: connected.append(n), namespace)
    try:
        with pytest.raises(socketio.exceptions.ConnectionError):
            await client.connect(
                harness.url,
                namespaces=[CONTROL, CHAT],
                auth={"token": token},
                headers={"Origin": origin},
                transports=transports,
                wait_timeout=TIMEOUT,
            )
    finally:  # in case it was let in; abort: no waiting out a long poll
        reader = client.eio.read_loop_task
        await client.eio.disconnect(abort=True)
        if reader is not None:
            await asyncio.wait_for(reader, TIMEOUT)
    assert connected == [], connected


async def admitted(harness: Harness, token: str, origin: str, transports) -> None:
    """A connection with that Origin works: welcome, then an ack."""
    peer = await harness.peer(token, headers={"Origin": origin}, transports=transports)
    try:
        welcome = await peer.next(CONTROL, "welcome")
        assert welcome["chats"] == []
        ack = await peer.call(CHAT, "history", {"id": UNKNOWN_ID})
        assert ack["ok"] is False and ack["error"]["code"] == "not_found", ack
    finally:
        await close(harness, peer)


async def close(harness: Harness, peer: Peer) -> None:
    """Disconnect at once; a polling-only client would wait out its long poll."""
    harness.peers.remove(peer)
    reader = peer.client.eio.read_loop_task
    await peer.client.eio.disconnect(abort=True)
    if reader is not None:
        await asyncio.wait_for(reader, TIMEOUT)


# --- Socket.IO ----------------------------------------------------------------


@pytest.mark.parametrize("transports", TRANSPORTS)
@pytest.mark.parametrize("origin", [EVIL, "null"], ids=["foreign", "null"])
async def test_a_foreign_origin_cannot_connect(chatsio, transports, origin):
    token = await fast_user(chatsio, "alice")
    await refused(chatsio, token, origin, transports)
    # The same client from the server's own origin gets in: it was the Origin.
    await admitted(chatsio, token, chatsio.url, transports)


@pytest.mark.parametrize("transports", TRANSPORTS)
async def test_the_same_origin_connects(chatsio, transports):
    await admitted(chatsio, await fast_user(chatsio, "alice"), chatsio.url, transports)


@pytest.mark.parametrize("transports", TRANSPORTS)
async def test_a_configured_origin_connects_and_others_still_cannot(
    app_origin, transports
):
    token = await fast_user(app_origin, "alice")
    await admitted(app_origin, token, APP, transports)
    await refused(app_origin, token, EVIL, transports)
    await refused(app_origin, token, "null", transports)


# --- REST -----------------------------------------------------------------------


async def preflight(harness: Harness, origin: str, method: str, headers: str):
    request_headers = {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": headers,
    }
    url = harness.url + "/api/chats"
    async with harness.http.options(url, headers=request_headers) as r:
        await r.read()
        return r.status, r.headers


def allowed_headers(headers) -> set[str]:
    value = headers.get("Access-Control-Allow-Headers", "")
    return {name.strip().lower() for name in value.split(",") if name.strip()}


async def get_me(harness: Harness, token: str, origin: str):
    headers = {"Authorization": f"Bearer {token}", "Origin": origin}
    async with harness.http.get(harness.url + "/api/me", headers=headers) as r:
        return r.status, r.headers, await r.json()


async def test_rest_allows_no_foreign_origin_by_default(chatsio):
    token = await fast_user(chatsio, "alice")
    for origin in (EVIL, "null"):
        _, headers = await preflight(chatsio, origin, "GET", "authorization")
        assert "Access-Control-Allow-Origin" not in headers, dict(headers)
        assert "authorization" not in allowed_headers(headers), dict(headers)

        # A simple request still works for non-browser clients, but gives a
        # browser nothing that would let the foreign page read it.
        status, headers, body = await get_me(chatsio, token, origin)
        assert status == 200 and body["username"] == "alice"
        assert "Access-Control-Allow-Origin" not in headers, dict(headers)


async def test_rest_allows_a_configured_origin(app_origin):
    token = await fast_user(app_origin, "alice")
    status, headers = await preflight(app_origin, APP, "GET", "authorization")
    assert status in (200, 204), dict(headers)
    assert headers.get("Access-Control-Allow-Origin") == APP, dict(headers)
    assert "authorization" in allowed_headers(headers), dict(headers)

    status, headers = await preflight(
        app_origin, APP, "POST", "authorization, content-type"
    )
    assert status in (200, 204), dict(headers)
    assert headers.get("Access-Control-Allow-Origin") == APP, dict(headers)
    assert {"authorization", "content-type"} <= allowed_headers(headers)

    status, headers, body = await get_me(app_origin, token, APP)
    assert status == 200 and body == {"username": "alice", "is_admin": False}
    assert headers.get("Access-Control-Allow-Origin") == APP, dict(headers)


async def test_rest_still_refuses_other_origins_when_one_is_configured(app_origin):
    token = await fast_user(app_origin, "alice")
    for origin in (EVIL, "null"):
        _, headers = await preflight(app_origin, origin, "GET", "authorization")
        assert headers.get("Access-Control-Allow-Origin") in (None, APP), dict(headers)
        assert headers.get("Access-Control-Allow-Origin") != origin
        status, headers, _ = await get_me(app_origin, token, origin)
        assert status == 200
        assert "Access-Control-Allow-Origin" not in headers, dict(headers)
