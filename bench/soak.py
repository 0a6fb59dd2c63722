"""Soak: 1,000 clients in 100 rooms at 50 messages/s for 10 minutes.

Pass: RSS grows under 10 % from the end of the warm-up to the end, open file
descriptors stay flat (max - min <= 10 after the warm-up), every message acked
ok reaches every other member of its room exactly once, every send is acked ok.

    .venv/bin/python bench/soak.py                     # the full run, ~12 min
    .venv/bin/python bench/soak.py --duration 90 --warmup 30   # a smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import time

from accounts import create_chats, start_with_users, user_names
from chatters import Chatters, account
from common import (
    Workdir,
    add_server_options,
    describe_machine,
    make_server,
    run,
)
from fleet import Fleet
from measure import CpuMeter, Sampler, Verdict, latency_line

FD_SLACK = 10
RSS_GROWTH_MAX = 10.0  # %
DRAIN = 5.0  # seconds after the last ack for deliveries still on their way


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--per-room", type=int, default=10)
    parser.add_argument("--rate", type=float, default=50.0, help="messages/s, total")
    parser.add_argument("--duration", type=float, default=600.0, help="seconds")
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds")
    parser.add_argument("--workers", type=int, default=2, help="client processes")
    parser.add_argument("--sample-every", type=float, default=5.0, help="seconds")
    add_server_options(parser)
    args = parser.parse_args()
    if args.warmup >= args.duration:
        parser.error("--warmup must be shorter than --duration")
    if args.clients % args.per_room:
        parser.error("--clients must be a multiple of --per-room")
    return args


async def main(args: argparse.Namespace) -> int:
    describe_machine()
    with Workdir("soak", args.keep) as workdir:
        server = make_server(args, workdir)
        fleet = Fleet(Chatters, args.workers)
        try:
            return await soak(args, server, fleet)
        finally:
            fleet.close()
            code = server.stop()
            print(f"server stopped (exit code {code}); log: {server.log}")


async def soak(args, server, fleet) -> int:
    names = user_names(args.clients)
    tokens = await start_with_users(server, names, args.users_via)
    groups = [
        names[start : start + args.per_room]
        for start in range(0, len(names), args.per_room)
    ]
    chat_ids = await create_chats(server.url, groups, tokens)
    chat_of = {
        name: chat
        for chat, group in zip(chat_ids, groups, strict=True)
        for name in group
    }
    print(f"server {server.url} pid {server.pid}; {len(groups)} chats")

    fleet.start()
    members = [(name, tokens[name], chat_of[name]) for name in names]
    # Members of one room are spread over the processes: deliveries cross them.
    shares = [
        {"url": server.url, "members": members[i :: fleet.count], "concurrency": 20}
        for i in range(fleet.count)
    ]
    started = time.monotonic()
    replies = await fleet.ask("connect", shares, within=600)
    connected = [name for reply in replies for name in reply["connected"]]
    failed = [line for reply in replies for line in reply["failed"]]
    print(
        f"connected {len(connected)}/{len(names)} clients in "
        f"{time.monotonic() - started:.1f} s; failures: {failed[:5]}"
    )
    rooms: dict[str, list[str]] = {}
    for name in connected:
        rooms.setdefault(chat_of[name], []).append(name)

    sampler = Sampler(server, every=args.sample_every)
    await sampler.take()
    sampler.start()
    cpu = CpuMeter({"server": server.pid, **fleet.pids})
    cpu.start()
    start_at = time.monotonic() + 1.0
    until = start_at + args.duration
    warm = start_at + args.warmup
    print(
        f"sending {args.rate:g} msgs/s for {args.duration:g} s "
        f"(warm-up {args.warmup:g} s) ..."
    )
    sent = await fleet.ask(
        "chat",
        {"start_at": start_at, "until": until, "rate": args.rate / fleet.count},
        within=args.duration + 120,
    )
    usage = cpu.percent()
    await asyncio.sleep(DRAIN)
    end_sample = await sampler.take()
    await sampler.stop()
    collected = await fleet.ask("collect", within=120)
    await fleet.ask("disconnect", within=120)
    left, waited = await server.wait_no_sockets()
    return report(
        args,
        names,
        failed,
        rooms,
        sent,
        collected,
        sampler,
        usage,
        (start_at, warm, until),
        end_sample,
        (left, waited),
    )


def report(
    args, names, failed, rooms, sent, collected, sampler, usage, times, end, left
) -> int:
    start_at, warm, until = times
    verdict = Verdict()
    attempted = sum(part["attempted"] for part in sent)
    acked = sum(part["acked"] for part in sent)
    failures: dict[str, int] = {}
    for part in sent:
        for code, count in part["failures"].items():
            failures[code] = failures.get(code, 0) + count
    skipped = sum(part["skipped"] for part in sent)
    print(
        f"\nsends: {attempted} attempted ({attempted / args.duration:.1f}/s), "
        f"{acked} acked ok, failures {failures or 'none'}, skipped {skipped}"
    )
    delivery = account(rooms, collected)
    print("delivery:", delivery.line())
    for example in delivery.lost_examples:
        print("  ", example)
    dropped = {k: v for part in collected for k, v in part["dropped"].items()}
    print(f"connections dropped by the server during the run: {len(dropped)}")
    for name, why in list(dropped.items())[:5]:
        print("  ", name, why)
    samples = [(s.t - start_at, s) for s in sampler.samples if s.t >= start_at - 1]
    latencies = [
        lat
        for part in collected
        for sent_at, lat in part["latencies"]
        if sent_at >= warm
    ]
    text, _ = latency_line(latencies)
    print(f"delivery latency after warm-up: {text}")
    print(
        "CPU, % of one core, over the send phase: "
        + ", ".join(f"{name} {value:.0f}%" for name, value in usage.items())
    )

    print("\n    t(s)   RSS(MiB)   fds   server CPU%   sockets /control /chat")
    previous = None
    step = max(1, round(60 / args.sample_every))
    for index, (t, s) in enumerate(samples):
        if index % step and index != len(samples) - 1:
            continue
        busy = (
            100 * (s.cpu_s - previous.cpu_s) / (s.t - previous.t)
            if previous and s.t > previous.t
            else float("nan")
        )
        previous = s
        print(
            f"  {t:7.0f}  {s.rss_kib / 1024:9.1f}  {s.fds:5d}  {busy:11.0f}"
            f"   {s.sockets['/control']:8d} {s.sockets['/chat']:5d}"
        )

    after_warm = [s for _, s in samples if warm <= s.t <= until + 1]
    whole = [s for _, s in samples]
    rss_warm = after_warm[0].rss_kib
    rss_end = after_warm[-1].rss_kib
    growth = 100 * (rss_end - rss_warm) / rss_warm
    fds = [s.fds for s in after_warm]
    print(
        f"\nRSS: {rss_warm / 1024:.1f} MiB after warm-up, {rss_end / 1024:.1f} MiB "
        f"at the end ({growth:+.2f} %); max {max(s.rss_kib for s in whole) / 1024:.1f}"
        f" MiB; after the drain {end.rss_kib / 1024:.1f} MiB"
    )
    print(
        f"fds: after warm-up min {min(fds)} max {max(fds)}; whole run min "
        f"{min(s.fds for s in whole)} max {max(s.fds for s in whole)}"
    )
    print(f"after disconnecting: sockets {left[0]} ({left[1]:.1f} s to reach it)")

    verdict.check(
        "all clients connected",
        f"{len(names) - len(failed)}/{len(names)}",
        not failed,
    )
    verdict.check(
        f"RSS growth after warm-up < {RSS_GROWTH_MAX:g} %",
        f"{growth:+.2f} %",
        growth < RSS_GROWTH_MAX,
    )
    verdict.check(
        f"fds flat (max - min <= {FD_SLACK})",
        f"{min(fds)}..{max(fds)} ({max(fds) - min(fds)})",
        max(fds) - min(fds) <= FD_SLACK,
    )
    verdict.check("every send acked ok", f"{acked}/{attempted}", acked == attempted)
    verdict.check(
        "nothing lost",
        f"{delivery.lost} of {delivery.expected}",
        delivery.lost == 0 and delivery.expected > 0,
    )
    verdict.check("no duplicates", str(delivery.duplicates), delivery.duplicates == 0)
    return verdict.report()


if __name__ == "__main__":
    arguments = parse()
    budget = arguments.duration + 900  # set-up, connect, drain, tear-down
    raise SystemExit(run(main, arguments, budget))
