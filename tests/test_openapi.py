"""GET /api/openapi.json: a valid document, every route in it, and the server keeps it.

The last test runs schemathesis's CLI against the live test server. The CLI runs
in a subprocess so that this test's event loop stays free to serve its requests.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

from conftest import PASSWORD
from openapi_spec_validator import validate

from chatsio.api.keys import services_key
from chatsio.api.openapi import spec_body
from chatsio.protocol import CHAT

METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
# Routes that take no token (PROTOCOL.md, Identity).
PUBLIC = {
    "/",
    "/api/users",
    "/api/tokens",
    "/api/health",
    "/api/openapi.json",
    "/metrics",
}
EXAMPLES_PER_OPERATION = 25
SCHEMATHESIS_TIMEOUT = 120


async def get_spec(chatsio) -> dict:
    async with chatsio.http.get(chatsio.url + "/api/openapi.json") as response:
        assert response.status == 200
        assert response.content_type == "application/json"
        return await response.json()


def documented(spec: dict) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in spec["paths"].items()
        for method in item
        if method in METHODS
    }


def served(app) -> set[tuple[str, str]]:
    """Every route but Socket.IO's and the static files'; HEAD comes with each
    GET (aiohttp's allow_head)."""
    return {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if not route.resource.canonical.startswith(("/socket.io/", "/static"))
        and route.method != "HEAD"
    }


async def test_the_document_is_valid_openapi(chatsio):
    spec = await get_spec(chatsio)
    validate(spec)
    assert spec["openapi"].startswith("3.")


async def test_every_served_route_is_documented_and_nothing_else(chatsio):
    spec = await get_spec(chatsio)
    assert documented(spec) == served(chatsio.server.app)


async def test_bearer_auth_on_exactly_the_routes_that_need_a_token(chatsio):
    spec = await get_spec(chatsio)
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method not in METHODS:
                continue
            secured = operation.get("security") == [{"bearerAuth": []}]
            assert secured == (path not in PUBLIC), (method, path)
            if secured:
                assert "401" in operation["responses"], (method, path)


async def test_the_document_is_built_once_not_per_request(chatsio):
    for _ in range(2):
        await get_spec(chatsio)
    assert spec_body.cache_info().misses == 1


async def test_a_405_names_the_allowed_methods(chatsio):
    async with chatsio.http.put(chatsio.url + "/api/chats") as response:
        assert response.status == 405
        allowed = {m.strip() for m in response.headers.get("Allow", "").split(",")}
        assert allowed >= {"GET", "POST"}


async def test_a_deeply_nested_body_is_invalid(chatsio):
    body = b"[" * 100_000  # 100 kB, far under the 1 MiB body limit
    async with chatsio.http.post(chatsio.url + "/api/users", data=body) as response:
        assert response.status == 400


async def test_a_token_that_is_not_utf8_is_unauthorized(chatsio):
    host, port = chatsio.server.host, chatsio.server.port
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        b"GET /api/me HTTP/1.1\r\nHost: chatsio\r\nConnection: close\r\n"
        b"Authorization: Bearer \xff\xfe\r\n\r\n"
    )
    status_line = await reader.readline()
    writer.close()
    await writer.wait_closed()
    assert status_line.split()[1] == b"401"


# Checks switched off, and why. Nothing here hides a 5xx or a reply that breaks
# the document: those checks stay on.
SWITCHED_OFF = {
    "use_after_free": "by design: DELETE /api/chats/{id} ends a chat, and "
    "PROTOCOL.md keeps an ended chat readable",
}
SETTINGS = """
[checks]
enabled = true
{switched_off}

# Each list is schemathesis's default plus one status; 5xx stays in them because
# not_a_server_error reports every 5xx on its own.
[checks.positive_data_acceptance]
# 410: a valid request about an ended chat is answered "terminated".
expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "410", "429", "5xx"]

[checks.negative_data_rejection]
# 413: an over-limit text, title or member list is "too_large" (PROTOCOL.md).
expected-statuses = [
    "400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428",
    "429", "5xx",
]

[parameters]
"path.file_id" = "{file_id}"
"""


async def a_file(chatsio, token: str) -> str:
    """Send a file in a chat of alice and bob; return its id."""
    await chatsio.user("bob")
    status, chat = await chatsio.post("/api/chats", {"members": ["bob"]}, token)
    assert status == 201, chat
    peer = await chatsio.peer(token, namespaces=(CHAT,))
    ack = await peer.call(
        CHAT,
        "file",
        {"id": chat["id"], "name": 'a "b";c.txt', "type": "text/plain", "data": b"hi"},
    )
    assert ack["ok"], ack
    return ack["message"]["file"]["file_id"]


def settings_file(directory: Path, file_id: str) -> Path:
    switched_off = "\n".join(
        f"# {why}\n{name}.enabled = false" for name, why in SWITCHED_OFF.items()
    )
    path = directory / "schemathesis.toml"
    path.write_text(SETTINGS.format(switched_off=switched_off, file_id=file_id))
    return path


async def test_schemathesis_finds_no_server_error_and_no_schema_break(
    chatsio, tmp_path, server_log
):
    identity = chatsio.server.app[services_key].identity
    await identity.register("alice", PASSWORD, is_admin=True, by_operator=True)
    token = await chatsio.user("alice")  # an admin, so notifications get through
    settings = settings_file(tmp_path, await a_file(chatsio, token))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(settings),
        "--no-color",
        "run",
        chatsio.url + "/api/openapi.json",
        "--header",
        f"Authorization: Bearer {token}",
        "--max-examples",
        str(EXAMPLES_PER_OPERATION),
        "--generation-deterministic",  # same cases every run, and no database
        "--workers",
        "1",
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), SCHEMATHESIS_TIMEOUT)
    assert process.returncode == 0, output.decode()
    assert chatsio_tracebacks(server_log) == []


def chatsio_tracebacks(caplog) -> list[str]:
    """The server's own faults; aiohttp's parser logs the NUL-header probe itself."""
    return [
        record.getMessage()
        for record in caplog.records
        if record.name.startswith("chatsio")
        and (record.exc_info or record.levelno >= logging.ERROR)
    ]
