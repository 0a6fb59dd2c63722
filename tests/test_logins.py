"""Logins and registrations under attack (issue 15): the hash's cost, its
bounded pool, and the throttles on failed logins and registrations.

Requests come from several loopback addresses (127.0.0.1, 127.0.0.2, ...),
each its own client address to the server.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from argon2 import PasswordHasher
from cluster import wait_until
from conftest import PASSWORD, TIMEOUT, Harness

from chatsio.api.keys import services_key
from chatsio.app import storage_key
from chatsio.cli import create_user
from chatsio.protocol import now_ms
from chatsio.services.throttle import Throttle
from chatsio.storage import open_storage

ATTACKER, HOME = "127.0.0.1", "127.0.0.2"
WRONG = "wrong password"
CURRENT_PARAMETERS = "$argon2id$v=19$m=19456,t=2,p=1$"


@asynccontextmanager
async def client_at(address: str) -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client whose connections leave from ``address``."""
    connector = aiohttp.TCPConnector(local_addr=(address, 0), limit=0)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        yield http


async def post(
    http: aiohttp.ClientSession,
    harness: Harness,
    path: str,
    body: Any,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict, str | None]:
    """POST ``body``: (status, JSON reply, Retry-After header)."""
    async with http.post(harness.url + path, json=body, headers=headers) as r:
        return r.status, await r.json(), r.headers.get("Retry-After")


def credentials(username: str, password: str = PASSWORD) -> dict[str, str]:
    return {"username": username, "password": password}


def assert_throttled(reply: tuple[int, dict, str | None]) -> int:
    """A 429 rate_limited with a Retry-After of whole seconds: its value."""
    status, body, retry_after = reply
    assert status == 429 and body["error"]["code"] == "rate_limited", reply
    assert retry_after is not None and retry_after.isdigit(), reply
    assert int(retry_after) >= 1, reply
    return int(retry_after)


async def register(harness: Harness, name: str) -> None:
    async with client_at(HOME) as http:
        reply = await post(http, harness, "/api/users", credentials(name))
    assert reply[0] == 201, reply


async def stored_hash(harness: Harness, name: str) -> str:
    user = await harness.server.app[storage_key].users.get(name)
    assert user is not None
    return user.password_hash


# --- the flood ----------------------------------------------------------------


async def test_a_real_login_stays_fast_under_a_flood_of_wrong_passwords(
    make_config,
):
    """Issue 15: 64 clients posting wrong passwords made a real login take
    6-12 s. Scaled down (bench/login_flood.py runs the issue's 64 clients):
    16 clients flood from one address, in this process beside the server, with
    every setting at its default; a user logging in from another address takes
    under 1 s."""
    harness = await Harness(make_config()).start()
    stop = asyncio.Event()
    answered: Counter[int] = Counter()
    loaded = asyncio.Event()

    async def flooder(http: aiohttp.ClientSession, number: int) -> None:
        for attempt in itertools.count():
            if stop.is_set():
                return
            name = f"victim{number}x{attempt % 7}"  # many usernames, one address
            status, _, _ = await post(http, harness, "/api/tokens", credentials(name))
            answered[status] += 1
            if answered.total() >= 32:
                loaded.set()

    try:
        await register(harness, "alice")
        async with client_at(ATTACKER) as attacker, client_at(HOME) as home:
            flood = [asyncio.create_task(flooder(attacker, n)) for n in range(16)]
            try:
                await asyncio.wait_for(loaded.wait(), 60)
                took = []
                for _ in range(3):
                    started = time.monotonic()
                    reply = await post(
                        home, harness, "/api/tokens", credentials("alice")
                    )
                    took.append(time.monotonic() - started)
                    assert reply[0] == 200, reply
            finally:
                stop.set()
                await asyncio.wait_for(asyncio.gather(*flood), 60)
        assert max(took) < 1.0, f"real logins took {took} s; flood got {answered}"
        assert answered[429] > 0 and set(answered) <= {401, 429}, answered
    finally:
        await harness.close()


# --- password guessing ----------------------------------------------------------


async def test_wrong_passwords_for_one_user_are_throttled(make_config):
    harness = await Harness(
        make_config(login_failures_per_user=3, login_failures_per_address=100)
    ).start()
    try:
        for name in ("alice", "bob"):
            await register(harness, name)
        async with client_at(ATTACKER) as attacker, client_at(HOME) as home:
            for _ in range(3):
                reply = await post(
                    attacker, harness, "/api/tokens", credentials("alice", WRONG)
                )
                assert reply[0] == 401, reply
            # The right password now waits too, from any address.
            right = credentials("alice")
            for reply in await asyncio.gather(
                post(attacker, harness, "/api/tokens", right),
                post(home, harness, "/api/tokens", right),
            ):
                assert_throttled(reply)
            # Another user is not affected.
            reply = await post(home, harness, "/api/tokens", credentials("bob"))
            assert reply[0] == 200, reply
            # A name nobody has is throttled the same, so names cannot be probed.
            for _ in range(3):
                reply = await post(
                    attacker, harness, "/api/tokens", credentials("nobody", WRONG)
                )
                assert reply[0] == 401, reply
            nobody = credentials("nobody", WRONG)
            assert_throttled(await post(attacker, harness, "/api/tokens", nobody))
    finally:
        await harness.close()


async def test_failed_logins_are_throttled_per_address(make_config):
    harness = await Harness(
        make_config(login_failures_per_user=100, login_failures_per_address=4)
    ).start()
    try:
        await register(harness, "alice")
        async with client_at(ATTACKER) as attacker, client_at(HOME) as home:
            for n in range(4):
                guess = credentials(f"user{n}", WRONG)
                reply = await post(attacker, harness, "/api/tokens", guess)
                assert reply[0] == 401, reply
            right = credentials("alice")
            assert_throttled(await post(attacker, harness, "/api/tokens", right))
            reply = await post(home, harness, "/api/tokens", right)
            assert reply[0] == 200, reply
    finally:
        await harness.close()


async def test_the_address_behind_a_trusted_proxy_is_the_one_throttled(make_config):
    harness = await Harness(
        make_config(
            login_failures_per_user=100,
            login_failures_per_address=2,
            trusted_proxies=("127.0.0.1",),
        )
    ).start()
    try:
        await register(harness, "alice")
        guesser = {"X-Forwarded-For": "203.0.113.7"}
        other = {"X-Forwarded-For": "203.0.113.8"}
        async with client_at(ATTACKER) as proxy:
            for n in range(2):
                guess = credentials(f"user{n}", WRONG)
                reply = await post(proxy, harness, "/api/tokens", guess, guesser)
                assert reply[0] == 401, reply
            right = credentials("alice")
            assert_throttled(await post(proxy, harness, "/api/tokens", right, guesser))
            reply = await post(proxy, harness, "/api/tokens", right, other)
            assert reply[0] == 200, reply
    finally:
        await harness.close()


# --- registration -------------------------------------------------------------


async def test_registration_is_throttled_per_address(make_config):
    harness = await Harness(make_config(registrations_per_hour=3)).start()
    try:
        async with client_at(ATTACKER) as attacker, client_at(HOME) as home:
            for n in range(3):
                reply = await post(
                    attacker, harness, "/api/users", credentials(f"s{n}")
                )
                assert reply[0] == 201, reply
            refused = await post(attacker, harness, "/api/users", credentials("s3"))
            # One registration is worn off every 20 minutes (3 an hour).
            assert 1100 < assert_throttled(refused) <= 1200
            reply = await post(home, harness, "/api/users", credentials("s3"))
            assert reply[0] == 201, reply
    finally:
        await harness.close()


# --- the hash pool --------------------------------------------------------------


async def test_a_full_hash_queue_answers_429_at_once(make_config):
    """One worker and one place in the queue. With the worker held by a job of
    the test's, two logins take those places and a third is refused at once."""
    harness = await Harness(make_config(hash_workers=1, hash_queue=1)).start()
    try:
        await register(harness, "alice")
        passwords = harness.server.app[services_key].identity.passwords
        gate = threading.Event()
        holder = passwords.executor.submit(gate.wait, 30)  # the worker is busy
        async with client_at(HOME) as home:
            try:
                waiting = [
                    asyncio.create_task(
                        post(home, harness, "/api/tokens", credentials("alice"))
                    )
                    for _ in range(2)
                ]
                # No event tells when a request has reached the pool: poll.
                await wait_until(lambda: passwords.pending == 2, within=TIMEOUT)
                started = time.monotonic()
                refused = await post(home, harness, "/api/tokens", credentials("bob"))
                assert time.monotonic() - started < TIMEOUT
                assert_throttled(refused)
                assert not any(task.done() for task in waiting)
            finally:
                gate.set()
            holder.result(TIMEOUT)
            for reply in await asyncio.wait_for(asyncio.gather(*waiting), 30):
                assert reply[0] == 200, reply
    finally:
        await harness.close()


# --- the hash's parameters ------------------------------------------------------


async def test_an_old_hash_is_rehashed_on_login(chatsio):
    old = PasswordHasher().hash(PASSWORD)  # argon2-cffi's default parameters
    assert old.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    users = chatsio.server.app[storage_key].users
    await users.create("olduser", old, is_admin=False, now=now_ms())
    async with client_at(HOME) as home:
        reply = await post(home, chatsio, "/api/tokens", credentials("olduser"))
        assert reply[0] == 200, reply
        new = await stored_hash(chatsio, "olduser")
        assert new.startswith(CURRENT_PARAMETERS), new
        assert PasswordHasher().verify(new, PASSWORD)
        # And it still logs in; a wrong password still fails.
        reply = await post(home, chatsio, "/api/tokens", credentials("olduser"))
        assert reply[0] == 200, reply
        assert await stored_hash(chatsio, "olduser") == new
        wrong = credentials("olduser", WRONG)
        assert (await post(home, chatsio, "/api/tokens", wrong))[0] == 401


async def test_new_hashes_have_the_chosen_parameters(chatsio, config):
    await register(chatsio, "viarest")
    assert (await stored_hash(chatsio, "viarest")).startswith(CURRENT_PARAMETERS)
    assert await create_user(config, "viacli", PASSWORD, admin=False) == 0
    storage = await open_storage(config.database_url)
    try:
        user = await storage.users.get("viacli")
    finally:
        await storage.close()
    assert user is not None and user.password_hash.startswith(CURRENT_PARAMETERS)


# --- bounded memory ---------------------------------------------------------------


def test_a_throttle_holds_a_bounded_number_of_keys():
    """A throttle's table never grows past its bound: keys with nothing left
    to remember go first, then the least recently seen."""
    now = [0.0]
    throttle = Throttle(2, 60.0, backoff=True, max_keys=100, clock=lambda: now[0])
    throttle.charge("guesser")
    throttle.charge("guesser")  # refused for 2 s, remembered for 2 min
    for n in range(99):
        throttle.charge(f"name{n}")
    now[0] += 61.0  # every name's single failure is forgotten; not the guesser's
    throttle.charge("one more")
    assert set(throttle.entries) == {"guesser", "one more"}
    for n in range(1000):
        throttle.charge(f"fresh{n}")
        assert len(throttle.entries) <= 100
    assert "fresh999" in throttle.entries and "guesser" not in throttle.entries
