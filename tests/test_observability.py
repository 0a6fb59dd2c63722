"""GET /api/health and GET /metrics."""

from __future__ import annotations

import uuid

import asyncpg
import redis.asyncio
from conftest import POSTGRES_ADMIN_URL, Harness, unavailable
from helpers import join, say, start_chat
from prometheus_client.parser import text_string_to_metric_families

from chatsio.config import Config
from chatsio.protocol import CHAT

REDIS_URL = "redis://127.0.0.1:6379/15"


async def get(harness, path: str):
    async with harness.http.get(harness.url + path) as response:
        return response.status, response.headers, await response.read()


async def health(harness) -> tuple[int, dict]:
    async with harness.http.get(harness.url + "/api/health") as response:
        return response.status, await response.json()


async def test_health_says_ok_with_the_database_and_no_redis(chatsio):
    assert await health(chatsio) == (
        200,
        {"status": "ok", "database": "ok", "redis": "off"},
    )


async def test_health_checks_redis_when_configured(make_config):
    try:
        client = redis.asyncio.from_url(REDIS_URL)
        await client.ping()
        await client.aclose()
    except OSError as exc:
        unavailable(f"Redis at {REDIS_URL}", str(exc))
    harness = await Harness(make_config(redis_url=REDIS_URL)).start()
    try:
        assert await health(harness) == (
            200,
            {"status": "ok", "database": "ok", "redis": "ok"},
        )
    finally:
        await harness.close()


async def test_health_is_503_when_the_database_is_gone(postgres_url):
    harness = await Harness(Config(database_url=postgres_url)).start()
    try:
        assert (await health(harness))[0] == 200
        name = postgres_url.rsplit("/", 1)[1]
        admin = await asyncpg.connect(POSTGRES_ADMIN_URL)
        try:
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        finally:
            await admin.close()
        status, body = await health(harness)
        assert status == 503
        assert body == {"status": "degraded", "database": "down", "redis": "off"}
    finally:
        await harness.close()


def samples(text: str) -> dict[tuple[str, tuple], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found: dict, name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_parse_and_move_when_messages_flow(chatsio):
    status, headers, body = await get(chatsio, "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    before = samples(body.decode())

    alice, _ = await chatsio.member(await chatsio.user("alice"))
    bob, _ = await chatsio.member(await chatsio.user("bob"))
    chat = await start_chat(alice, "bob")
    await join(alice, chat["id"])
    await join(bob, chat["id"])
    for n in range(3):
        await say(alice, chat["id"], f"m{n}")
    refused = await bob.call(CHAT, "join", {"id": str(uuid.uuid4())})
    assert refused["error"]["code"] == "not_found"
    async with chatsio.http.get(chatsio.url + "/api/me") as response:
        assert response.status == 401

    after = samples((await get(chatsio, "/metrics"))[2].decode())
    assert value(after, "chatsio_connected_sockets", namespace="/chat") == 2
    assert value(after, "chatsio_connected_sockets", namespace="/control") == 2
    ok_notify = {"namespace": "/chat", "event": "notify", "outcome": "ok"}
    assert (
        value(after, "chatsio_events_total", **ok_notify)
        - value(before, "chatsio_events_total", **ok_notify)
        == 3
    )
    assert value(after, "chatsio_messages_stored_total", kind="message") == 3
    # Each of the three messages went to bob only (alice sent them).
    deliveries = {"namespace": "/chat", "event": "notify"}
    assert value(after, "chatsio_deliveries_total", **deliveries) == 3
    assert value(after, "chatsio_errors_total", code="not_found", edge="socket") == 1
    assert value(after, "chatsio_errors_total", code="unauthorized", edge="rest") == 1
    latency = {"namespace": "/chat", "event": "notify"}
    assert value(after, "chatsio_handler_seconds_count", **latency) == 3
