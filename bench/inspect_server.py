"""``chatsio serve``, plus ``GET /bench/internals``: what the server holds.

For ``--inspect`` runs (churn): after every client has gone, the Engine.IO
sessions, the namespaces' connection tables and python-socketio's rooms should
all be empty. Nothing is added to chatsio itself: this script runs the real
``chatsio.cli.main`` and attaches one more route to the app it builds.

    .venv/bin/python bench/inspect_server.py serve --port 8080
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import tracemalloc
from collections import Counter

from aiohttp import web

import chatsio.cli
from chatsio.app import create_app, sio_key


async def internals(request: web.Request) -> web.Response:
    """GET /bench/internals: sizes of the server's per-connection state."""
    sio = request.app[sio_key]
    manager = sio.manager
    rooms = {
        namespace: {
            "rooms": len(by_room),
            "memberships": sum(len(members) for members in by_room.values()),
        }
        for namespace, by_room in manager.rooms.items()
    }
    connections = {
        namespace: len(getattr(handler, "chatsio_connections", {}))
        for namespace, handler in sio.namespace_handlers.items()
    }
    unreachable, garbage = None, []
    if request.query.get("gc"):
        # Keep what a full collection finds unreachable, to tell which objects
        # were only waiting for it (reference cycles), then let them go.
        gc.set_debug(gc.DEBUG_SAVEALL)
        unreachable = gc.collect()
        garbage = Counter(
            f"{type(item).__module__}.{type(item).__qualname__}" for item in gc.garbage
        ).most_common(25)
        gc.set_debug(0)
        gc.garbage.clear()
        gc.collect()
    trimmed = None
    if request.query.get("trim"):
        # Hand the C allocator's free memory back to the system: what RSS
        # keeps after this is memory in use (or pymalloc arenas kept alive
        # by a few live objects), not free space glibc held on to.
        trimmed = bool(ctypes.CDLL("libc.so.6").malloc_trim(0))
    objects = gc.get_objects()
    top = Counter(type(item).__name__ for item in objects).most_common(15)
    return web.json_response(
        {
            "engineio_sessions": len(sio.eio.sockets),
            "environ": len(sio.environ),
            "eio_to_sid": len(manager.eio_to_sid),
            "callbacks": len(manager.callbacks),
            "pending_disconnect": len(manager.pending_disconnect),
            "rooms": rooms,
            "connections": connections,
            "tasks": len(asyncio.all_tasks()),
            "task_kinds": Counter(
                task.get_coro().__qualname__ for task in asyncio.all_tasks()
            ).most_common(8),
            "gc_objects": len(objects),
            "gc_unreachable": unreachable,
            "gc_garbage_types": garbage,
            "gc_counts": gc.get_count(),
            "malloc_trim_released": trimmed,
            "tracemalloc": traced() if request.query.get("trace") else None,
            "top_types": top,
        }
    )


BASELINE: list[tracemalloc.Snapshot] = []


def traced(limit: int = 20) -> dict | None:
    """With PYTHONTRACEMALLOC set: the first call takes a baseline snapshot,
    later ones list the source lines whose allocations grew most since it."""
    if not tracemalloc.is_tracing():
        return None
    snapshot = tracemalloc.take_snapshot().filter_traces(
        (tracemalloc.Filter(False, tracemalloc.__file__),)
    )
    current, peak = tracemalloc.get_traced_memory()
    found = {
        "traced_mib": round(current / 2**20, 2),
        "peak_mib": round(peak / 2**20, 2),
    }
    if not BASELINE:
        BASELINE.append(snapshot)
        return found
    growth = snapshot.compare_to(BASELINE[0], "traceback")
    found["growth"] = [
        {
            "kib": round(stat.size_diff / 1024, 1),
            "count": stat.count_diff,
            "where": [f"{frame.filename}:{frame.lineno}" for frame in stat.traceback],
        }
        for stat in growth[:limit]
    ]
    return found


def create_inspected_app(config):
    app = create_app(config)
    app.router.add_get("/bench/internals", internals)
    return app


if __name__ == "__main__":
    chatsio.cli.create_app = create_inspected_app  # what `serve` calls
    raise SystemExit(chatsio.cli.main())
