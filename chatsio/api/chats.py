"""REST: the caller, chats and their messages."""

from __future__ import annotations

from aiohttp import web

from chatsio.api.auth import caller
from chatsio.api.errors import read_json
from chatsio.api.keys import services_key
from chatsio.schemas import (
    chat_out,
    chat_ref_in,
    load,
    message_in,
    message_out,
    messages_query,
    read_mark_in,
    start_in,
)

routes = web.RouteTableDef()


def chat_id_of(request: web.Request) -> str:
    return load(chat_ref_in, {"id": request.match_info["id"]})["id"]


@routes.get("/api/me")
async def me(request: web.Request) -> web.Response:
    """The caller's name and role"""
    user = await caller(request)
    is_admin = await request.app[services_key].identity.is_admin(user)
    return web.json_response({"username": user, "is_admin": is_admin})


@routes.get("/api/chats")
async def list_chats(request: web.Request) -> web.Response:
    """The caller's chats, active first"""
    chats = await request.app[services_key].chats.of_user(await caller(request))
    return web.json_response(chat_out.dump(chats, many=True))


@routes.post("/api/chats")
async def start_chat(request: web.Request) -> web.Response:
    """Start a chat: the same as /control start"""
    user = await caller(request)
    body = load(start_in, await read_json(request))
    started = await request.app[services_key].chats.start(
        user, body["members"], body["title"]
    )
    return web.json_response(chat_out.dump(started.chat), status=201)


@routes.get("/api/chats/{id}")
async def get_chat(request: web.Request) -> web.Response:
    """One chat, for its members"""
    user = await caller(request)
    chat = await request.app[services_key].chats.get(user, chat_id_of(request))
    return web.json_response(chat_out.dump(chat))


@routes.delete("/api/chats/{id}")
async def end_chat(request: web.Request) -> web.Response:
    """End a chat: the same as /control terminate"""
    user = await caller(request)
    await request.app[services_key].chats.terminate(user, chat_id_of(request))
    return web.Response(status=204)


@routes.delete("/api/chats/{id}/members/me")
async def leave_chat(request: web.Request) -> web.Response:
    """Leave a chat for good: the same as /control leave"""
    user = await caller(request)
    await request.app[services_key].chats.leave(user, chat_id_of(request))
    return web.Response(status=204)


@routes.post("/api/chats/{id}/read")
async def read_chat(request: web.Request) -> web.Response:
    """Move the caller's read mark forward: the same as /chat read"""
    user = await caller(request)
    chat_id = chat_id_of(request)
    body = load(read_mark_in, await read_json(request))
    mark = await request.app[services_key].reads.read(user, chat_id, body["seq"])
    return web.json_response({"read_seq": mark})


@routes.get("/api/chats/{id}/messages")
async def list_messages(request: web.Request) -> web.Response:
    """A page of a chat's messages, oldest first"""
    user = await caller(request)
    chat_id = chat_id_of(request)
    query = load(messages_query, dict(request.query))
    messages = request.app[services_key].messages
    if "after" in query:
        page = await messages.after(
            user,
            chat_id,
            after=query["after"],
            before=query.get("before"),
            limit=query["limit"],
        )
    else:
        page = await messages.history(
            user, chat_id, before=query.get("before"), limit=query["limit"]
        )
    return web.json_response(message_out.dump(page, many=True))


@routes.post("/api/chats/{id}/messages")
async def post_message(request: web.Request) -> web.Response:
    """Post a message to everyone in the chat's room"""
    user = await caller(request)
    chat_id = chat_id_of(request)
    body = load(message_in, await read_json(request))
    message = await request.app[services_key].messages.post(
        user, chat_id, body["text"], body["client_id"]
    )
    return web.json_response(message_out.dump(message), status=201)
