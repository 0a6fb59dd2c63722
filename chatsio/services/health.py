"""Is this node fit to serve: the database and, when configured, Redis."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from chatsio.storage import Storage

logger = logging.getLogger(__name__)

Probe = Callable[[], Awaitable[object]]


class HealthService:
    def __init__(self, storage: Storage, redis_probe: Probe | None) -> None:
        self.storage = storage
        self.redis_probe = redis_probe

    async def check(self) -> dict[str, str]:
        """``{"status", "database", "redis"}``, the protocol's health reply."""
        database, redis = await asyncio.gather(
            answer("database", self.storage.ping, within=2.0),
            answer("redis", self.redis_probe, within=1.0)
            if self.redis_probe
            else off(),
        )
        healthy = database == "ok" and redis in ("ok", "off")
        return {
            "status": "ok" if healthy else "degraded",
            "database": database,
            "redis": redis,
        }


async def answer(name: str, probe: Probe, *, within: float) -> str:
    try:
        async with asyncio.timeout(within):
            await probe()
    except Exception as exc:  # any failure to answer in time means down
        logger.warning("health: %s is down: %s", name, exc or type(exc).__name__)
        return "down"
    return "ok"


async def off() -> str:
    return "off"
