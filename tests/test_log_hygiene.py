"""What a client sends cannot forge, flood or clutter the server's log."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import struct

import aiohttp
import pytest
from cluster import Node, device, wait_until
from conftest import TIMEOUT

from chatsio.protocol import CHAT

FORGED = "2026-01-01 00:00:00,000 ERROR chatsio: forged"
CHATSIO_LINE = re.compile(r"^\S+ \S+ [A-Z]+ chatsio[\w.]*: ")
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ [\w.]+: ")


@pytest.fixture
async def node(tmp_path):
    node = await Node(
        "node", tmp_path, {"DATABASE_URL": f"sqlite:///{tmp_path}/chatsio.db"}
    ).start()
    yield node
    await node.stop()


def forged_lines(node: Node) -> list[str]:
    return [line for line in node.text().splitlines() if "forged" in line]


async def test_a_path_with_a_line_break_writes_no_forged_line(node):
    async with aiohttp.ClientSession() as http:
        url = f"{node.url}/api/files/x%0a{FORGED.replace(' ', '%20')}"
        async with http.get(url) as response:
            assert response.status == 401
    await node.stop()  # everything it had to say is written

    found = forged_lines(node)
    assert found, "the request was not logged at all"
    for line in found:
        assert LOG_LINE.match(line) and not line.startswith(FORGED), found
        assert "\\n" in line, found


async def test_an_event_name_with_a_line_break_writes_no_forged_line(node):
    token = await api_token(node)
    peer = await device(node, token, namespaces=(CHAT,))
    try:
        ack = await peer.call(CHAT, f"x\n{FORGED}", {})
        assert ack["error"]["code"] == "invalid"
    finally:
        await peer.close()
    await node.stop()

    found = forged_lines(node)
    assert found, "the refused event was not logged at all"
    assert all(not line.startswith(FORGED) for line in found), found


async def api_token(node: Node) -> str:
    from cluster import register

    return await register(node, "alice")


async def raw_websocket(url: str, http: aiohttp.ClientSession):
    """An Engine.IO WebSocket session with nothing connected on it yet."""
    ws = await http.ws_connect(f"{url}/socket.io/?EIO=4&transport=websocket")
    opening = await ws.receive_str(timeout=TIMEOUT)
    assert opening.startswith("0{"), opening
    return ws


async def test_repeated_junk_from_one_session_is_logged_once_with_a_count(
    chatsio, server_log
):
    token = await chatsio.user("alice")
    async with aiohttp.ClientSession() as http:
        ws = await raw_websocket(chatsio.url, http)
        await ws.send_str(f'40/chat,{{"token":"{token}"}}')
        connected = await ws.receive_str(timeout=TIMEOUT)
        assert connected.startswith("40/chat,"), connected
        for _ in range(50):
            await ws.send_str('42/chat,"not an event"')
        # An ack proves the junk before it has been read and handled.
        await ws.send_str('42/chat,7["typing",{"id":"nope"}]')
        while not (await ws.receive_str(timeout=TIMEOUT)).startswith("43/chat,7"):
            pass
        await ws.close()
    await chatsio.stop()

    junk = [r.getMessage() for r in server_log.records if "malformed" in r.getMessage()]
    assert len(junk) == 2, junk  # the first one, and the count at the end
    assert "49 more" in junk[1], junk
    assert all(
        r.levelno <= logging.INFO
        for r in server_log.records
        if "malformed" in r.getMessage()
    )


async def test_a_rest_client_hanging_up_mid_body_is_a_debug_line(tmp_path):
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path}/chatsio.db",
        "CHATSIO_LOG_LEVEL": "debug",
    }
    node = await Node("node", tmp_path, env).start()
    try:
        token = await api_token(node)
        for reset in (False, True):
            await hang_up_mid_body(node, token, reset=reset)
        await wait_until(lambda: node.text().count("hung up") >= 2, within=TIMEOUT)
    finally:
        await node.stop()
    assert "Traceback" not in node.text()
    # Nothing a client sent had a line break: none of chatsio's lines needed one.
    ours = [line for line in node.text().splitlines() if CHATSIO_LINE.match(line)]
    assert ours and not [line for line in ours if "\\n" in line], ours
    hung_up = [line for line in node.text().splitlines() if "hung up" in line]
    assert all(" DEBUG " in line for line in hung_up), hung_up


async def hang_up_mid_body(node: Node, token: str, *, reset: bool) -> None:
    _, writer = await asyncio.open_connection("127.0.0.1", node.port)
    writer.write(
        (
            "POST /api/chats HTTP/1.1\r\n"
            f"Host: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
            "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
            '{"members": ['
        ).encode()
    )
    await writer.drain()
    await asyncio.sleep(0.2)  # the handler is reading the body by now
    if reset:  # as a phone losing its network mid-upload does
        raw = writer.get_extra_info("socket")
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.close()
