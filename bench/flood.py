"""Flood: one client sends 3,000 events/s while 100 others chat.

100 clients in 10 rooms each send a message every 2 s (50 msgs/s in all,
each delivered to the 9 other members). After a settling spell, a quiet
baseline measures their delivery latency; then one more client floods
``notify`` into its own chat at 3,000 events/s without waiting for acks,
reconnecting at once whenever the server drops it, as a hostile client would
(``--once``: it gives up after the first drop; ``--reconnect-delay``: waits).

The server runs with its real defaults: 20 events/s per socket, bursts of 50,
a flooder disconnected after 100 refused events in a row. The chatters send
0.5 events/s each, far below the allowance, so no setting is changed.

Pass: the chatters' p99 delivery latency during the flood is under 2x the
quiet baseline's p99.

    .venv/bin/python bench/flood.py
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import time
from collections import Counter

import socketio
from accounts import create_chats, start_with_users, user_names
from chatters import Chatters, account
from common import (
    Workdir,
    add_server_options,
    counter_sum,
    describe_machine,
    make_server,
    run,
)
from fleet import Fleet
from measure import CpuMeter, Verdict, latency_line

TICK = 0.005  # the flooder sends in small batches this often
CONNECT_TIMEOUT = 10.0


class Flooder:
    """The flooding client's worker process (see fleet.py)."""

    def __init__(self, index: int, count: int) -> None:
        self.index = index

    async def do_flood(
        self,
        url: str,
        token: str,
        chat_id: str,
        event: str,
        rate: float,
        start_at: float,
        until: float,
        reconnect_delay: float,
        once: bool,
    ) -> dict:
        await asyncio.sleep(max(0.0, start_at - time.monotonic()))
        cpu, wall = time.process_time(), time.monotonic()
        sessions = []
        while time.monotonic() < until:
            sessions.append(await self.session(url, token, chat_id, event, rate, until))
            if once:
                break
            await asyncio.sleep(reconnect_delay)
        return {
            "sessions": sessions,
            "cpu_s": time.process_time() - cpu,
            "wall_s": time.monotonic() - wall,
        }

    async def session(self, url, token, chat_id, event, rate, until) -> dict:
        """Connect once and flood until the server drops us or time is up."""
        client = socketio.AsyncClient(reconnection=False, handle_sigint=False)
        gone = asyncio.Event()
        client.on("disconnect", lambda *_: gone.set(), namespace="/chat")
        acks: Counter[str] = Counter()
        first_refused: list[float] = []
        payload = {"id": chat_id}
        if event == "notify":
            payload.update(kind="message", text="flood")

        def on_ack(reply: dict) -> None:
            code = "ok" if reply.get("ok") else reply["error"]["code"]
            acks[code] += 1
            if code == "rate_limited" and not first_refused:
                first_refused.append(time.monotonic())

        asked = time.monotonic()
        try:
            await client.connect(
                url,
                auth={"token": token},
                namespaces=["/chat"],
                transports=["websocket"],
                wait_timeout=CONNECT_TIMEOUT,
            )
        except Exception as exc:
            await asyncio.sleep(0.1)
            return {"connect_error": repr(exc)[:200]}
        connected = time.monotonic()
        sent = 0
        while not gone.is_set() and time.monotonic() < until:
            due = min(int((time.monotonic() - connected) * rate) - sent, int(rate / 20))
            try:
                for _ in range(due):
                    await client.emit(
                        event, payload, namespace="/chat", callback=on_ack
                    )
                    sent += 1
            except socketio.exceptions.SocketIOError:
                break
            await asyncio.sleep(TICK)
        ended = time.monotonic()
        dropped = gone.is_set() or not client.connected
        try:
            async with asyncio.timeout(5):
                await client.disconnect()
        except Exception:
            pass
        return {
            "connect_s": connected - asked,
            "lasted_s": ended - connected,
            "sent": sent,
            "acks": dict(acks),
            "dropped_by_server": dropped,
            "first_refused_s": first_refused[0] - connected if first_refused else None,
        }

    async def close(self) -> None:
        pass


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--per-room", type=int, default=10)
    parser.add_argument(
        "--interval", type=float, default=2.0, help="s between a chatter's messages"
    )
    parser.add_argument("--settle", type=float, default=10.0, help="s, not measured")
    parser.add_argument("--quiet", type=float, default=30.0, help="s of baseline")
    parser.add_argument("--flood", type=float, default=30.0, help="s of flood")
    parser.add_argument("--after", type=float, default=10.0, help="s after the flood")
    parser.add_argument("--flood-rate", type=float, default=3000.0, help="events/s")
    parser.add_argument("--event", choices=("notify", "typing"), default="notify")
    parser.add_argument(
        "--reconnect-delay",
        type=float,
        default=0.0,
        help="s the flooder waits before reconnecting after being dropped",
    )
    parser.add_argument(
        "--once",
        action="store_true",
        help="the flooder does not come back once the server has dropped it",
    )
    parser.add_argument("--workers", type=int, default=1, help="chatter processes")
    add_server_options(parser)
    return parser.parse_args()


async def main(args: argparse.Namespace) -> int:
    describe_machine()
    with Workdir("flood", args.keep) as workdir:
        server = make_server(args, workdir)
        chatters = Fleet(Chatters, args.workers, "chat")
        flooder = Fleet(Flooder, 1, "flood")
        try:
            return await flood(args, server, chatters, flooder)
        finally:
            chatters.close()
            flooder.close()
            code = server.stop()
            print(f"server stopped (exit code {code}); log: {server.log}")


async def flood(args, server, chatters, flooder) -> int:
    names = user_names(args.clients + 2)
    flooder_name, sink = names[-2:]
    names = names[:-2]
    tokens = await start_with_users(
        server, [*names, flooder_name, sink], args.users_via
    )
    groups = [names[i : i + args.per_room] for i in range(0, len(names), args.per_room)]
    *chat_ids, flood_chat = await create_chats(
        server.url, [*groups, [flooder_name, sink]], tokens
    )
    chat_of = {
        name: chat
        for chat, group in zip(chat_ids, groups, strict=True)
        for name in group
    }
    chatters.start()
    flooder.start()
    members = [(name, tokens[name], chat_of[name]) for name in names]
    replies = await chatters.ask(
        "connect",
        [
            {
                "url": server.url,
                "members": members[i :: chatters.count],
                "concurrency": 20,
            }
            for i in range(chatters.count)
        ],
        within=300,
    )
    connected = [name for reply in replies for name in reply["connected"]]
    rooms: dict[str, list[str]] = {}
    for name in connected:
        rooms.setdefault(chat_of[name], []).append(name)
    print(f"connected {len(connected)}/{len(names)} chatters")

    t0 = time.monotonic() + 1.0
    windows = {"quiet": t0 + args.settle}
    windows["flood"] = windows["quiet"] + args.quiet
    windows["after"] = windows["flood"] + args.flood
    until = windows["after"] + args.after
    before = await server.metrics()
    pids = {"server": server.pid, **chatters.pids, **flooder.pids}
    usage_task = asyncio.create_task(cpu_by_window(pids, windows, until))
    chatting = chatters.ask(
        "chat",
        {
            "start_at": t0,
            "until": until,
            "rate": args.clients / args.interval / chatters.count,
        },
        within=until - time.monotonic() + 120,
    )
    flooding = flooder.ask(
        "flood",
        {
            "url": server.url,
            "token": tokens[flooder_name],
            "chat_id": flood_chat,
            "event": args.event,
            "rate": args.flood_rate,
            "start_at": windows["flood"],
            "until": windows["after"],
            "reconnect_delay": args.reconnect_delay,
            "once": args.once,
        },
        within=until - time.monotonic() + 120,
    )
    print(
        f"chatting {args.clients / args.interval:g} msgs/s: {args.settle:g} s settle, "
        f"{args.quiet:g} s quiet, {args.flood:g} s flood "
        f"({args.flood_rate:g} {args.event}/s), {args.after:g} s after ..."
    )
    sent, (flooded,) = await asyncio.gather(chatting, flooding)
    usage = await usage_task
    await asyncio.sleep(3.0)  # deliveries still on their way
    collected = await chatters.ask("collect", within=120)
    after = await server.metrics()
    return report(
        args,
        server,
        rooms,
        sent,
        collected,
        flooded,
        windows,
        until,
        usage,
        (before, after),
    )


async def cpu_by_window(pids: dict, windows: dict, until: float) -> dict:
    """CPU % of one core used by each process in each window."""
    edges = [*windows.items(), ("end", until)]
    usage = {}
    await asyncio.sleep(max(0.0, edges[0][1] - time.monotonic()))
    for (name, _), (_, end) in itertools.pairwise(edges):
        meter = CpuMeter(pids)
        meter.start()
        await asyncio.sleep(max(0.0, end - time.monotonic()))
        usage[name] = meter.percent()
    return usage


def report(
    args, server, rooms, sent, collected, flooded, windows, until, usage, metrics
) -> int:
    before, after = metrics
    delivery = account(rooms, collected)
    failures = Counter()
    for part in sent:
        failures.update(part["failures"])
    print(
        f"\nchatters: {sum(p['attempted'] for p in sent)} sends, "
        f"{sum(p['acked'] for p in sent)} acked ok, failures {dict(failures) or 'none'}"
    )
    print("delivery:", delivery.line())
    dropped = sum(len(part["dropped"]) for part in collected)
    print(f"chatter connections dropped by the server: {dropped}")

    samples = [pair for part in collected for pair in part["latencies"]]
    edges = [*windows.items(), ("end", until)]
    found = {}
    for (name, start), (_, end) in itertools.pairwise(edges):
        text, found[name] = latency_line(
            lat for at, lat in samples if start <= at < end
        )
        print(f"latency {name:>5}: {text}")
        print(
            "           CPU % of a core: "
            + ", ".join(f"{k} {v:.0f}" for k, v in usage.get(name, {}).items())
        )

    flood_report(flooded, args)
    refused = counter_sum(
        after, "chatsio_events_total", outcome="rate_limited"
    ) - counter_sum(before, "chatsio_events_total", outcome="rate_limited")
    print(
        f"server: {refused:.0f} events answered rate_limited (/metrics); "
        f"{server.log_count('kept flooding')} 'kept flooding' disconnects logged"
    )

    quiet, flood_p99 = found["quiet"]["p99"], found["flood"]["p99"]
    verdict = Verdict()
    verdict.check(
        "p99 under flood < 2 x quiet p99",
        f"{flood_p99 * 1000:.1f} ms vs 2 x {quiet * 1000:.1f} = "
        f"{2 * quiet * 1000:.1f} ms ({flood_p99 / quiet:.2f}x)",
        flood_p99 < 2 * quiet,
    )
    return verdict.report()


def flood_report(flooded: dict, args) -> None:
    sessions = [s for s in flooded["sessions"] if "connect_error" not in s]
    errors = [s["connect_error"] for s in flooded["sessions"] if "connect_error" in s]
    acks: Counter[str] = Counter()
    for session in sessions:
        acks.update(session["acks"])
    sent = sum(s["sent"] for s in sessions)
    wall = flooded["wall_s"]
    print(
        f"flooder: {sent} {args.event} events in {wall:.1f} s ({sent / wall:.0f}/s "
        f"achieved, {100 * flooded['cpu_s'] / wall:.0f}% CPU), acks {dict(acks)}, "
        f"unanswered {sent - sum(acks.values())}"
    )
    dropped = [s for s in sessions if s["dropped_by_server"]]
    print(
        f"flooder sessions: {len(sessions)} connected ({len(errors)} refused: "
        f"{Counter(errors).most_common(2)}), {len(dropped)} dropped by the server"
    )
    if sessions:
        first = sessions[0]
        print(
            f"first session: connected in {first['connect_s'] * 1000:.0f} ms, "
            f"first rate_limited after "
            f"{(first['first_refused_s'] or float('nan')) * 1000:.0f} ms, dropped "
            f"after {first['lasted_s'] * 1000:.0f} ms and {first['sent']} events; "
            f"acks {first['acks']}"
        )
        lasted = sorted(s["lasted_s"] for s in dropped) or [float("nan")]
        print(
            f"sessions lasted {lasted[0] * 1000:.0f}..{lasted[-1] * 1000:.0f} ms "
            f"(median {lasted[len(lasted) // 2] * 1000:.0f} ms) before the drop"
        )


if __name__ == "__main__":
    arguments = parse()
    budget = (
        600 + arguments.settle + arguments.quiet + arguments.flood + arguments.after
    )
    raise SystemExit(run(main, arguments, budget))
