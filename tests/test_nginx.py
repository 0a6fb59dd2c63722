"""deploy/nginx.conf, run for real: Debian's nginx in front of two chatsio nodes.

The test rewrites only what a machine-local run must change (see the header of
deploy/nginx.conf): the listen port, the two example upstream addresses, the
static root, and the pid, log and temp paths, which move into tmp_path so nginx
runs without touching /run, /var/log or /var/lib.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import sys
import uuid
from pathlib import Path

import aiohttp
import pytest
import socketio
from cluster import free_port, wait_until
from conftest import PASSWORD, TIMEOUT, Peer, unavailable
from multidict import CIMultiDictProxy

from chatsio.api.headers import HEADERS
from chatsio.protocol import CHAT, CONTROL

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "deploy" / "nginx.conf"
REPO_STATIC = ROOT / "static"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
# Pub/sub channels ignore the database number: every process on this Redis shares
# the "chatsio" channel. Unique user names keep this test's rooms its own.
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
REDIS_URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/0"

# What the committed config holds and the test replaces (documented there).
EXAMPLE_NODES = ("127.0.0.1:8001", "127.0.0.1:8002")
STATIC_PLACEHOLDER = "/srv/chatsio/static"
PATH_DIRECTIVES = (
    "pid",
    "error_log",
    "access_log",
    "client_body_temp_path",
    "proxy_temp_path",
    "fastcgi_temp_path",
    "uwsgi_temp_path",
    "scgi_temp_path",
)

START_TIMEOUT = 20.0  # a node: from spawn to a healthy /api/health
STOP_TIMEOUT = 15.0  # a node or nginx: from its stop signal to exit
FILE_TIMEOUT = 30.0  # 5 MiB, base64 over long-polling, through nginx
FILE_LIMIT = 5 * 2**20  # CHATSIO_MAX_FILE_BYTES' default
SECURITY_HEADERS = {name: [value] for name, value in HEADERS.items()}


class Child:
    """A child process whose output goes to a log file in tmp_path."""

    def __init__(self, name: str, log: Path, stop_signal: int) -> None:
        self.name = name
        self.log = log
        self.stop_signal = stop_signal
        self.proc: asyncio.subprocess.Process | None = None
        self.stopped_in_time = True

    async def spawn(self, *argv: str, env: dict[str, str] | None = None) -> None:
        with self.log.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                *argv, stdout=out, stderr=out, env=env, cwd=self.log.parent
            )

    def alive(self) -> bool:
        if self.proc is None or self.proc.returncode is not None:
            raise RuntimeError(f"{self.name} exited:\n{self.text()}")
        return True

    async def stop(self) -> None:
        """Send the stop signal and wait, bounded; kill it if that runs out."""
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.send_signal(self.stop_signal)
        try:
            await asyncio.wait_for(self.proc.wait(), STOP_TIMEOUT)
        except TimeoutError:
            self.stopped_in_time = False
            self.proc.kill()
            await self.proc.wait()

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


async def get(url: str, **kwargs) -> tuple[int, bytes]:
    timeout = aiohttp.ClientTimeout(total=TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        async with http.get(url, **kwargs) as response:
            return response.status, await response.read()


async def fetch(url: str) -> tuple[int, CIMultiDictProxy[str], bytes]:
    timeout = aiohttp.ClientTimeout(total=TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        async with http.get(url) as response:
            return response.status, response.headers, await response.read()


def security_headers(headers: CIMultiDictProxy[str]) -> dict[str, list[str]]:
    """Every value of each security header chatsio sets (a repeat shows)."""
    return {name: headers.getall(name, []) for name in SECURITY_HEADERS}


async def answers_200(url: str) -> bool:
    try:
        status, _ = await get(url)
    except (aiohttp.ClientError, TimeoutError):
        return False
    return status == 200


class Node(Child):
    """One ``chatsio serve`` process on a free port."""

    def __init__(self, name: str, directory: Path) -> None:
        super().__init__(name, directory / f"{name}.log", signal.SIGTERM)
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.address}"

    async def start(self, database_url: str) -> None:
        env = {
            "PATH": os.environ.get("PATH", ""),
            "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1",
            "DATABASE_URL": database_url,
            "REDIS_URL": REDIS_URL,
        }
        await self.spawn(
            sys.executable, "-m", "chatsio", "serve",
            "--host", "127.0.0.1", "--port", str(self.port),
            env=env,
        )  # fmt: skip

        async def healthy() -> bool:
            return self.alive() and await answers_200(self.url + "/api/health")

        await wait_until(healthy, within=START_TIMEOUT)

    async def control_sockets(self) -> float:
        """This node's ``chatsio_connected_sockets`` on /control."""
        status, body = await get(self.url + "/metrics")
        assert status == 200
        for line in body.decode().splitlines():
            if line.startswith('chatsio_connected_sockets{namespace="/control"}'):
                return float(line.split()[-1])
        return 0.0


def one(pattern: str, replacement: str, text: str) -> str:
    """Replace the one line ``pattern`` matches; fail if it is not exactly one."""
    text, count = re.subn(pattern, lambda m: m[1] + replacement, text, flags=re.M)
    assert count == 1, f"deploy/nginx.conf: {pattern!r} matched {count} times"
    return text


def render_config(
    prefix: Path, port: int, nodes: list[Node], static: Path
) -> tuple[Path, dict[str, Path]]:
    """deploy/nginx.conf with this machine's port, nodes, static root and paths."""
    text = CONF.read_text()
    text = one(r"^(\s*)listen\s+[^;]+;", f"listen 127.0.0.1:{port};", text)
    # Workers must reach tmp_path, which pytest creates 0700 for its owner; when
    # the test runs unprivileged nginx ignores `user` (with a warning), so drop it.
    user = "user root;" if os.geteuid() == 0 else ""
    text = one(r"^(\s*)user\s+[^;]+;", user, text)
    for example, node in zip(EXAMPLE_NODES, nodes, strict=True):
        assert text.count(f"server {example};") == 1, example
        text = text.replace(f"server {example};", f"server {node.address};")
    assert STATIC_PLACEHOLDER in text
    text = text.replace(STATIC_PLACEHOLDER, str(static))
    paths = {}
    for directive in PATH_DIRECTIVES:
        paths[directive] = prefix / directive
        text = one(rf"^(\s*{directive})\s+[^\s;]+", f" {paths[directive]}", text)
    conf = prefix / "nginx.conf"
    conf.write_text(text)
    return conf, paths


def static_root(tmp_path: Path) -> Path:
    """The repository's static/; a stand-in while static/index.html is missing."""
    if (REPO_STATIC / "index.html").is_file():
        return REPO_STATIC
    stand_in = tmp_path / "static"
    (stand_in / "js").mkdir(parents=True)
    (stand_in / "index.html").write_text("<!doctype html><title>chatsio</title>\n")
    (stand_in / "js" / "app.js").write_text("console.log('chatsio');\n")
    return stand_in


def a_static_file(static: Path) -> Path:
    """Some file under static/ besides index.html (node_modules left out)."""
    files = sorted(
        path
        for path in static.rglob("*")
        if path.is_file()
        and path.name != "index.html"
        and "node_modules" not in path.relative_to(static).parts
    )
    return files[0] if files else static / "index.html"


def find_nginx() -> str:
    if not Path(NGINX).is_file():
        unavailable(f"nginx at {NGINX}", "not installed: apt-get install -y nginx")
    return NGINX


async def require_redis() -> None:
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(REDIS_HOST, REDIS_PORT), TIMEOUT
        )
    except (OSError, TimeoutError) as exc:
        unavailable(f"Redis at {REDIS_URL}", str(exc) or type(exc).__name__)
    writer.close()
    await writer.wait_closed()


async def register(url: str, name: str) -> str:
    """Register ``name`` through ``url`` and return a token for it."""
    credentials = {"username": name, "password": PASSWORD}
    timeout = aiohttp.ClientTimeout(total=TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        async with http.post(url + "/api/users", json=credentials) as response:
            assert response.status == 201, await response.text()
        async with http.post(url + "/api/tokens", json=credentials) as response:
            assert response.status == 200, await response.text()
            return (await response.json())["token"]


async def device(url: str, token: str, transport: str, **connect) -> Peer:
    """A client on ``url`` using only ``transport``; /control's welcome taken."""
    client = socketio.AsyncClient(reconnection=False)
    peer = Peer(client)
    client.on("*", peer.record, namespace="*")
    await asyncio.wait_for(
        client.connect(
            url,
            auth={"token": token},
            namespaces=[CONTROL, CHAT],
            transports=[transport],
            wait_timeout=TIMEOUT,
            **connect,
        ),
        2 * TIMEOUT,
    )
    assert client.transport() == transport
    await peer.next(CONTROL, "welcome")
    return peer


async def close(peer: Peer) -> None:
    """Disconnect, bounded. A polling client's clean disconnect takes ~25 s."""
    if peer.client.transport() == "polling":
        closing = peer.client.eio.disconnect(abort=True)
    else:
        closing = peer.client.disconnect()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(closing, TIMEOUT)


async def says(sender: Peer, chat_id: str, text: str, *receivers: Peer) -> None:
    """``sender`` sends ``text``; every receiver gets it live."""
    payload = {"id": chat_id, "kind": "message", "text": text}
    ack = await sender.call(CHAT, "notify", payload)
    assert ack["ok"], ack
    for receiver in receivers:
        message = await receiver.next(CHAT, "notify")
        assert (message["id"], message["seq"], message["text"]) == (
            chat_id,
            ack["message"]["seq"],
            text,
        )


def upstreams(access_log: Path, marker: str) -> list[str]:
    """The upstream= field of every access-log line containing ``marker``."""
    return [
        line.rsplit("upstream=", 1)[1].split()[0]
        for line in access_log.read_text().splitlines()
        if marker in line
    ]


# python-engineio's polling client POSTs the 5 MiB file as one bytes body, for
# which aiohttp warns; as an error (filterwarnings = error) the warning would
# kill the client's write task silently and the upload would never leave.
@pytest.mark.filterwarnings("ignore:Sending a large body directly:ResourceWarning")
async def test_nginx_config_fronts_two_nodes(postgres_url: str, tmp_path: Path):
    nginx_bin = find_nginx()
    await require_redis()
    static = static_root(tmp_path)
    nodes = [Node("node1", tmp_path), Node("node2", tmp_path)]
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    port = free_port()
    proxy = f"http://127.0.0.1:{port}"
    conf, paths = render_config(prefix, port, nodes, static)
    nginx = Child("nginx", prefix / "stderr.log", signal.SIGQUIT)
    children = [*nodes, nginx]
    try:
        async with contextlib.AsyncExitStack() as stack:
            for child in children:
                stack.push_async_callback(child.stop)
            await asyncio.gather(*(node.start(postgres_url) for node in nodes))
            await nginx.spawn(
                nginx_bin, "-p", f"{prefix}/", "-c", str(conf),
                "-e", str(paths["error_log"]), "-g", "daemon off;",
            )  # fmt: skip

            async def proxied() -> bool:
                return nginx.alive() and await answers_200(proxy + "/api/health")

            await wait_until(proxied, within=START_TIMEOUT)
            await check_through_nginx(proxy, nodes, static, paths, stack)
    except BaseException:
        for child in children:
            print(f"----- {child.name} -----\n{child.text()}")
        if paths["error_log"].exists():
            print(f"----- nginx error_log -----\n{paths['error_log'].read_text()}")
        raise
    for child in children:
        assert child.stopped_in_time, f"{child.name} ignored its stop signal"


async def check_through_nginx(
    proxy: str,
    nodes: list[Node],
    static: Path,
    paths: dict[str, Path],
    stack: contextlib.AsyncExitStack,
) -> None:
    access_log = paths["access_log"]

    # Both nodes share Redis; the health check says so through nginx.
    status, body = await get(proxy + "/api/health")
    assert status == 200 and json.loads(body)["redis"] == "ok", body

    # Static files come from disk, not from a node (no upstream in the log),
    # with the security headers a node's own responses carry, 404s included.
    page = a_static_file(static)
    missing = static / "no-such-file.js"
    for path, file in (
        ("/", static / "index.html"),
        ("/static/", page),
        ("/static/", missing),
    ):
        if path == "/static/":
            path += file.relative_to(static).as_posix()
        status, headers, body = await fetch(proxy + path)
        if file.exists():
            assert status == 200 and body == file.read_bytes(), path
        else:
            assert status == 404, path
        assert security_headers(headers) == SECURITY_HEADERS, path
        # nginx writes the log line just after the reply: wait for it.
        marker = f"GET {path} "
        await wait_until(lambda m=marker: upstreams(access_log, m), within=TIMEOUT)
        assert upstreams(access_log, marker) == ["-"], path

    # What the nodes answer passes through with their headers, not twice.
    status, headers, _ = await fetch(proxy + "/api/health")
    assert security_headers(headers) == SECURITY_HEADERS

    # The same-origin check sees the browser's host through the proxy, and a
    # client cannot forge X-Forwarded-Host past nginx.
    handshake = proxy + "/socket.io/?EIO=4&transport=polling"
    status, body = await get(handshake, headers={"Origin": proxy})
    assert status == 200 and body.startswith(b"0{"), body
    forged = {"Origin": "http://evil.example", "X-Forwarded-Host": "evil.example"}
    status, _ = await get(handshake, headers=forged)
    assert status == 400

    status, body = await get(proxy + "/metrics")
    assert status == 200 and b"chatsio_connected_sockets" in body

    tag = uuid.uuid4().hex[:8]
    names = [f"ngx_{who}_{tag}" for who in ("poll", "ws", "direct")]
    tokens = [await register(proxy, name) for name in names]

    # Two browsers through nginx (page origin = the proxy): one long-polling
    # only, one WebSocket only. ip_hash pins both (same address) to one node.
    polling = await device(proxy, tokens[0], "polling", headers={"Origin": proxy})
    stack.push_async_callback(close, polling)
    websocket = await device(proxy, tokens[1], "websocket", headers={"Origin": proxy})
    stack.push_async_callback(close, websocket)

    async def settled() -> bool:
        counts = [await node.control_sockets() for node in nodes]
        return sorted(counts) == [0.0, 2.0]

    await wait_until(settled, within=TIMEOUT)
    counts = [await node.control_sockets() for node in nodes]
    behind, other = (nodes[0], nodes[1]) if counts[0] else (nodes[1], nodes[0])

    # A third device straight on the other node: traffic must cross Redis.
    direct = await device(other.url, tokens[2], "websocket")
    stack.push_async_callback(close, direct)

    ack = await polling.call(CONTROL, "start", {"members": names[1:]})
    assert ack["ok"], ack
    chat_id = ack["chat"]["id"]
    for peer in (websocket, direct):
        assert (await peer.next(CONTROL, "invite"))["chat"]["id"] == chat_id
    for peer in (polling, websocket, direct):
        assert (await peer.call(CHAT, "join", {"id": chat_id}))["ok"]

    await says(polling, chat_id, "from long-polling", websocket, direct)
    await says(websocket, chat_id, "from websocket", polling, direct)
    await says(direct, chat_id, "from the other node", polling, websocket)

    # A file at the limit fits client_max_body_size over polling (base64).
    data = os.urandom(FILE_LIMIT)
    upload = {"id": chat_id, "name": "big.bin", "type": "application/octet-stream"}
    ack = await polling.client.call(
        "file",
        {**upload, "data": data},
        namespace=CHAT,
        timeout=FILE_TIMEOUT,
    )
    assert ack["ok"], ack
    for peer in (websocket, direct):
        announced = await peer.next(CHAT, "notify")
        assert announced["kind"] == "file" and announced["file"]["size"] == FILE_LIMIT

    # Every Socket.IO request through nginx, polling's many included, went to
    # the one node ip_hash chose.
    assert len(upstreams(access_log, "transport=polling")) >= 3
    assert set(upstreams(access_log, "/socket.io/")) == {behind.address}
