"""Deployments sharing one Redis server on different database numbers, such as
staging on ``redis://host/1`` beside production on ``redis://host/0``, keep
apart: Redis pub/sub ignores the database number, the channel name must not."""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from cluster import Node, RedisServer, api, close_all, device, register
from conftest import PASSWORD
from test_cluster import call_ok

from chatsio.config import load_config
from chatsio.errors import ConfigError
from chatsio.protocol import CHAT, CONTROL
from chatsio.transport.bus import RedisBus, default_channel

COMMAND_TIMEOUT = 30.0


@dataclass
class Deployment:
    name: str
    env: dict[str, str]
    nodes: tuple[Node, Node]
    admin: str = ""  # an admin's token
    chat_id: str = ""  # a chat of alice and bob's, the same in both databases


async def run(*argv: str, env: dict[str, str] | None = None) -> str:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        env={"PATH": os.environ["PATH"], **(env or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), COMMAND_TIMEOUT)
    assert proc.returncode == 0, out.decode()
    return out.decode()


def plain(url: str) -> str:
    """A SQLAlchemy PostgreSQL URL as libpq's tools take it."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def clone_database(source: str, tmp_path: Path) -> str:
    """A copy of ``source``'s database, as staging restored from a production
    dump would be: the same users and chat ids, so any event that crossed
    would reach a socket."""
    target = f"{source}_staging"
    dump = tmp_path / "production.sql"
    await run("pg_dump", "--no-owner", "-f", str(dump), plain(source))
    admin, _, name = plain(target).rpartition("/")
    await run("psql", "-q", f"{admin}/postgres", "-c", f'CREATE DATABASE "{name}"')
    await run("psql", "-q", "-v", "ON_ERROR_STOP=1", "-f", str(dump), plain(target))
    return target


async def drop_database(url: str) -> None:
    admin, _, name = plain(url).rpartition("/")
    drop = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
    await run("psql", "-q", f"{admin}/postgres", "-c", drop)


async def start_nodes(name: str, env: dict[str, str], tmp_path: Path) -> list[Node]:
    return [await Node(f"{name}-{n}", tmp_path, env).start() for n in "ab"]


async def chatsio_notify(redis_url: str, text: str) -> None:
    await run(
        sys.executable, "-m", "chatsio", "notify", text, env={"REDIS_URL": redis_url}
    )


@pytest.fixture
async def redis_server(tmp_path):
    server = await RedisServer(tmp_path).start()
    yield server
    await server.stop()


@pytest.fixture
async def deployments(tmp_path, postgres_url, redis_server):
    """Production on database 0 and staging on database 1 of one Redis, two
    nodes each; staging's database is a copy of production's."""
    base = redis_server.url.rsplit("/", 1)[0]
    started: list[Node] = []
    staging_url = None
    try:
        production_env = {"DATABASE_URL": postgres_url, "REDIS_URL": f"{base}/0"}
        started += await start_nodes("production", production_env, tmp_path)
        production = Deployment("production", production_env, tuple(started))
        await run(
            sys.executable, "-m", "chatsio", "createuser", "root",
            "--password", PASSWORD, "--admin",
            env={"DATABASE_URL": postgres_url},
        )  # fmt: skip
        alice = await register(production.nodes[0], "alice")
        await register(production.nodes[0], "bob")
        peer = await device(production.nodes[0], alice)
        try:
            ack = await call_ok(peer, CONTROL, "start", {"members": ["bob"]})
        finally:
            await close_all([peer])
        staging_url = await clone_database(postgres_url, tmp_path)
        staging_env = {"DATABASE_URL": staging_url, "REDIS_URL": f"{base}/1"}
        started += await start_nodes("staging", staging_env, tmp_path)
        staging = Deployment("staging", staging_env, tuple(started[2:]))
        for deployment in (production, staging):
            deployment.admin = await register(deployment.nodes[0], "root")
            deployment.chat_id = ack["chat"]["id"]
        yield production, staging
    finally:
        for node in started:
            await node.stop()
        if staging_url:
            await drop_database(staging_url)


@pytest.fixture
async def peers():
    opened = []
    yield opened
    await close_all(opened)


async def member(peers, deployment: Deployment, node: int, name: str):
    """``name`` on one of ``deployment``'s nodes, joined to the shared chat."""
    token = await register(deployment.nodes[node], name)
    peer = await device(deployment.nodes[node], token)
    peers.append(peer)
    await call_ok(peer, CHAT, "join", {"id": deployment.chat_id})
    return peer


async def assert_kept_apart(peers, source: Deployment, target: Deployment) -> None:
    """An invite, a message and both kinds of global notice made in ``source``
    reach its other node but no socket of ``target``."""
    watchers = [
        await member(peers, target, 0, "alice"),
        await member(peers, target, 1, "bob"),
    ]
    sender = await member(peers, source, 0, "alice")
    listener = await member(peers, source, 1, "bob")

    sent = await call_ok(
        sender,
        CHAT,
        "notify",
        {"id": source.chat_id, "kind": "message", "text": f"from {source.name}"},
    )
    started = await call_ok(sender, CONTROL, "start", {"members": ["bob"]})
    notice = {"text": f"admin of {source.name}"}
    status, body = await api(
        source.nodes[0], "POST", "/api/notifications", source.admin, json=notice
    )
    assert status == 202, body
    await chatsio_notify(source.env["REDIS_URL"], f"cli of {source.name}")

    # Control: the source's two nodes still hear each other.
    assert await listener.next(CHAT, "notify") == sent["message"]
    invite = await listener.next(CONTROL, "invite")
    assert invite["chat"]["id"] == started["chat"]["id"]
    notices = {(await listener.next(CONTROL, "notify"))["text"] for _ in range(2)}
    assert notices == {f"admin of {source.name}", f"cli of {source.name}"}

    # Everything above went through Redis before this barrier did: had it been
    # on the target's channel, it would reach the watchers before the barrier.
    barrier = f"barrier in {target.name}"
    await chatsio_notify(target.env["REDIS_URL"], barrier)
    for watcher in watchers:
        heard = []
        while (notice := await watcher.next(CONTROL, "notify"))["text"] != barrier:
            heard.append(("notify", notice["text"]))
        heard += [
            ("invite", i["chat"]["id"]) for i in watcher.received(CONTROL, "invite")
        ]
        heard += [("message", m["text"]) for m in watcher.received(CHAT, "notify")]
        assert heard == [], f"{source.name}'s events reached {target.name}"


async def test_deployments_on_one_redis_keep_apart(deployments, peers):
    production, staging = deployments
    await assert_kept_apart(peers, production, staging)
    await assert_kept_apart(peers, staging, production)


@pytest.mark.parametrize(
    ("url", "channel"),
    [
        ("redis://127.0.0.1:6379", "chatsio"),
        ("redis://127.0.0.1:6379/0", "chatsio"),
        ("redis://127.0.0.1:6379/1", "chatsio:db1"),
        ("rediss://:secret@example.com:6380/12", "chatsio:db12"),
        ("redis://127.0.0.1:6379?db=3", "chatsio:db3"),
        ("unix:///run/redis.sock?db=2", "chatsio:db2"),
        ("redis+sentinel://127.0.0.1:26379/4/primary", "chatsio:db4"),
        ("redis+sentinel://127.0.0.1:26379", "chatsio"),
    ],
)
def test_default_channel_follows_the_database_number(url, channel):
    assert default_channel(url) == channel


def test_the_channel_setting_overrides_the_default():
    config = load_config({"REDIS_URL": "redis://h:1/1", "CHATSIO_REDIS_CHANNEL": "x"})
    bus = RedisBus(config.redis_url, channel=config.redis_channel)
    assert bus.channel == "x"
    with pytest.raises(ConfigError, match="CHATSIO_REDIS_CHANNEL"):
        load_config({"CHATSIO_REDIS_CHANNEL": "two words"})
