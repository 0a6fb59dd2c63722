"""Engine.IO v4 (the protocol's published specification): the handshake,
long-polling, the upgrade to WebSocket, the heartbeat, invalid packets and
closing, on chatsio and on stock python-engineio alike."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from .conftest import CHAT, PING_INTERVAL, PING_TIMEOUT, Target, upstream
from .raw import (
    WAIT,
    Polling,
    WebSocket,
    engineio_url,
    opening,
    request,
    socketio_packet,
)


async def test_polling_handshake_gives_the_session_parameters(target: Target):
    """The OPEN packet carries sid, upgrades, pingInterval and pingTimeout in
    milliseconds, and maxPayload in bytes."""
    polling = await Polling.open(target.http, target.url)
    handshake = polling.handshake
    eio = target.sio.eio
    assert set(handshake) == {
        "sid",
        "upgrades",
        "pingInterval",
        "pingTimeout",
        "maxPayload",
    }
    assert isinstance(handshake["sid"], str) and handshake["sid"]
    assert handshake["upgrades"] == ["websocket"]
    assert handshake["pingInterval"] == round(eio.ping_interval * 1000)
    assert handshake["pingTimeout"] == round(eio.ping_timeout * 1000)
    assert handshake["maxPayload"] == eio.max_http_buffer_size
    await polling.close()


async def test_websocket_handshake_offers_no_upgrade(target: Target):
    ws = await target.websocket()
    handshake = opening(await ws.next())
    assert handshake["upgrades"] == []
    assert handshake["sid"]
    await ws.close()


@upstream(
    "python-engineio advertises pingInterval as "
    "int(ping_interval + grace) * 1000, whole seconds (0.4 s goes out as 0)",
)
async def test_a_sub_second_ping_interval_is_advertised_in_milliseconds(
    target: Target,
):
    target.quick_pings()
    polling = await Polling.open(target.http, target.url)
    assert polling.handshake["pingInterval"] == round(PING_INTERVAL * 1000)
    await polling.close()


@pytest.mark.parametrize(
    "method, query",
    [
        ("GET", "EIO=3&transport=polling"),  # v3 is not spoken
        ("GET", "EIO=4&transport=carrier-pigeon"),
        ("GET", "EIO=4&transport=polling&sid=no-such-session"),
        ("POST", "EIO=4&transport=polling&sid=no-such-session"),
        ("PUT", "EIO=4&transport=polling"),
    ],
)
async def test_bad_request_parameters_are_refused(
    target: Target, method: str, query: str
):
    status, _ = await request(target.http, method, f"{target.url}/socket.io/?{query}")
    assert 400 <= status < 500


async def test_a_polling_payload_holds_packets_separated_by_record_separators(
    target: Target,
):
    """One POST carries a CONNECT and an EVENT; the answers come back in
    polls, several packets to a body separated by \\x1e."""
    polling = await Polling.open(target.http, target.url)
    await polling.send(f"40{CHAT},{target.auth}", f'42{CHAT},1["hello",{{}}]')
    assert socketio_packet(await polling.next())[:2] == (0, CHAT)
    assert socketio_packet(await polling.next())[:3] == (3, CHAT, 1)
    await polling.close()


async def test_a_packet_over_max_payload_closes_the_session(target: Target):
    ws = await target.websocket()
    handshake = opening(await ws.next())
    await ws.send(f"40{CHAT},{target.auth}")
    await ws.next()
    with contextlib.suppress(ConnectionError):  # closed while it is sent
        await ws.send("4" + "x" * handshake["maxPayload"])
    await ws.closed()


async def joined_polling(target: Target) -> Polling:
    """A polling session with /chat connected."""
    polling = await Polling.open(target.http, target.url)
    await polling.send(f"40{CHAT},{target.auth}")
    assert socketio_packet(await polling.next())[:2] == (0, CHAT)
    return polling


async def answered(ws: WebSocket, ack_id: int) -> None:
    """Send an event on /chat and take its ack (past NOOPs and pings)."""
    await ws.send(f'42{CHAT},{ack_id}["hello",{{}}]')
    assert socketio_packet(await ws.next_not("6", "2"))[:3] == (3, CHAT, ack_id)


async def upgraded(target: Target, polling: Polling):
    """Upgrade ``polling`` to a WebSocket as the specification lays it out:
    probe, the pending poll ended with NOOP, then UPGRADE."""
    pending = asyncio.create_task(polling.get())
    ws = await target.websocket(polling.sid)
    await ws.send("2probe")
    assert await ws.next() == "3probe"
    assert await asyncio.wait_for(pending, WAIT) == (200, "6")
    await ws.send("5")
    return ws


async def test_upgrade_moves_the_session_to_the_websocket(target: Target):
    polling = await joined_polling(target)
    ws = await upgraded(target, polling)
    await answered(ws, 2)
    await ws.close()


async def test_polling_after_the_upgrade_is_refused(target: Target):
    polling = await joined_polling(target)
    ws = await upgraded(target, polling)
    assert (await polling.get())[0] == 400
    assert (await polling.post(f'42{CHAT},3["hello",{{}}]'))[0] == 400
    await answered(ws, 4)
    await ws.close()


async def test_a_second_upgrade_is_refused_and_the_first_kept(target: Target):
    polling = await joined_polling(target)
    ws = await upgraded(target, polling)
    url = engineio_url(target.url, "websocket", polling.sid)
    status, _ = await request(target.http, "GET", url)
    assert status == 400
    await answered(ws, 5)
    await ws.close()


async def test_a_client_that_answers_pings_stays(target: Target):
    """The server pings every pingInterval; a PONG each time keeps the
    session past pingInterval + pingTimeout."""
    target.quick_pings()
    ws, _ = await target.joined()
    started = time.monotonic()
    for _ in range(4):
        assert await ws.next(within=PING_INTERVAL + WAIT) == "2"
        await ws.send("3")
    assert time.monotonic() - started > PING_INTERVAL + PING_TIMEOUT
    await answered(ws, 6)
    await ws.close()


async def test_a_client_that_answers_polling_pings_stays(target: Target):
    target.quick_pings()
    polling = await joined_polling(target)
    for _ in range(3):
        assert await polling.next() == "2"
        await polling.send("3")
    await polling.send(f'42{CHAT},7["hello",{{}}]')
    assert socketio_packet(await polling.next())[:3] == (3, CHAT, 7)
    await polling.close()


async def test_a_client_that_does_not_pong_is_closed(target: Target):
    """Closed once pingInterval + pingTimeout pass without a PONG."""
    target.quick_pings()
    ws, _ = await target.joined()
    started = time.monotonic()
    await ws.closed(within=WAIT)
    assert time.monotonic() - started < PING_INTERVAL + PING_TIMEOUT + 1.0


async def test_a_polling_client_that_does_not_pong_is_closed(target: Target):
    target.quick_pings()
    polling = await joined_polling(target)
    assert await polling.next() == "2"
    started = time.monotonic()
    async with asyncio.timeout(WAIT):
        while (answer := await polling.get()) not in ((200, "1"), (400, answer[1])):
            assert answer in ((200, "6"), (200, "2")), answer
    assert time.monotonic() - started < PING_INTERVAL + PING_TIMEOUT + 1.0


@pytest.mark.parametrize("garbage", ["abc", ""])
async def test_an_invalid_packet_on_a_websocket_closes_the_session(
    target: Target, garbage: str
):
    ws, _ = await target.joined()
    await ws.send(garbage)
    await ws.closed()


@upstream(
    "python-engineio's WebSocket loop swallows "
    "UnknownPacketError, so a packet of an unknown type keeps the session",
)
async def test_a_packet_of_unknown_type_on_a_websocket_closes_the_session(
    target: Target,
):
    ws, _ = await target.joined()
    await ws.send("9")
    await ws.closed()


@upstream(
    "python-engineio logs a POST body it cannot decode as "
    "an error and answers it 200, keeping the session",
)
@pytest.mark.parametrize("garbage", ["abc", "9"])
async def test_an_invalid_polling_payload_is_refused(target: Target, garbage: str):
    polling = await joined_polling(target)
    assert (await polling.post(garbage))[0] == 400
    assert (await polling.get())[0] == 400


async def test_a_websocket_close_packet_ends_the_session(
    target: Target, request: pytest.FixtureRequest
):
    if target.name == "stock":
        request.applymarker(
            upstream(
                "python-engineio closes the session on a "
                "CLOSE packet but keeps reading the WebSocket until "
                "pingInterval + pingTimeout pass",
            )
        )
    ws, _ = await target.joined()
    await ws.send("1")
    await ws.closed()


async def test_a_polling_close_packet_ends_the_session(target: Target):
    polling = await joined_polling(target)
    await polling.send("1")
    assert (await polling.get())[0] == 400
