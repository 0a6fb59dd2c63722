"""Every library internal chatsio touches, named once (issue 17, item 2).

``tests/test_upstream_contract.py`` checks each entry against the installed
libraries, without Redis or a server. The kinds:

- OVERRIDE: a library method or class attribute a chatsio subclass redefines;
- READ: a private or undocumented member chatsio reads or calls;
- REPLACED: a library member chatsio assigns, on an instance or in its state;
- COPIED: a library routine chatsio copied and changed. ``hashes`` holds the
  source hashes (see the test's ``source_hash``) of the upstream versions
  someone compared the copy with: when upstream changes the routine, re-read
  the copy, then add the new hash;
- ADDED: a member chatsio plants on a library object, which the library must
  not have (an upstream one of that name would be silently clobbered).

An entry's ``upstream`` is a dotted path. ``params`` is the signature chatsio
expects, without defaults or annotations. ``on_instance``: checked on a real
instance of the class the path names, rather than on the class. ``key``: a key
of the dict the upstream function returns. ``uses``: names the upstream
routine must still use, for contracts no signature shows (who calls what).
``value``: what the member must equal.
"""

from __future__ import annotations

from dataclasses import dataclass

OVERRIDE = "override"
READ = "read"
REPLACED = "replaced"
COPIED = "copied"
ADDED = "added"


@dataclass(frozen=True)
class Internal:
    upstream: str
    kind: str
    needed_by: str  # "chatsio/<path>.py <qualname>": the code that relies on it
    params: str | None = None
    on_instance: bool = False
    key: str | None = None
    uses: tuple[str, ...] = ()
    value: object = None
    hashes: frozenset[str] = frozenset()

    @property
    def name(self) -> str:
        """How the report and the failure messages name it."""
        if self.key is not None:
            return f"{self.upstream}()[{self.key!r}]"
        if self.params is not None:
            return f"{self.upstream}{self.params}"
        return self.upstream


SERVER = "chatsio/transport/server.py"
ENGINE = "chatsio/transport/engine.py"
WEBSOCKET = "chatsio/transport/websocket.py"
FANOUT = "chatsio/transport/fanout.py"
BUS = "chatsio/transport/bus.py"
CLUSTER = "chatsio/transport/cluster.py"
REDIS_CLIENTS = "chatsio/transport/redis_clients.py"
SIO = "socketio.AsyncServer"
EIO = "engineio.AsyncServer"
EIO_SOCKET = "engineio.async_socket.AsyncSocket"
DRIVER = "engineio.async_drivers.aiohttp"
MANAGER = "socketio.AsyncManager"
REDIS_MANAGER = "socketio.AsyncRedisManager"


def override(upstream: str, params: str | None, needed_by: str) -> Internal:
    return Internal(upstream, OVERRIDE, needed_by, params=params)


def read(upstream: str, needed_by: str, **kwargs) -> Internal:
    return Internal(upstream, READ, needed_by, **kwargs)


def replaced(upstream: str, needed_by: str, **kwargs) -> Internal:
    return Internal(upstream, REPLACED, needed_by, **kwargs)


def copied(upstream: str, params: str, needed_by: str, *hashes: str) -> Internal:
    return Internal(
        upstream, COPIED, needed_by, params=params, hashes=frozenset(hashes)
    )


def added(upstream: str, needed_by: str) -> Internal:
    return Internal(upstream, ADDED, needed_by, on_instance=True)


OVERRIDES = [
    # python-socketio's server
    override(
        f"{SIO}.__init__",
        "(self, client_manager, logger, json, async_handlers, namespaces, **kwargs)",
        f"{SERVER} ChatsioServer.__init__",
    ),
    override(
        f"{SIO}._engineio_server_class",
        "(self)",
        f"{SERVER} ChatsioServer._engineio_server_class",
    ),
    override(
        f"{SIO}._send_packet",
        "(self, eio_sid, pkt)",
        f"{SERVER} ChatsioServer._send_packet",
    ),
    override(
        f"{SIO}._handle_eio_disconnect",
        "(self, eio_sid, reason)",
        f"{SERVER} ChatsioServer._handle_eio_disconnect",
    ),
    override(
        f"{SIO}._handle_eio_connect",
        "(self, eio_sid, environ)",
        f"{SERVER} ChatsioServer._handle_eio_connect",
    ),
    override(
        f"{SIO}._handle_event",
        "(self, eio_sid, namespace, id, data)",
        f"{SERVER} ChatsioServer._handle_event",
    ),
    override(
        f"{SIO}._handle_eio_message",
        "(self, eio_sid, data)",
        f"{SERVER} ChatsioServer._handle_eio_message",
    ),
    override(
        f"{SIO}._handle_connect",
        "(self, eio_sid, namespace, data)",
        f"{SERVER} ChatsioServer._handle_connect",
    ),
    override("socketio.packet.Packet.json", None, f"{SERVER} ChatsioPacket.json"),
    # python-engineio's server
    override(
        f"{EIO}.__init__",
        "(self, async_mode, ping_interval, ping_timeout, max_http_buffer_size, "
        "allow_upgrades, http_compression, compression_threshold, cookie, "
        "cors_allowed_origins, cors_credentials, logger, json, async_handlers, "
        "monitor_clients, transports, **kwargs)",
        f"{ENGINE} ChatsioEngine.__init__",
    ),
    override(
        f"{EIO}.handle_request",
        "(self, *args, **kwargs)",
        f"{ENGINE} ChatsioEngine.handle_request",
    ),
    override(
        f"{EIO}.start_background_task",
        "(self, target, *args, **kwargs)",
        f"{ENGINE} ChatsioEngine.start_background_task",
    ),
    override(f"{EIO}._service_task", "(self)", f"{ENGINE} ChatsioEngine._service_task"),
    override(
        f"{EIO}._trigger_event",
        "(self, event, *args, **kwargs)",
        f"{ENGINE} ChatsioEngine._trigger_event",
    ),
    override(
        f"{EIO}._log_error_once",
        "(self, message, message_key)",
        f"{ENGINE} ChatsioEngine._log_error_once",
    ),
    override(
        f"{EIO}.create_queue",
        "(self, *args, **kwargs)",
        f"{ENGINE} ChatsioEngine.create_queue",
    ),
    override(f"{EIO}.disconnect", "(self, sid)", f"{ENGINE} ChatsioEngine.disconnect"),
    override(
        f"{EIO}.send_packet", "(self, sid, pkt)", f"{ENGINE} ChatsioEngine.send_packet"
    ),
    # the socket's send queue
    override(
        "asyncio.Queue.__init__", "(self, maxsize)", f"{ENGINE} SendQueue.__init__"
    ),
    override("asyncio.Queue.get", "(self)", f"{ENGINE} SendQueue.get"),
    # the aiohttp driver's WebSocket
    override(
        f"{DRIVER}.WebSocket.__call__",
        "(self, environ)",
        f"{WEBSOCKET} BoundedWebSocket.__call__",
    ),
    override(
        f"{DRIVER}.WebSocket.wait", "(self)", f"{WEBSOCKET} BoundedWebSocket.wait"
    ),
    override(
        f"{DRIVER}.WebSocket.send",
        "(self, message)",
        f"{WEBSOCKET} BoundedWebSocket.send",
    ),
    # the managers
    override(
        f"{MANAGER}.emit",
        "(self, event, data, namespace, room, skip_sid, callback, to, **kwargs)",
        f"{FANOUT} DirectFanout.emit",
    ),
    override(f"{MANAGER}.__init__", "(self)", f"{CLUSTER} ClusterFanout.__init__"),
    override(
        f"{MANAGER}.close_room",
        "(self, room, namespace)",
        f"{CLUSTER} ClusterFanout.close_room",
    ),
    override(
        f"{MANAGER}.basic_leave_room",
        "(self, sid, namespace, room)",
        f"{CLUSTER} ClusterFanout.basic_leave_room",
    ),
    override(
        f"{MANAGER}.enter_room",
        "(self, sid, namespace, room, eio_sid)",
        f"{CLUSTER} ClusterFanout.enter_room",
    ),
    # the namespaces
    override(
        "socketio.AsyncNamespace.__init__",
        "(self, namespace)",
        "chatsio/sockets/base.py BaseNamespace.__init__",
    ),
    override(
        "socketio.AsyncNamespace.trigger_event",
        "(self, event, *args)",
        "chatsio/sockets/base.py BaseNamespace.trigger_event",
    ),
    # marshmallow's documented extension point, named as private
    override(
        "marshmallow.fields.Field._deserialize",
        "(self, value, attr, data, **kwargs)",
        "chatsio/schemas.py Text._deserialize",
    ),
]

READS = [
    # python-socketio's server state
    read(
        f"{SIO}._binary_packet",
        f"{SERVER} ChatsioServer._handle_eio_message",
        on_instance=True,
    ),
    read(f"{SIO}.handlers", f"{SERVER} ChatsioServer._handle_event", on_instance=True),
    read(
        f"{SIO}.namespace_handlers",
        f"{SERVER} ChatsioServer._handle_event",
        on_instance=True,
    ),
    read(
        f"{SIO}.async_handlers",
        f"{SERVER} ChatsioServer._handle_event",
        on_instance=True,
    ),
    read(
        f"{SIO}.packet_class",
        f"{SERVER} ChatsioServer._handle_eio_message",
        on_instance=True,
    ),
    read(
        f"{SIO}._send_eio_packet",
        f"{FANOUT} DirectFanout.emit",
        params="(self, eio_sid, eio_pkt)",
    ),
    # python-socketio's packets, decoded by chatsio before the library does
    read(
        "socketio.packet.Packet.__init__",
        f"{SERVER} ChatsioServer._chatsio_take_header",
        params="(self, packet_type, data, namespace, id, binary, encoded_packet)",
    ),
    *(
        read(
            f"socketio.packet.Packet.{member}",
            f"{SERVER} ChatsioServer._chatsio_take_header",
            on_instance=True,
        )
        for member in ("attachment_count", "packet_type", "namespace", "id", "data")
    ),
    # the manager's rooms: {namespace: {room: bidict(sid -> eio_sid)}}
    read(
        f"{MANAGER}.rooms",
        "chatsio/sockets/emitter.py MeteredEmitter.local_recipients",
        on_instance=True,
    ),
    read(
        "bidict.bidict._fwdm",
        f"{FANOUT} DirectFanout.chatsio_participants",
        on_instance=True,
    ),
    read(f"{MANAGER}.server", f"{FANOUT} DirectFanout.emit", on_instance=True),
    read(
        f"{MANAGER}.sid_from_eio_sid",
        f"{SERVER} ChatsioServer._handle_connect",
        params="(self, eio_sid, namespace)",
    ),
    read(
        f"{MANAGER}.is_connected",
        f"{SERVER} ChatsioServer._chatsio_handle_namespace_event",
        params="(self, sid, namespace)",
    ),
    read(
        f"{MANAGER}.get_namespaces",
        f"{SERVER} ChatsioServer._chatsio_expel_if_anonymous",
        params="(self)",
    ),
    read(
        f"{MANAGER}.basic_leave_room",
        f"{FANOUT} DirectFanout.chatsio_evict",
        params="(self, sid, namespace, room)",
    ),
    read(
        f"{MANAGER}.get_participants",
        f"{FANOUT} DirectFanout.chatsio_participants",
        params="(self, namespace, room)",
    ),
    # python-socketio's pub/sub wire format, spoken by the bus and the cluster
    read(
        "socketio.packet.Packet.deconstruct_binary",
        f"{CLUSTER} emit_message",
        params="(data)",
    ),
    read(
        "socketio.packet.Packet.reconstruct_binary",
        f"{CLUSTER} emitted_data",
        params="(data, attachments)",
    ),
    read(
        "socketio.redis_manager.parse_redis_sentinel_url",
        f"{REDIS_CLIENTS} RedisTarget.client",
        params="(url)",
    ),
    read(
        "redis.connection.parse_url",
        f"{REDIS_CLIENTS} RedisTarget.database",
        params="(url)",
    ),
    read("redis.asyncio.sentinel.Sentinel", f"{REDIS_CLIENTS} RedisTarget.client"),
    # python-engineio's server
    read(
        f"{EIO}._bad_request",
        f"{WEBSOCKET} BoundedWebSocket.__call__",
        params="(self, message)",
    ),
    *(
        read(f"{EIO}.{member}", f"{ENGINE} ChatsioEngine", on_instance=True)
        for member in ("handlers", "max_http_buffer_size", "ping_timeout", "reason")
    ),
    read(
        f"{EIO}.handle_request",
        f"{ENGINE} ChatsioEngine.__init__",
        params="(self, *args, **kwargs)",
        uses=("_async", "translate_request"),
    ),
    read(
        "socketio.base_server.BaseServer.__init__",
        f"{ENGINE} ChatsioEngine.chatsio_receive_message",
        params="(self, client_manager, logger, serializer, json, async_handlers, "
        "always_connect, namespaces, **kwargs)",
        uses=("on", "message", "_handle_eio_message"),
    ),
    # python-engineio's socket
    *(
        read(
            f"{EIO_SOCKET}.{member}",
            f"{ENGINE} ChatsioEngine.chatsio_write_now",
            on_instance=True,
        )
        for member in ("closing", "closed", "queue", "sid")
    ),
    read(
        f"{EIO_SOCKET}.receive",
        f"{WEBSOCKET} BoundedWebSocket._chatsio_read_packets",
        params="(self, pkt)",
    ),
    read(
        f"{EIO_SOCKET}.poll",
        f"{WEBSOCKET} BoundedWebSocket._chatsio_write_queued",
        params="(self)",
        uses=("queue", "get", "task_done"),
    ),
    read(
        f"{EIO_SOCKET}.close",
        f"{ENGINE} ChatsioEngine.chatsio_expel",
        params="(self, wait, abort, reason)",
        uses=("join",),
    ),
    read(
        f"{EIO_SOCKET}.check_ping_timeout",
        f"{ENGINE} ChatsioEngine._chatsio_check_socket",
        params="(self)",
    ),
    read(
        f"{EIO_SOCKET}._send_ping",
        f"{ENGINE} ChatsioEngine.start_background_task",
        params="(self)",
    ),
    read(
        f"{EIO_SOCKET}.schedule_ping",
        f"{ENGINE} ChatsioEngine.start_background_task",
        params="(self)",
        uses=("start_background_task", "_send_ping"),
    ),
    read(
        f"{EIO_SOCKET}._upgrade_websocket",
        f"{WEBSOCKET} BoundedWebSocket.__call__",
        params="(self, environ)",
        uses=("_async", "websocket", "_websocket_handler"),
    ),
    read(
        f"{EIO_SOCKET}.handle_post_request",
        f"{ENGINE} WholeBody.read",
        params="(self, environ)",
        uses=("wsgi.input", "read"),
    ),
    read(
        "engineio.base_socket.BaseSocket.__init__",
        f"{ENGINE} ChatsioEngine.create_queue",
        params="(self, server, sid)",
        uses=("create_queue",),
    ),
    # the aiohttp driver's WebSocket and environ
    read(
        f"{DRIVER}.WebSocket.__init__",
        f"{WEBSOCKET} BoundedWebSocket",
        params="(self, handler, server)",
    ),
    read(
        f"{DRIVER}.WebSocket.close",
        f"{WEBSOCKET} BoundedWebSocket._chatsio_write_queued",
        params="(self)",
    ),
    *(
        read(
            f"{DRIVER}.WebSocket.{member}",
            f"{WEBSOCKET} BoundedWebSocket.__call__",
            on_instance=True,
        )
        for member in ("handler", "server")
    ),
    read(
        f"{DRIVER}.translate_request",
        f"{ENGINE} ChatsioEngine.__init__",
        params="(request)",
    ),
    *(
        read(f"{DRIVER}.translate_request", needed_by, key=key)
        for key, needed_by in (
            ("aiohttp.request", f"{WEBSOCKET} BoundedWebSocket.__call__"),
            ("HTTP_AUTHORIZATION", "chatsio/sockets/base.py token_from"),
        )
    ),
    read(
        "engineio.json.loads",
        "chatsio/transport/fastjson.py loads",
        params="(*args, **kwargs)",
    ),
    read(
        "engineio.packet.Packet.__init__",
        f"{WEBSOCKET} is_packet",
        params="(self, packet_type, data, encoded_packet)",
    ),
    *(
        read(
            f"engineio.exceptions.{name}",
            f"{WEBSOCKET} BoundedWebSocket._chatsio_read_packets",
        )
        for name in ("QueueEmpty", "SocketIsClosedError", "UnknownPacketError")
    ),
    read("engineio.exceptions.EngineIOError", f"{ENGINE} WholeBody.read"),
    # aiohttp
    read(
        "aiohttp.web_runner.AppRunner._make_server",
        "chatsio/api/connections.py guard_connections",
        params="(self)",
        uses=("_make_handler",),
    ),
    read(
        "aiohttp.web_protocol.RequestHandler.connection_made",
        "chatsio/api/connections.py ConnectionGuard.watch",
        params="(self, transport)",
        uses=("_manager", "connection_made"),
    ),
    read(
        "aiohttp.web_protocol.RequestHandler.connection_lost",
        "chatsio/api/connections.py ConnectionGuard.watch",
        params="(self, exc)",
        uses=("_manager", "connection_lost"),
    ),
    read(
        "aiohttp.streams.StreamReader.total_bytes",
        "chatsio/api/connections.py ConnectionGuard.sweep",
    ),
    read(
        "aiohttp.http_exceptions.HttpProcessingError",
        "chatsio/api/errors.py MalformedRequestsAsInfo.filter",
    ),
    read(
        "aiohttp.log.server_logger.name",
        "chatsio/api/errors.py log_malformed_requests_as_info",
        value="aiohttp.server",
    ),
    # others
    read(
        "prometheus_client.exposition.CONTENT_TYPE_PLAIN_0_0_4",
        "chatsio/metrics.py CONTENT_TYPE",
    ),
    read(
        "sqlalchemy.sql.compiler.SQLCompiler.positiontup",
        "chatsio/storage/append_sql.py DriverStatement.__init__",
        on_instance=True,
    ),
]

REPLACEMENTS = [
    replaced(f"{EIO}._async", f"{ENGINE} ChatsioEngine.__init__", on_instance=True),
    replaced(
        f"{EIO}.sockets", f"{ENGINE} ChatsioEngine.chatsio_expel", on_instance=True
    ),
    replaced(
        f"{EIO}.shutdown",
        f"{ENGINE} ChatsioEngine._service_task",
        params="(self)",
        uses=("service_task_event",),
    ),
    *(
        replaced(
            f"{EIO_SOCKET}.{member}",
            f"{WEBSOCKET} BoundedWebSocket._chatsio_serve",
            on_instance=True,
        )
        for member in ("upgrading", "upgraded", "connected")
    ),
    replaced(f"{EIO_SOCKET}.last_ping", f"{ENGINE} WholeBody.read", on_instance=True),
    replaced(
        f"{DRIVER}.WebSocket._sock",
        f"{WEBSOCKET} BoundedWebSocket.__call__",
        on_instance=True,
    ),
    replaced(
        f"{DRIVER}.WebSocket.__call__",
        f"{WEBSOCKET} BoundedWebSocket.__call__",
        params="(self, environ)",
        uses=("environ",),
    ),
    *(
        replaced(
            f"{DRIVER}.translate_request", f"{ENGINE} ChatsioEngine.__init__", key=key
        )
        for key in ("wsgi.input", "REMOTE_ADDR")
    ),
    replaced(
        "aiohttp.web.Application._make_handler",
        "chatsio/api/connections.py guard_connections",
        params="(self, *, loop, access_log_class, **kwargs)",
    ),
    replaced(
        "aiohttp.web.Server.connection_made",
        "chatsio/api/connections.py ConnectionGuard.watch",
        params="(self, handler, transport)",
    ),
    replaced(
        "aiohttp.web.Server.connection_lost",
        "chatsio/api/connections.py ConnectionGuard.watch",
        params="(self, handler, exc)",
    ),
]

COPIES = [
    copied(
        f"{SIO}._send_packet",
        "(self, eio_sid, pkt)",
        f"{SERVER} ChatsioServer._send_packet",
        "1bc829cccb4c67d9",
    ),
    copied(
        f"{SIO}._handle_event",
        "(self, eio_sid, namespace, id, data)",
        f"{SERVER} ChatsioServer._chatsio_handle_namespace_event",
        "f9d48888b2c4f4b1",
    ),
    copied(
        f"{SIO}._handle_event_internal",
        "(self, server, sid, eio_sid, data, namespace, id)",
        f"{SERVER} ChatsioServer._chatsio_handle_namespace_event",
        "963582a5f821da35",
    ),
    copied(
        f"{SIO}._handle_eio_message",
        "(self, eio_sid, data)",
        f"{SERVER} ChatsioServer._chatsio_take_header",
        "f772a451d918e87a",
    ),
    copied(
        "socketio.packet.Packet.encode",
        "(self)",
        f"{SERVER} encode_text",
        "c0c942925dd5e295",
    ),
    copied(
        "socketio.packet.Packet._reconstruct_binary_internal",
        "(data, attachments)",
        "chatsio/transport/attachments.py placeholders_fit",
        "c426b8b069c5c9db",
    ),
    copied(
        f"{MANAGER}.emit",
        "(self, event, data, namespace, room, skip_sid, callback, to, **kwargs)",
        f"{FANOUT} DirectFanout.emit",
        "73f2199d8288b596",
    ),
    copied(
        f"{MANAGER}.get_participants",
        "(self, namespace, room)",
        f"{FANOUT} DirectFanout.chatsio_participants",
        "ff486d06f687b2d6",
    ),
    copied(
        f"{REDIS_MANAGER}.emit",
        "(self, event, data, namespace, room, skip_sid, callback, to, **kwargs)",
        f"{CLUSTER} emit_message",
        "463fa36235781c98",
    ),
    copied(
        f"{REDIS_MANAGER}._handle_emit",
        "(self, message)",
        f"{CLUSTER} emitted_data",
        "46370549f53198b4",
    ),
    copied(
        f"{REDIS_MANAGER}.close_room",
        "(self, room, namespace)",
        f"{CLUSTER} ClusterFanout.close_room",
        "0bed26bd8c37917d",
    ),
    copied(
        f"{REDIS_MANAGER}.leave_room",
        "(self, sid, namespace, room)",
        f"{CLUSTER} ClusterFanout.chatsio_evict",
        "f2220e0eda5eae51",
        "704ace5ebe2aff3c",  # 5.16.4: no is_pre_connected, the message the same
    ),
    copied(
        f"{REDIS_MANAGER}._thread",
        "(self)",
        f"{CLUSTER} ClusterFanout.chatsio_receive",
        "c13cd40a1791f7d6",
    ),
    copied(
        f"{REDIS_MANAGER}._redis_connect",
        "(self)",
        f"{REDIS_CLIENTS} RedisTarget.client",
        "cae8173d3c3cba60",
    ),
    copied(
        f"{REDIS_MANAGER}._listen",
        "(self)",
        f"{BUS} RedisBus._receive",
        "0a847633273085b7",
    ),
    copied(
        f"{REDIS_MANAGER}._redis_listen_with_retries",
        "(self)",
        f"{BUS} RedisBus._receive",
        "6563d2f6b5aa3d86",
    ),
    copied(
        f"{REDIS_MANAGER}._publish",
        "(self, data)",
        f"{BUS} RedisBus._send",
        "57775544728f8601",
    ),
    copied(
        f"{EIO}._service_task",
        "(self)",
        f"{ENGINE} ChatsioEngine._service_task",
        "cfe0c43d3591614f",
    ),
    copied(
        f"{EIO}._trigger_event",
        "(self, event, *args, **kwargs)",
        f"{ENGINE} ChatsioEngine.chatsio_receive_message",
        "f4dbe0de0fecf870",
    ),
    copied(
        f"{EIO}.disconnect",
        "(self, sid)",
        f"{ENGINE} ChatsioEngine.chatsio_expel",
        "d464eb1f953240c9",
    ),
    copied(
        f"{EIO_SOCKET}.receive",
        "(self, pkt)",
        f"{ENGINE} ChatsioEngine.chatsio_receive_message",
        "88ce7b48e2f00753",
    ),
    copied(
        f"{EIO_SOCKET}._websocket_handler",
        "(self, ws)",
        f"{WEBSOCKET} BoundedWebSocket._chatsio_serve",
        "2822186d44689f3a",
    ),
    copied(
        f"{DRIVER}.WebSocket.__call__",
        "(self, environ)",
        f"{WEBSOCKET} BoundedWebSocket.__call__",
        "a969eeea92fe3ec1",
    ),
    copied(
        f"{DRIVER}.WebSocket.wait",
        "(self)",
        f"{WEBSOCKET} BoundedWebSocket.wait",
        "70bd361b65f49eb7",
    ),
    copied(
        "engineio.json.loads",
        "(*args, **kwargs)",
        "chatsio/transport/fastjson.py loads",
        "101369be3b964e23",
    ),
    copied(
        "engineio.packet.Packet.decode",
        "(self, encoded_packet)",
        f"{WEBSOCKET} is_engineio_packet",
        "5ea36fab260659ac",
    ),
]

ADDITIONS = [
    added(f"{EIO_SOCKET}.chatsio_accepted", f"{ENGINE} ChatsioEngine.chatsio_accepted"),
    added(f"{EIO_SOCKET}.chatsio_websocket", f"{WEBSOCKET} BoundedWebSocket.__call__"),
    added(f"{EIO_SOCKET}.chatsio_receiving", f"{ENGINE} WholeBody.read"),
]

INVENTORY = OVERRIDES + READS + REPLACEMENTS + COPIES + ADDITIONS
