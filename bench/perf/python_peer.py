"""The default-settings python-socketio peer of chatsio for bench/perf.

A plain ``socketio.AsyncServer(async_mode="aiohttp")`` with no tuning, serving
the same three events as chatsio (``/control`` start, ``/chat`` join and
notify) with the same ack and message shapes; no storage and no
authentication (any token is accepted). It shows what the library gives
before chatsio adds anything.

    .venv/bin/python bench/perf/python_peer.py --port 8082
"""

from __future__ import annotations

import argparse
import uuid
from datetime import UTC, datetime

import socketio
from aiohttp import web


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def chat_shape(chat_id: str, user: str, members: list) -> dict:
    return {
        "id": chat_id,
        "title": None,
        "members": [user, *members],
        "created_by": user,
        "created_at": now_iso(),
        "active": True,
    }


class Control(socketio.AsyncNamespace):
    def __init__(self, users: dict[str, str]) -> None:
        super().__init__("/control")
        self.users = users

    async def on_connect(self, sid, environ, auth=None):
        user = str((auth or {}).get("token", "anonymous"))[:32]
        self.users[sid] = user
        await self.emit(
            "welcome", {"user": user, "chats": [], "server_time": now_iso()}, to=sid
        )

    def on_disconnect(self, sid, reason=None):
        self.users.pop(sid, None)

    async def on_start(self, sid, payload):
        members = list((payload or {}).get("members", []))
        chat = chat_shape(str(uuid.uuid4()), self.users.get(sid, "?"), members)
        return {"ok": True, "chat": chat}


class Chat(socketio.AsyncNamespace):
    def __init__(self) -> None:
        super().__init__("/chat")
        self.users: dict[str, str] = {}
        self.seqs: dict[str, int] = {}

    async def on_connect(self, sid, environ, auth=None):
        self.users[sid] = str((auth or {}).get("token", "anonymous"))[:32]

    def on_disconnect(self, sid, reason=None):
        self.users.pop(sid, None)

    async def on_join(self, sid, payload):
        chat_id = str((payload or {}).get("id"))
        await self.enter_room(sid, chat_id)
        chat = chat_shape(chat_id, self.users.get(sid, "?"), [])
        return {"ok": True, "chat": chat, "messages": []}

    async def on_notify(self, sid, payload):
        payload = payload or {}
        chat_id = str(payload.get("id"))
        seq = self.seqs.get(chat_id, 0) + 1
        self.seqs[chat_id] = seq
        message = {
            "id": chat_id,
            "seq": seq,
            "kind": "message",
            "text": str(payload.get("text")),
            "sender": self.users.get(sid),
            "ts": now_iso(),
            "client_id": payload.get("client_id"),
            "file": None,
        }
        await self.emit("notify", message, room=chat_id, skip_sid=sid)
        return {"ok": True, "message": message}


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def create_app() -> web.Application:
    sio = socketio.AsyncServer(async_mode="aiohttp")
    sio.register_namespace(Control({}))
    sio.register_namespace(Chat())
    app = web.Application()
    sio.attach(app)
    app.router.add_get("/api/health", health)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8082)
    args = parser.parse_args()
    web.run_app(create_app(), host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()
