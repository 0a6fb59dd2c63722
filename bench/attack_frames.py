"""Attack frames: huge frames from clients with no token (issue 15, Critical).

Three WebSockets that never connect a namespace each send one 6.9 MB text
frame, ``42/chat,["x",[{"a":1},... x862,000],"\\ud800"]``: just under the
Engine.IO buffer, and refused by orjson at its last character. Before the fix
each was decoded twice (1.3-1.9 s of CPU) and another user's round trip went
from 1 ms to over 15 s. Each attacker sends its frame, waits for the server to
close the connection, opens a new one and sends again, for the whole attack.

Meanwhile a real user (``socketio.AsyncClient`` over WebSocket) sends one
acknowledged ``notify`` every 60 ms (inside the default allowance of 20/s)
and times each round trip: in a quiet spell, during the attack, and in the
second after it stops. The attackers run in a process of their own.

Pass: the round trip's p99 during the attack is under 100 ms, and in the
second after it the p99 is back to quiet: under twice the quiet p99, or
10 ms, whichever is larger.

    .venv/bin/python bench/attack_frames.py              # ~20 s
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

import aiohttp
import socketio
from accounts import create_chats, start_with_users, user_names
from common import Workdir, add_server_options, describe_machine, make_server, run
from measure import CpuMeter, Verdict, latency_line

FRAME = '42/chat,["x",[' + ",".join(['{"a":1}'] * 862_000) + '],"\\ud800"]'
PROBE_EVERY = 0.06  # seconds between the user's messages (16/s; allowance 20/s)
CLOSE_WITHIN = 10.0  # an attacker waits this long for the server to close
DURING_P99_MAX = 0.100
QUIET_FLOOR = 0.010


async def attack(url: str, sockets: int, seconds: float) -> None:
    """The attacker process: ``sockets`` loops of open, send, wait for close."""
    until = time.monotonic() + seconds
    sent = closed = 0

    async def one(http: aiohttp.ClientSession) -> None:
        nonlocal sent, closed
        while time.monotonic() < until:
            ws = await http.ws_connect(url + "/socket.io/?EIO=4&transport=websocket")
            await ws.receive()  # the OPEN packet
            await ws.send_str(FRAME)
            sent += 1
            try:
                async with asyncio.timeout(CLOSE_WITHIN):
                    while not (await ws.receive()).type.name.startswith("CLOS"):
                        pass
                closed += 1
            except TimeoutError:
                pass
            await ws.close()

    async with aiohttp.ClientSession() as http:
        await asyncio.gather(*(one(http) for _ in range(sockets)))
    print(
        f"attackers: {sent} frames of {len(FRAME) / 1e6:.1f} MB sent, "
        f"{closed} connections closed by the server",
        flush=True,
    )


async def probe(client: socketio.AsyncClient, chat_id: str, until: float) -> list:
    """(sent at, round trip) of one acknowledged message every PROBE_EVERY s."""
    found = []
    while time.monotonic() < until:
        started = time.monotonic()
        ack = await client.call(
            "notify",
            {"id": chat_id, "kind": "message", "text": "ping"},
            namespace="/chat",
            timeout=60,
        )
        if not ack.get("ok"):
            raise RuntimeError(f"the user's message failed: {ack}")
        found.append((started, time.monotonic() - started))
        await asyncio.sleep(max(0.0, started + PROBE_EVERY - time.monotonic()))
    return found


async def main(args: argparse.Namespace) -> int:
    describe_machine()
    with Workdir("attack", args.keep) as workdir:
        server = make_server(args, workdir)
        attacker = None
        client = socketio.AsyncClient(reconnection=False)
        try:
            user, other = user_names(2)
            tokens = await start_with_users(server, [user, other], args.users_via)
            (chat_id,) = await create_chats(server.url, [[user, other]], tokens)
            await client.connect(
                server.url,
                namespaces=["/chat"],
                transports=["websocket"],
                auth={"token": tokens[user]},
                wait_timeout=10,
            )
            start = time.monotonic() + 0.5
            attack_at = start + args.quiet
            stop_at = attack_at + args.attack
            until = stop_at + args.after
            probing = asyncio.create_task(probe(client, chat_id, until))
            await asyncio.sleep(attack_at - time.monotonic())
            meter = CpuMeter({"server": server.pid})
            meter.start()
            rss_before = server.rss_kib()
            attacker = await asyncio.create_subprocess_exec(
                sys.executable,
                __file__,
                "--attacker",
                server.url,
                str(args.sockets),
                str(args.attack),
            )
            print(f"attack: {args.sockets} sockets for {args.attack:g} s ...")
            await asyncio.wait_for(attacker.wait(), args.attack + CLOSE_WITHIN + 30)
            stopped = time.monotonic()  # the attacker process has exited
            cpu = meter.percent()
            rss_during = server.rss_kib()
            samples = await probing
            return report(
                args, samples, attack_at, stopped, cpu, rss_before, rss_during
            )
        finally:
            if attacker is not None and attacker.returncode is None:
                attacker.kill()
                await attacker.wait()
            await client.disconnect()
            code = server.stop()
            print(f"server stopped (exit code {code}); log: {server.log}")


def report(args, samples, attack_at, stopped, cpu, rss_before, rss_during) -> int:
    quiet = [rt for at, rt in samples if at < attack_at]
    during = [rt for at, rt in samples if attack_at <= at < stopped]
    after = [rt for at, rt in samples if stopped <= at < stopped + 1.0]
    lines = {}
    for name, values in (("quiet", quiet), ("during", during), ("1 s after", after)):
        text, lines[name] = latency_line(values)
        print(f"round trip, {name}: {text}")
    print(
        f"server CPU during the attack: {cpu['server']:.0f} % of a core; RSS "
        f"{rss_before / 1024:.0f} MB before, {rss_during / 1024:.0f} MB after"
    )
    verdict = Verdict()
    p99 = lines["during"]["p99"]
    verdict.check(
        "round trip p99 during the attack < 100 ms",
        f"{p99 * 1000:.1f} ms",
        bool(during) and p99 < DURING_P99_MAX,
    )
    bound = max(2 * lines["quiet"]["p99"], QUIET_FLOOR)
    after_p99 = lines["1 s after"]["p99"]
    verdict.check(
        "back to quiet within 1 s: p99 < max(2 x quiet p99, 10 ms)",
        f"{after_p99 * 1000:.1f} ms against {bound * 1000:.1f} ms",
        bool(after) and after_p99 < bound,
    )
    return verdict.report()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_server_options(parser)
    parser.add_argument("--sockets", type=int, default=3, help="attackers (3)")
    parser.add_argument("--quiet", type=float, default=3.0, help="seconds (3)")
    parser.add_argument("--attack", type=float, default=10.0, help="seconds (10)")
    parser.add_argument("--after", type=float, default=2.0, help="seconds (2)")
    return parser.parse_args()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--attacker"]:
        url, sockets, seconds = sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
        asyncio.run(attack(url, sockets, seconds))
        sys.exit(0)
    arguments = parse_args()
    sys.exit(run(main, arguments, budget=120 + arguments.attack))
