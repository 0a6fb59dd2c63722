"""The transport: permessage-deflate only when configured, uvloop (issue 7)."""

from __future__ import annotations

import pytest
import uvloop
from conftest import Harness

from chatsio import cli
from chatsio.config import load_config


async def extensions_answered(harness: Harness) -> str:
    """Open a raw WebSocket offering deflate; return what the server accepted."""
    url = harness.url + "/socket.io/?EIO=4&transport=websocket"
    # compress=15: aiohttp offers permessage-deflate, and inflates if accepted.
    async with harness.http.ws_connect(url, compress=15) as ws:
        assert (await ws.receive_str()).startswith("0{")  # the OPEN packet
        return ws._response.headers.get("Sec-WebSocket-Extensions", "")


def test_compression_is_off_by_default_and_read_from_the_environment() -> None:
    assert load_config({}).ws_compression is False
    assert load_config({"CHATSIO_WS_COMPRESSION": "on"}).ws_compression is True


async def test_deflate_is_not_negotiated_by_default(make_config) -> None:
    harness = await Harness(make_config()).start()
    try:
        assert "deflate" not in await extensions_answered(harness)
    finally:
        await harness.close()


@pytest.mark.parametrize("raw", ["on", "true"])
async def test_deflate_is_negotiated_when_configured(make_config, raw) -> None:
    compression = load_config({"CHATSIO_WS_COMPRESSION": raw}).ws_compression
    harness = await Harness(make_config(ws_compression=compression)).start()
    try:
        assert "permessage-deflate" in await extensions_answered(harness)
    finally:
        await harness.close()


def test_serve_runs_the_app_on_uvloop(monkeypatch, make_config) -> None:
    loops = []

    def run_app(app, *, loop, **options) -> None:
        loops.append(loop)
        loop.close()

    monkeypatch.setattr(cli.web, "run_app", run_app)
    assert cli.serve(make_config(port=0)) == 0  # serve binds before run_app
    assert isinstance(loops[0], uvloop.Loop)
