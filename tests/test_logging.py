"""The log tells a person who connected, who left and what was refused."""

from __future__ import annotations

import uuid

import pytest
import socketio
from conftest import tracebacks

from chatsio.protocol import CHAT


async def test_connect_error_and_disconnect_each_log_one_line(chatsio, server_log):
    token = await chatsio.user("alice")
    peer = await chatsio.peer(token, namespaces=(CHAT,))
    sid = peer.client.get_sid(CHAT)
    ack = await peer.call(CHAT, "join", {"id": str(uuid.uuid4())})
    assert ack["error"]["code"] == "not_found"
    await peer.close()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await chatsio.peer("forged", namespaces=(CHAT,))
    await chatsio.stop()  # the disconnect is logged by the time the server stops

    lines = [r.getMessage() for r in server_log.records if r.name.startswith("chatsio")]
    assert f"connect /chat sid={sid} user=alice addr=127.0.0.1" in lines
    assert any(
        line.startswith("/chat join -> not_found") and f"sid={sid} user=alice" in line
        for line in lines
    ), lines
    assert any(
        line.startswith(f"disconnect /chat sid={sid} user=alice") for line in lines
    )
    assert any(line.startswith("refused") and "/chat" in line for line in lines)
    assert "correct horse" not in server_log.text and token not in server_log.text
    assert tracebacks(server_log) == []


@pytest.mark.parametrize(
    ("trusted", "logged"),
    [((), "127.0.0.1"), (("127.0.0.1",), "198.51.100.7")],
    ids=["header-ignored", "behind-a-trusted-proxy"],
)
async def test_forwarded_for_is_believed_only_from_trusted_proxies(
    make_config, server_log, trusted, logged
):
    from conftest import Harness

    harness = await Harness(make_config(trusted_proxies=trusted)).start()
    try:
        token = await harness.user("alice")
        peer = await harness.peer(
            token, namespaces=(CHAT,), headers={"X-Forwarded-For": "198.51.100.7"}
        )
        sid = peer.client.get_sid(CHAT)
        lines = [r.getMessage() for r in server_log.records]
        assert f"connect /chat sid={sid} user=alice addr={logged}" in lines
    finally:
        await harness.close()
