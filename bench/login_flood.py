"""Login flood: 64 clients post wrong passwords while a real user logs in.

Issue 15 found a real login taking 6-12 s (0.18 s quiet) while 64 clients
posted wrong passwords as fast as they could: every attempt queued an Argon2
hash on the default executor. This run starts a real ``chatsio serve`` with
every setting at its default, measures a real user's login (POST /api/tokens,
one after another, every ``--interval`` s) while nothing else happens, then
during two floods, each from its own address:

- ``one``: 64 clients guess passwords for one existing user;
- ``many``: 64 clients guess passwords for ever-changing usernames.

The flooders run in a process of their own, from 127.0.0.1 and 127.0.0.3; the
real user logs in from 127.0.0.2 (on loopback each 127.x address is a
different client). Pass: every real login during each flood succeeds in
under 1 s.

    .venv/bin/python bench/login_flood.py
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import time
from collections import Counter

import aiohttp
from common import (
    HTTP_TIMEOUT,
    PASSWORD,
    Server,
    Workdir,
    add_server_options,
    describe_machine,
    make_server,
    run,
)
from fleet import Fleet
from measure import CpuMeter, Verdict, latency_line

WRONG = "not the password"
USER_ADDRESS = "127.0.0.2"
FLOOD_ADDRESSES = {"one": "127.0.0.1", "many": "127.0.0.3"}
LIMIT = 1.0  # s: the acceptance bound on a real login during a flood


def client_at(address: str) -> aiohttp.ClientSession:
    """An HTTP client whose connections leave from ``address``."""
    connector = aiohttp.TCPConnector(local_addr=(address, 0), limit=0)
    return aiohttp.ClientSession(connector=connector, timeout=HTTP_TIMEOUT)


class Flooder:
    """The flooding worker process (see fleet.py)."""

    def __init__(self, index: int, count: int) -> None:
        self.index = index

    async def do_flood(
        self, url: str, clients: int, seconds: float, target: str | None, address: str
    ) -> dict:
        """``clients`` loops posting wrong passwords for ``seconds``; for
        ``target``, or for a new username each time when it is None."""
        statuses: Counter[int] = Counter()
        cpu, until = time.process_time(), time.monotonic() + seconds

        async def guess(http: aiohttp.ClientSession, client: int) -> None:
            for attempt in itertools.count():
                if time.monotonic() >= until:
                    return
                name = target or f"guess{client}x{attempt}"
                body = {"username": name, "password": WRONG}
                try:
                    async with http.post(url + "/api/tokens", json=body) as response:
                        await response.read()
                        statuses[response.status] += 1
                except aiohttp.ClientError:
                    statuses[0] += 1

        async with client_at(address) as http:
            await asyncio.gather(*(guess(http, n) for n in range(clients)))
        return {
            "statuses": dict(statuses),
            "cpu_s": time.process_time() - cpu,
            "wall_s": seconds,
        }

    async def close(self) -> None:
        pass


async def logins(
    http: aiohttp.ClientSession, url: str, name: str, seconds: float, interval: float
) -> tuple[list[float], Counter[int]]:
    """The real user's logins, one after another, for ``seconds``."""
    took: list[float] = []
    statuses: Counter[int] = Counter()
    body = {"username": name, "password": PASSWORD}
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        started = time.monotonic()
        async with http.post(url + "/api/tokens", json=body) as response:
            await response.read()
            statuses[response.status] += 1
        took.append(time.monotonic() - started)
        await asyncio.sleep(max(0.0, interval - took[-1]))
    return took, statuses


async def register(http: aiohttp.ClientSession, url: str, name: str) -> None:
    body = {"username": name, "password": PASSWORD}
    async with http.post(url + "/api/users", json=body) as response:
        if response.status != 201:
            raise RuntimeError(f"register {name}: {await response.text()}")


async def main(args: argparse.Namespace) -> int:
    describe_machine()
    with Workdir("login-flood", args.keep) as workdir:
        server = make_server(args, workdir)
        flooder = Fleet(Flooder, 1, "flood")
        try:
            return await flood(args, server, flooder)
        finally:
            flooder.close()
            code = server.stop()
            print(f"server stopped (exit code {code}); log: {server.log}")


async def flood(args: argparse.Namespace, server: Server, flooder: Fleet) -> int:
    server.start()
    await server.wait_healthy()
    flooder.start()
    verdict = Verdict()
    async with client_at(USER_ADDRESS) as http:
        for name in ("real", "victim"):
            await register(http, server.url, name)
        took, statuses = await logins(http, server.url, "real", 3.0, args.interval)
        text, quiet = latency_line(took)
        print(f"quiet: real logins {text}; statuses {dict(statuses)}")
        for phase in args.phases:
            meter = CpuMeter({"server": server.pid, **flooder.pids})
            meter.start()
            flooding = asyncio.ensure_future(
                flooder.ask(
                    "flood",
                    {
                        "url": server.url,
                        "clients": args.clients,
                        "seconds": args.seconds,
                        "target": "victim" if phase == "one" else None,
                        "address": FLOOD_ADDRESSES[phase],
                    },
                    within=args.seconds + 60,
                )
            )
            await asyncio.sleep(0.2)  # the flood's first burst is under way
            took, statuses = await logins(
                http, server.url, "real", args.seconds - 1.0, args.interval
            )
            (report,) = await flooding
            cpu = meter.percent()
            text, found = latency_line(took)
            print(
                f"flood '{phase}' ({args.clients} clients, {args.seconds:.0f} s): "
                f"real logins {text}; statuses {dict(statuses)}"
            )
            print(
                f"  flood answers {report['statuses']} "
                f"({sum(report['statuses'].values()) / args.seconds:.0f}/s); "
                f"CPU % of a core: "
                + ", ".join(f"{name} {value:.0f}" for name, value in cpu.items())
            )
            verdict.check(
                f"flood '{phase}': every real login ok and under {LIMIT:.0f} s",
                f"p50 {found['p50'] * 1000:.0f} ms, max {found['max'] * 1000:.0f} ms "
                f"(quiet p50 {quiet['p50'] * 1000:.0f} ms); {dict(statuses)}",
                found["max"] < LIMIT and set(statuses) == {200},
            )
    return verdict.report()


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=64, help="flooding clients")
    parser.add_argument("--seconds", type=float, default=10.0, help="s per flood")
    parser.add_argument(
        "--interval", type=float, default=0.2, help="s between real logins"
    )
    parser.add_argument(
        "--phases",
        nargs="+",
        choices=tuple(FLOOD_ADDRESSES),
        default=list(FLOOD_ADDRESSES),
        help="which floods to run, in order",
    )
    add_server_options(parser)
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse()
    raise SystemExit(run(main, arguments, budget=120 + 2 * arguments.seconds))
