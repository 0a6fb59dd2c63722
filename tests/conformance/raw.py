"""A raw Engine.IO client that shows every packet: polling by hand and a plain
aiohttp WebSocket, each with one reader putting packets on a queue, so two
packets arriving in one read (one polling payload, one TCP segment) are taken
one at a time and never race a test's next wait."""

from __future__ import annotations

import asyncio
import io
import json

import aiohttp

WAIT = 5.0  # every wait for a packet, a status or a close, seconds
SEPARATOR = "\x1e"  # between the packets of one polling payload
CLOSED = None  # what ``next`` returns once the server has closed the socket


def engineio_url(base: str, transport: str, sid: str | None = None) -> str:
    url = f"{base}/socket.io/?EIO=4&transport={transport}"
    return url + (f"&sid={sid}" if sid else "")


def opening(packet: str) -> dict:
    """The handshake data of an Engine.IO OPEN packet."""
    assert packet[:1] == "0", packet
    return json.loads(packet[1:])


class Polling:
    """An Engine.IO session on HTTP long-polling."""

    def __init__(self, http: aiohttp.ClientSession, base: str, handshake: dict):
        self.http = http
        self.base = base
        self.handshake = handshake
        self.sid: str = handshake["sid"]
        self.packets: asyncio.Queue[str] = asyncio.Queue()

    @classmethod
    async def open(cls, http: aiohttp.ClientSession, base: str) -> Polling:
        status, body = await request(http, "GET", engineio_url(base, "polling"))
        assert status == 200, (status, body)
        return cls(http, base, opening(body))

    @property
    def url(self) -> str:
        return engineio_url(self.base, "polling", self.sid)

    async def get(self) -> tuple[int, str]:
        """One poll: its status and body, without queueing anything."""
        return await request(self.http, "GET", self.url)

    async def post(self, *packets: str) -> tuple[int, str]:
        return await request(self.http, "POST", self.url, SEPARATOR.join(packets))

    async def send(self, *packets: str) -> None:
        status, body = await self.post(*packets)
        assert status == 200, (status, body)

    async def next(self) -> str:
        """The next packet from the server, polling when none is queued."""
        while self.packets.empty():
            status, body = await self.get()
            assert status == 200, (status, body)
            for packet in body.split(SEPARATOR):
                self.packets.put_nowait(packet)
        return self.packets.get_nowait()

    async def close(self) -> None:
        """Say CLOSE, so that the server does not wait on this session."""
        await self.post("1")


class WebSocket:
    """An Engine.IO session (or an upgrade attempt) on a WebSocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.packets: asyncio.Queue[str | bytes | None] = asyncio.Queue()
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def connect(
        cls, http: aiohttp.ClientSession, base: str, sid: str | None = None
    ) -> WebSocket:
        url = engineio_url(base.replace("http", "ws", 1), "websocket", sid)
        timeout = aiohttp.ClientWSTimeout(ws_receive=None, ws_close=WAIT)
        async with asyncio.timeout(WAIT):
            ws = await http.ws_connect(url, timeout=timeout, autoping=True)
        return cls(ws)

    async def _read(self) -> None:
        async for message in self.ws:
            if message.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                self.packets.put_nowait(message.data)
        self.packets.put_nowait(CLOSED)

    async def send(self, packet: str | bytes) -> None:
        if isinstance(packet, bytes):
            await self.ws.send_bytes(packet)
        else:
            await self.ws.send_str(packet)

    async def next(self, within: float = WAIT) -> str | bytes | None:
        """The next packet, or CLOSED (and CLOSED ever after) once closed."""
        packet = await asyncio.wait_for(self.packets.get(), within)
        if packet is CLOSED:
            self.packets.put_nowait(CLOSED)
        return packet

    async def next_not(self, *prefixes: str, within: float = WAIT):
        """The next packet that starts with none of ``prefixes``."""
        async with asyncio.timeout(within):
            while True:
                packet = await self.next(within)
                if not (isinstance(packet, str) and packet.startswith(prefixes)):
                    return packet

    async def closed(self, within: float = WAIT) -> list[str | bytes]:
        """Wait for the server to close the socket, answering nothing;
        return what it sent meanwhile."""
        seen = []
        async with asyncio.timeout(within):
            while (packet := await self.next(within)) is not CLOSED:
                seen.append(packet)
        return seen

    async def close(self) -> None:
        await self.ws.close()
        await self.reader


async def request(
    http: aiohttp.ClientSession, method: str, url: str, body: str | bytes = b""
) -> tuple[int, str]:
    timeout = aiohttp.ClientTimeout(total=WAIT)
    if isinstance(body, str):
        body = body.encode()
    data = io.BytesIO(body)  # aiohttp warns of large bodies given as bytes
    async with http.request(method, url, data=data, timeout=timeout) as response:
        return response.status, await response.text()


def socketio_packet(message: str) -> tuple[int, str, int | None, object]:
    """A Socket.IO packet inside an Engine.IO MESSAGE: type, namespace, ack
    id and data (None when absent), read as the v5 specification lays it out:
    ``<type>[<attachments>-][<namespace>,][<id>][<JSON>]``."""
    assert message[:1] == "4", message
    rest = message[1:]
    packet_type, rest = int(rest[0]), rest[1:]
    if packet_type in (5, 6):
        rest = rest.partition("-")[2]
    namespace = "/"
    if rest.startswith("/"):
        namespace, _, rest = rest.partition(",")
    digits = len(rest) - len(rest.lstrip("0123456789"))
    ack_id = int(rest[:digits]) if digits else None
    data = json.loads(rest[digits:]) if rest[digits:] else None
    return packet_type, namespace, ack_id, data
