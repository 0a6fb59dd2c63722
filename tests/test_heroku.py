"""The Heroku recipe rehearsed: dynos started from the Procfile and app.json with
only what the platform sets (``PORT``, ``DATABASE_URL=postgres://...``,
``REDIS_URL=rediss://...``), over a TLS Redis whose certificate is self-signed,
as Heroku Redis's is."""

from __future__ import annotations

import asyncio
import configparser
import json
import os
import re
import shutil
import sys
from pathlib import Path

import pytest
from cluster import (
    START_TIMEOUT,
    Node,
    RedisServer,
    api,
    close_all,
    device,
    register,
    wait_until,
)
from conftest import TIMEOUT, unavailable

from chatsio.config import SETTINGS_BY_FIELD, load_config
from chatsio.protocol import CHAT, CONTROL

ROOT = Path(__file__).resolve().parent.parent
TLS_SETTING = "CHATSIO_REDIS_TLS_VERIFY"  # the name the README and app.json use
PLATFORM_SET = {"PORT", "DATABASE_URL", "REDIS_URL"}


def app_manifest() -> dict:
    return json.loads((ROOT / "app.json").read_text())


def manifest_env() -> dict[str, str]:
    """app.json's config vars, as Heroku sets them on every dyno."""
    env = app_manifest()["env"]
    return {key: spec["value"] for key, spec in env.items()}


def procfile_web() -> str:
    for line in (ROOT / "Procfile").read_text().splitlines():
        kind, _, command = line.partition(":")
        if kind.strip() == "web":
            return command.strip()
    raise AssertionError("the Procfile has no web: line")


async def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by nobody but itself, and its key."""
    if shutil.which("openssl") is None:
        unavailable("openssl", "not on PATH; it makes the self-signed certificate")
    cert, key = directory / "redis.crt", directory / "redis.key"
    proc = await asyncio.create_subprocess_exec(
        "openssl", "req", "-x509", "-nodes", "-days", "1",
        "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
        "-keyout", str(key), "-out", str(cert),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    assert proc.returncode == 0, err.decode()
    return cert, key


class TlsRedisServer(RedisServer):
    """A private redis-server speaking only TLS, as Heroku Redis does."""

    def __init__(self, directory: Path, cert: Path, key: Path) -> None:
        super().__init__(directory)
        self.cert, self.key = cert, key
        self.url = f"rediss://127.0.0.1:{self.port}/0"

    async def start(self) -> TlsRedisServer:
        await self.spawn(
            "redis-server",
            "--port", "0",
            "--tls-port", str(self.port),
            "--tls-cert-file", str(self.cert),
            "--tls-key-file", str(self.key),
            "--tls-ca-cert-file", str(self.cert),
            "--tls-auth-clients", "no",
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--loglevel", "verbose",  # logs each refused handshake
        )  # fmt: skip
        try:
            await wait_until(self.answers, within=START_TIMEOUT)
        except TimeoutError:
            unavailable("redis-server with TLS", self.text()[-300:])
        return self

    def refused_handshakes(self) -> int:
        return self.text().count("Error accepting a client connection")


class Dyno(Node):
    """A node started the way Heroku starts a web dyno: the Procfile's ``web``
    command through bash, with only the platform's variables set."""

    def __init__(self, name: str, directory: Path, env: dict[str, str]) -> None:
        super().__init__(name, directory, env)
        self.directory = directory / name
        self.directory.mkdir()

    async def start(self) -> Dyno:
        bin_dir = os.path.dirname(sys.executable)  # where `chatsio` is installed
        env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "PORT": str(self.port), **self.env}
        with self.log.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                "/bin/bash", "-c", procfile_web(),
                stdout=out, stderr=out, env=env, cwd=self.directory,
            )  # fmt: skip
        await wait_until(self.healthy, within=START_TIMEOUT, every=0.1)
        return self


@pytest.fixture
async def tls_redis(tmp_path):
    cert, key = await self_signed_certificate(tmp_path)
    server = await TlsRedisServer(tmp_path, cert, key).start()
    yield server
    await server.stop()


@pytest.fixture
def heroku_postgres(postgres_url: str) -> str:
    """The fresh database's URL in the form Heroku Postgres sets it."""
    return "postgres://" + postgres_url.partition("://")[2]


@pytest.fixture
async def peers():
    opened = []
    yield opened
    await close_all(opened)


@pytest.fixture
async def dynos(tmp_path):
    started: list[Dyno] = []

    async def start(env: dict[str, str], count: int) -> list[Dyno]:
        for index in range(count):
            started.append(await Dyno(f"web.{index + 1}", tmp_path, env).start())
        return started

    yield start
    for dyno in started:
        await dyno.stop()


async def fully_healthy(dyno: Dyno) -> bool:
    _, body = await dyno.health()
    return body == {"status": "ok", "database": "ok", "redis": "ok"}


async def test_two_dynos_talk_over_tls_redis_as_heroku_sets_them(
    tls_redis, heroku_postgres, dynos, peers
):
    env = {
        **manifest_env(),
        "DATABASE_URL": heroku_postgres,
        "REDIS_URL": tls_redis.url,
    }
    web1, web2 = await dynos(env, 2)
    for dyno in (web1, web2):
        await wait_until(lambda d=dyno: fully_healthy(d), within=START_TIMEOUT)

    alice = await device(web1, await register(web1, "alice"))
    bob = await device(web2, await register(web2, "bob"))
    peers.extend((alice, bob))
    ack = await alice.call(CONTROL, "start", {"members": ["bob"]})
    assert ack["ok"], ack
    chat_id = ack["chat"]["id"]
    assert (await bob.next(CONTROL, "invite"))["chat"]["id"] == chat_id
    for peer in (alice, bob):
        assert (await peer.call(CHAT, "join", {"id": chat_id}))["ok"]
    sent = await alice.call(
        CHAT, "notify", {"id": chat_id, "kind": "message", "text": "over TLS"}
    )
    assert await bob.next(CHAT, "notify") == sent["message"]
    reply = await bob.call(
        CHAT, "notify", {"id": chat_id, "kind": "message", "text": "heard"}
    )
    assert await alice.next(CHAT, "notify") == reply["message"]

    # `heroku run chatsio notify ...`: a one-off dyno has the same variables.
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "chatsio", "notify", "back soon",
        env={"PATH": os.environ["PATH"], **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), START_TIMEOUT)
    assert proc.returncode == 0, out.decode()
    for peer in (alice, bob):
        assert (await peer.next(CONTROL, "notify"))["text"] == "back soon"
    assert "Traceback" not in web1.text() + web2.text()


async def test_an_unverifiable_certificate_is_one_line_naming_the_setting(
    tls_redis, dynos
):
    env = {"REDIS_URL": tls_redis.url}  # the database: chatsio.db in the dyno's cwd
    (web,) = await dynos(env, 1)
    # Both paths fail: listening (retried every 0.5 s) and publishing (an invite).
    for name in ("alice", "bob"):
        await register(web, name)
    token = await register(web, "carol")
    status, body = await api(
        web, "POST", "/api/chats", token, json={"members": ["bob"]}
    )
    assert status == 201, body
    await wait_until(lambda: tls_redis.refused_handshakes() >= 4, within=TIMEOUT)

    async def publish_failed() -> bool:
        status, body = await web.health()
        assert status == 200 and body["redis"] == "down"  # serving, degraded
        return "; publish: " in web.text()  # the health check's warning

    await wait_until(publish_failed, within=TIMEOUT)
    lines = [line for line in web.text().splitlines() if TLS_SETTING in line]
    assert len(lines) == 1, web.text()
    assert "certificate" in lines[0] and f"{TLS_SETTING}=false" in lines[0]
    assert "Traceback" not in web.text()


def test_app_json_describes_the_deployment_the_recipe_makes():
    manifest = app_manifest()
    assert {addon["plan"].split(":")[0] for addon in manifest["addons"]} == {
        "heroku-postgresql",
        "heroku-redis",
    }
    assert [pack["url"] for pack in manifest["buildpacks"]] == ["heroku/python"]
    web = manifest["formation"]["web"]
    assert web["quantity"] >= 2 and web["size"]
    env = manifest_env()
    known = {setting.env for setting in SETTINGS_BY_FIELD.values()}
    assert set(env) <= known - PLATFORM_SET, set(env) - known
    assert env[TLS_SETTING] == "false"
    load_config(env)  # every value parses
    web_command = procfile_web()  # a dyno must listen on every interface, at PORT
    assert "--host 0.0.0.0" in web_command and "$PORT" in web_command


def release(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def test_python_version_file_names_a_supported_python():
    version = (ROOT / ".python-version").read_text().strip()
    assert re.fullmatch(r"3\.\d+", version), version
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    minimum = setup["options"]["python_requires"].removeprefix(">=")
    assert release(version) >= release(minimum)
    assert (
        f"Programming Language :: Python :: {version}"
        in setup["metadata"]["classifiers"]
    )
