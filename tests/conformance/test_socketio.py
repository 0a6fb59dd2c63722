"""Socket.IO v5 (the protocol's published specification) over a raw
WebSocket: namespace CONNECT with and without auth, unknown namespaces, events
and acks, binary attachments, invalid packets and disconnects, on chatsio and
on stock python-socketio alike."""

from __future__ import annotations

import json

import pytest

from .conftest import CHAT, CONTROL, FILE, Target, upstream
from .raw import WebSocket, opening, socketio_packet

CONNECT, DISCONNECT, EVENT, ACK, CONNECT_ERROR = 0, 1, 2, 3, 4


async def opened(target: Target) -> WebSocket:
    ws = await target.websocket()
    opening(await ws.next())
    return ws


async def test_connect_with_auth_gives_a_namespace_sid(target: Target):
    ws = await opened(target)
    await ws.send(f"40{CONTROL},{target.auth}")
    kind, namespace, ack_id, data = socketio_packet(await ws.next())
    assert (kind, namespace, ack_id) == (CONNECT, CONTROL, None)
    assert isinstance(data["sid"], str) and data["sid"]
    await ws.close()


async def test_one_session_connects_several_namespaces(target: Target):
    ws = await opened(target)
    await ws.send(f"40{CONTROL},{target.auth}")
    control = socketio_packet(await ws.next())
    await ws.send(f"40{CHAT},{target.auth}")
    chat = socketio_packet(await ws.next_not(f"42{CONTROL},"))
    assert (control[:2], chat[:2]) == ((CONNECT, CONTROL), (CONNECT, CHAT))
    assert control[3]["sid"] != chat[3]["sid"]
    await ws.close()


@pytest.mark.parametrize(
    "auth", ["", '{"token": "not a token"}', '{"other": 1}', '"a string"']
)
async def test_connect_without_a_valid_token_is_a_connect_error(
    target: Target, auth: str
):
    ws = await opened(target)
    await ws.send(f"40{CHAT},{auth}")
    kind, namespace, _, data = socketio_packet(await ws.next())
    assert (kind, namespace) == (CONNECT_ERROR, CHAT)
    assert isinstance(data["message"], str)
    await ws.close()


@pytest.mark.parametrize("namespace", ["/nowhere", "/"])
async def test_an_unknown_namespace_is_a_connect_error(target: Target, namespace: str):
    ws = await opened(target)
    head = "40" if namespace == "/" else f"40{namespace},"
    await ws.send(head + target.auth)
    kind, where, _, _ = socketio_packet(await ws.next())
    assert (kind, where) == (CONNECT_ERROR, namespace)
    await ws.close()


@upstream(
    "python-socketio refuses an unknown namespace with the "
    'string "Unable to connect", where v5 has an object {"message": ...}',
)
async def test_an_unknown_namespace_is_refused_with_a_message_object(
    target: Target,
):
    ws = await opened(target)
    await ws.send(f"40/nowhere,{target.auth}")
    data = socketio_packet(await ws.next())[3]
    assert isinstance(data, dict) and isinstance(data["message"], str)
    await ws.close()


async def test_an_event_with_an_id_is_acknowledged_with_that_id(target: Target):
    ws, _ = await target.joined()
    await ws.send(f'42{CHAT},12["hello",{{"a":1}}]')
    kind, namespace, ack_id, data = socketio_packet(await ws.next())
    assert (kind, namespace, ack_id) == (ACK, CHAT, 12)
    assert isinstance(data, list) and len(data) == 1
    await ws.close()


async def test_an_event_without_an_id_is_not_acknowledged(target: Target):
    ws, _ = await target.joined()
    await ws.send(f'42{CHAT},["hello",{{}}]')
    await ws.send(f'42{CHAT},13["hello",{{}}]')
    assert socketio_packet(await ws.next())[:3] == (ACK, CHAT, 13)
    await ws.close()


async def test_a_binary_event_is_rebuilt_from_its_attachment(target: Target):
    """BINARY_EVENT ``51-`` names one attachment; the placeholder in its
    data is replaced by the binary frame that follows."""
    ws, _ = await target.joined()
    payload = {
        "id": target.chat_id,
        "name": "conformance.bin",
        "type": "application/octet-stream",
        "data": {"_placeholder": True, "num": 0},
    }
    await ws.send(f"451-{CHAT},14" + json.dumps(["file", payload]))
    await ws.send(FILE)
    kind, namespace, ack_id, data = socketio_packet(await ws.next())
    assert (kind, namespace, ack_id) == (ACK, CHAT, 14)
    assert data[0]["ok"] is True, data
    await ws.close()


async def test_events_on_a_namespace_not_connected_are_not_handled(target: Target):
    ws, _ = await target.joined(CHAT)
    await ws.send(f'42{CONTROL},15["hello",{{}}]')
    await ws.send(f'42{CHAT},16["hello",{{}}]')
    assert socketio_packet(await ws.next())[:3] == (ACK, CHAT, 16)
    await ws.close()


@pytest.mark.parametrize(
    "packet",
    [
        f'49{CHAT},["hello"]',  # no such packet type
        f'42{CHAT},17["hello",',  # JSON cut short
        f'42{CHAT},17{{"hello":1}}',  # an event that is not an array
        '42chat,17["hello"]',  # a namespace without its slash
    ],
)
async def test_an_invalid_packet_is_not_handled(target: Target, packet: str):
    """Nothing answers a packet that breaks the format, and the connection
    is not wedged by it: the next event is answered."""
    ws, _ = await target.joined()
    await ws.send(packet)
    await ws.send(f'42{CHAT},18["hello",{{}}]')
    assert socketio_packet(await ws.next())[:3] == (ACK, CHAT, 18)
    await ws.close()


@upstream(
    "python-socketio drops a packet it cannot decode and "
    "keeps the connection; the specification's suite expects it closed",
)
@pytest.mark.parametrize("packet", [f'49{CHAT},["hello"]', f'42{CHAT},1["a",'])
async def test_an_invalid_packet_closes_the_connection(target: Target, packet: str):
    ws, _ = await target.joined()
    await ws.send(packet)
    await ws.closed()


async def test_a_client_disconnect_leaves_the_namespace(target: Target):
    """After ``41/chat,`` the namespace no longer handles the session's
    events; a new CONNECT gives a new sid."""
    ws, first = await target.joined(CHAT)
    await ws.send(f"40{CONTROL},{target.auth}")
    assert socketio_packet(await ws.next())[:2] == (CONNECT, CONTROL)
    await ws.send(f"41{CHAT},")
    await ws.send(f'42{CHAT},19["hello",{{}}]')
    await ws.send(f'42{CONTROL},20["hello",{{}}]')
    answer = socketio_packet(await ws.next_not(f"42{CONTROL},"))
    assert answer[:3] == (ACK, CONTROL, 20)
    await ws.send(f"40{CHAT},{target.auth}")
    kind, namespace, _, data = socketio_packet(await ws.next())
    assert (kind, namespace) == (CONNECT, CHAT) and data["sid"] != first
    await ws.close()


async def test_a_server_disconnect_says_disconnect(target: Target):
    ws, sid = await target.joined(CHAT)
    await target.sio.disconnect(sid, namespace=CHAT)
    assert await ws.next() == f"41{CHAT},"
    await ws.close()
