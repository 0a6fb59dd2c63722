"""Property-based fuzzing of every client event and every REST body and query.

Hypothesis throws random JSON of every type and depth at the server: huge
numbers (+-10**30, 2**63, 1e308, NaN, Infinity), nesting hundreds of levels
deep, long strings, lone surrogates, NUL, ``bytes`` where no binary attachment
belongs (Socket.IO) and invalid UTF-8 (REST bodies, paths and queries), as well
as valid payloads with one field replaced, dropped or added. After every
example the test checks PROTOCOL.md's promises:

- the reply is an ack ``{"ok": true, ...}`` or ``{"ok": false, "error"}`` (REST:
  a status below 500, errors as ``{"error": Error}``), never code ``internal``;
- nothing under the ``chatsio``, ``aiohttp.server``, ``aiohttp.web``,
  ``engineio`` or ``socketio`` loggers logged a traceback or an ERROR;
- the socket is still connected on both namespaces and a valid ``history`` on
  it still works.

Once per test, ``chatsio_errors_total`` on ``/metrics`` must have grown by
exactly the error replies the test received, code by code.

Hypothesis and asyncio: pytest-asyncio runs ``@given`` on ``async def`` tests
(its Hypothesis integration, pytest-asyncio#102): each example is one coroutine
run to completion on the module's event loop, the loop that the module's server
and clients live on. The examples are derandomized (a seed fixed by the test's
code), nothing is stored between runs, and the budget comes from the
environment. A long run, ten times the default budget:

    CHATSIO_FUZZ_EXAMPLES=2500 .venv/bin/pytest \
        tests/test_fuzz.py tests/test_raw_frames.py

At the end of the module a summary goes to the terminal: per event and per
endpoint, the inputs tried and how many were answered ok or with each code.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
import pytest_asyncio
from conftest import PASSWORD, TIMEOUT, Harness, Peer
from helpers import BadRecords, fast_user
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families
from yarl import URL

from chatsio.config import Config, database_url
from chatsio.protocol import CHAT, CONTROL
from chatsio.schemas import ERROR_CODES

pytestmark = pytest.mark.asyncio(loop_scope="module")

# Examples per test; the default keeps this module well under 90 s.
EXAMPLES = int(os.environ.get("CHATSIO_FUZZ_EXAMPLES", "250"))
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,  # the same examples on every run and every machine
    database=None,
    deadline=None,
    # The tally fixture is function-scoped on purpose: it spans every example
    # of one test, to compare the error metric once per test.
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)

WATCHED_LOGGERS = ("chatsio", "aiohttp.server", "aiohttp.web", "engineio", "socketio")
ID = "<chat id>"  # placeholder in valid payloads, replaced by a real chat's id
STATUS_OF_CODE = {
    "invalid": {400, 405},
    "unauthorized": {401},
    "forbidden": {403},
    "not_found": {404},
    "conflict": {409},
    "terminated": {410},
    "too_large": {413},
    "rate_limited": {429},
}

# event: (namespace, a valid payload)
EVENTS = {
    "start": (CONTROL, {"members": ["bob"], "title": "fuzz"}),
    "terminate": (CONTROL, {"id": ID}),
    "join": (CHAT, {"id": ID, "since": 0}),
    "leave": (CHAT, {"id": ID}),
    "notify": (CHAT, {"id": ID, "kind": "message", "text": "hi", "client_id": "c"}),
    "typing": (CHAT, {"id": ID}),
    "history": (CHAT, {"id": ID, "before": 5, "limit": 10}),
    "file": (CHAT, {"id": ID, "name": "a.txt", "type": "text/plain", "data": b"hi"}),
}

# name: (path, who calls it, a valid body)
BODIES = {
    "users": ("/api/users", None, {"username": "fuzzer", "password": PASSWORD}),
    "tokens": ("/api/tokens", None, {"username": "alice", "password": PASSWORD}),
    "chats": ("/api/chats", "alice", {"members": ["bob"], "title": "fuzz"}),
    "messages": (f"/api/chats/{ID}/messages", "alice", {"text": "hi"}),
    "notifications": ("/api/notifications", "admin", {"text": "hi", "id": ID}),
}

# Strategies ---------------------------------------------------------------

SPECIAL_STRINGS = [
    "",
    "\x00",
    "a\x00b",
    "\ud800",
    "x\udfff",
    "\U0001f600",
    "\u202e",
    "null",
    "NaN",
    "-1",
    "0",
    "1e308",
    "9" * 5000,
    "0b5d2a4e-8f6b-4c1e-9a57-3d2f1e0c9b8a",
    "{0B5D2A4E-8F6B-4C1E-9A57-3D2F1E0C9B8A}",
    "../../etc/passwd",
    "%00",
    "<script>alert(1)</script>",
    "image/png",
    "bob",
    "alice",
]
SPECIAL_NUMBERS = [
    10**30,
    -(10**30),
    2**63,
    -(2**63) - 1,
    2**64,
    2**31,
    2**31 - 1,
    -1,
    0,
    1e308,
    -1e308,
    5e-324,
    -0.0,
    math.nan,
    math.inf,
    -math.inf,
]

# Every code point, lone surrogates (category Cs) and NUL included.
texts = st.one_of(
    st.text(st.characters(exclude_categories=()), max_size=40),
    st.sampled_from(SPECIAL_STRINGS),
    st.integers(4000, 70_000).map(lambda n: "x" * n),
)
numbers = st.one_of(st.integers(), st.floats(), st.sampled_from(SPECIAL_NUMBERS))
scalars = st.one_of(st.none(), st.booleans(), numbers, texts)
keys = st.one_of(st.text(st.characters(exclude_categories=()), max_size=12), texts)


def nest(value: Any, depth: int, shape: str) -> Any:
    for _ in range(depth):
        value = [value] if shape == "list" else {"a": value}
    return value


def trees(leaves: st.SearchStrategy) -> st.SearchStrategy:
    """JSON-shaped values of any type: shallow and wide, or hundreds deep."""

    def containers(kids: st.SearchStrategy) -> st.SearchStrategy:
        return st.lists(kids, max_size=6) | st.dictionaries(keys, kids, max_size=6)

    shallow = st.recursive(leaves, containers, max_leaves=25)
    # A few hundred levels: the Python client's encoder recurses ~2 frames a level.
    deep = st.builds(
        nest, leaves, st.integers(100, 400), st.sampled_from(["list", "dict"])
    )
    return st.one_of(shallow, deep)


# Socket.IO carries bytes as binary attachments, wherever they sit.
socket_values = trees(st.one_of(scalars, st.binary(max_size=64)))
json_values = trees(scalars)


# Values a field could plausibly hold, so that some mutations are accepted.
PLAUSIBLE = [ID, "bob", "alice", "hello", "c2", "image/png", 0, 1, 100, None, True]


@st.composite
def mutations(draw, valid: dict, values: st.SearchStrategy) -> dict:
    """``valid`` with one field replaced, dropped, or one field added."""
    values = st.one_of(st.sampled_from(PLAUSIBLE), scalars, values)
    payload = dict(valid)
    how = draw(st.sampled_from(["replace", "replace", "drop", "add"]))
    if how == "add":
        payload[draw(keys)] = draw(values)
        return payload
    name = draw(st.sampled_from(sorted(valid)))
    if how == "drop":
        del payload[name]
    else:
        payload[name] = draw(values)
    return payload


def explicit_arguments(event: str) -> list[tuple]:
    """Arguments every run tries, whatever the draw: one of each kind of harm."""
    valid = EVENTS[event][1]
    harms = ["\ud800", "a\x00b", b"\x00binary", math.nan, -math.inf, 2**63, 10**30]
    return [
        (),
        (None,),
        (valid, valid),
        *((harm,) for harm in harms),
        (nest(valid, 400, "list"),),
        (nest(valid, 400, "dict"),),
        *(({**valid, name: harm},) for name in valid for harm in harms),
        *(({**valid, name: nest(b"\x00", 300, "list")},) for name in valid),
    ]


def socket_arguments(event: str) -> st.SearchStrategy:
    """The arguments of one emit: usually one payload, sometimes 0 or 2-3."""
    valid = EVENTS[event][1]
    one = st.one_of(socket_values, mutations(valid, socket_values))
    return st.one_of(
        one.map(lambda payload: (payload,)),
        st.lists(one, max_size=3).map(tuple),
    )


@dataclass(frozen=True)
class Json:
    """A body to send as JSON text, encoded once the chat's id is filled in."""

    value: Any
    ascii_only: bool  # lone surrogates escaped, else as (invalid) UTF-8 bytes


def encoded(body: Json | bytes, chat_id: str) -> bytes:
    if isinstance(body, bytes):
        return body
    text = json.dumps(fill(body.value, chat_id), ensure_ascii=body.ascii_only)
    return text.encode("utf-8", "surrogatepass")  # NaN, Infinity as JS writes them


class Raw(bytes):
    """Raw body bytes with a short repr: Hypothesis prints failing examples."""

    def __repr__(self) -> str:
        return f"Raw({bytes(self[:40])!r}... {len(self)} bytes)"


RAW_BODIES = [
    Raw(body)
    for body in (
        b"",
        b"\xff\xfe\xfd",
        b'{"text": "\xc3\x28"}',  # invalid UTF-8 inside a string
        b'{"text": "\xed\xa0\x80"}',  # a surrogate encoded as UTF-8
        b"\x00",
        b"nul",
        b"[1e999]",
        b'{"text": NaN}',
        b'{"text": Infinity}',
        b"1" * 5000,  # more digits than int() takes
        b"[" * 100_000 + b"]" * 100_000,  # deeper than any recursion limit
        b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
        b'{"text": "' + b"x" * 1_200_000 + b'"}',  # over aiohttp's 1 MiB limit
        b'{"text": "hi"',  # truncated
        b'{"text": "hi"}{"text": "hi"}',
        b"\xef\xbb\xbf" + b'{"text": "hi"}',  # a byte-order mark
    )
]


def explicit_bodies(name: str) -> list[Json | bytes]:
    """Bodies every run tries: each raw one, and each field given each harm."""
    valid = BODIES[name][2]
    harms = ["\ud800", "a\x00b", math.nan, math.inf, 2**63, 10**30, None, [], {}]
    return [
        *RAW_BODIES,
        *(
            Json({**valid, field: harm}, ascii_only)
            for field in valid
            for harm in harms
            for ascii_only in (True, False)
        ),
        Json(nest(valid, 900, "list"), True),
    ]


def rest_bodies(name: str) -> st.SearchStrategy:
    """A request body: raw bytes, random JSON, or a mutated valid body."""
    valid = BODIES[name][2]
    as_json = st.builds(
        Json, st.one_of(json_values, mutations(valid, json_values)), st.booleans()
    )
    return st.one_of(as_json, st.binary(max_size=200), st.sampled_from(RAW_BODIES))


def percent(text: str) -> str:
    """Every byte of ``text`` percent-encoded (lone surrogates as invalid UTF-8)."""
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


# Short enough that a URL stays under aiohttp's 8190-byte request line; longer
# lines are refused by the HTTP parser before the app (see test_raw_frames.py).
url_texts = st.one_of(
    st.text(st.characters(exclude_categories=()), max_size=40),
    st.sampled_from([s for s in SPECIAL_STRINGS if len(s) < 100]),
    st.just("9" * 1000),
)
raw_query_parts = st.sampled_from(["%ff%fe", "%zz", "%", "&&", "=", ";", "+", "%00"])
query_keys = st.one_of(st.sampled_from(["before", "after", "limit"]), url_texts)
query_values = st.one_of(
    url_texts, numbers.map(str), st.sampled_from(["1", "50", "1000", "1001", " 1"])
)
queries = st.lists(
    st.one_of(
        st.tuples(query_keys, query_values).map(
            lambda kv: f"{percent(kv[0])}={percent(kv[1])}"
        ),
        raw_query_parts,
    ),
    max_size=5,
).map("&".join)
path_ids = st.one_of(
    url_texts, st.sampled_from(["", ".", "..", "%2e%2e", "a/b", "a?b", "a#b"])
)
PATHS = [
    ("GET", "/api/chats/{}"),
    ("DELETE", "/api/chats/{}"),
    ("GET", "/api/chats/{}/messages"),
    ("POST", "/api/chats/{}/messages"),
    ("GET", "/api/files/{}"),
]

# The server ---------------------------------------------------------------


@dataclass
class Server:
    harness: Harness
    tokens: dict[str, str]
    alice: Peer
    chat_id: str  # alice and bob's chat, the target of every event
    doomed_id: str  # the chat terminate aims at
    log: BadRecords
    summary: dict[str, Counter] = field(default_factory=dict)

    async def error_counts(self, edge: str) -> Counter:
        """``chatsio_errors_total`` by code, for one edge, from /metrics."""
        async with self.harness.http.get(self.harness.url + "/metrics") as response:
            assert response.status == 200
            text = await response.text()
        counts: Counter = Counter()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "chatsio_errors_total":
                    if sample.labels["edge"] == edge:
                        counts[sample.labels["code"]] += int(sample.value)
        return counts


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server(tmp_path_factory, request) -> AsyncIterator[Server]:
    """One server for the module, with alice's device in a chat with bob."""
    log = BadRecords()
    for name in WATCHED_LOGGERS:
        logging.getLogger(name).addHandler(log)
    path = tmp_path_factory.mktemp("fuzz") / "chatsio.db"
    config = Config(
        database_url=database_url(f"sqlite:///{path}"),
        rate_limit=1_000_000,
        rate_burst=1_000_000,
    )
    harness = await Harness(config).start()
    try:
        tokens = {
            "alice": await fast_user(harness, "alice"),
            "bob": await fast_user(harness, "bob"),
            "admin": await fast_user(harness, "admin", admin=True),
        }
        alice, _ = await harness.member(tokens["alice"])
        chats = []
        for _ in range(2):
            started = await alice.call(CONTROL, "start", {"members": ["bob"]})
            assert started["ok"], started
            chats.append(started["chat"]["id"])
        fixture = Server(harness, tokens, alice, chats[0], chats[1], log)
        yield fixture
        write_summary(request.config, fixture.summary)
    finally:
        await harness.close()
        for name in WATCHED_LOGGERS:
            logging.getLogger(name).removeHandler(log)


def write_summary(config: pytest.Config, summary: dict[str, Counter]) -> None:
    """Inputs tried and their answers, per target, on the terminal."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None:
        return
    with capture.global_and_fixture_disabled():  # as capsys.disabled() does
        reporter.ensure_newline()
        reporter.write_sep("-", f"fuzz summary ({EXAMPLES} examples per test)")
        for target, counts in summary.items():
            tried = counts.pop("tried", 0)
            answers = ", ".join(f"{code} {n}" for code, n in sorted(counts.items()))
            reporter.write_line(f"{target}: {tried} inputs tried; {answers}")


@dataclass
class Tally:
    """What one test received: every reply's outcome, by code."""

    outcomes: Counter = field(default_factory=Counter)

    @property
    def errors(self) -> Counter:
        return Counter({c: n for c, n in self.outcomes.items() if c != "ok"})


@contextlib.asynccontextmanager
async def counted(server: Server, request, edge: str) -> AsyncIterator[Tally]:
    """A tally of one test's replies, checked against /metrics at its end."""
    before = await server.error_counts(edge)
    tally = Tally()
    yield tally
    grown = await server.error_counts(edge) - before
    name = request.node.name.removeprefix("test_fuzz_")
    server.summary[f"{edge} {name}"] = Counter(
        {"tried": sum(tally.outcomes.values()), **tally.outcomes}
    )
    # Each rejected input counts once in chatsio_errors_total, under its code.
    assert grown == tally.errors, (grown, tally.errors)


@pytest_asyncio.fixture(loop_scope="module")
async def socket_tally(server: Server, request) -> AsyncIterator[Tally]:
    async with counted(server, request, "socket") as tally:
        yield tally


@pytest_asyncio.fixture(loop_scope="module")
async def rest_tally(server: Server, request) -> AsyncIterator[Tally]:
    async with counted(server, request, "rest") as tally:
        yield tally


# Checks -------------------------------------------------------------------


def fill(payload: Any, chat_id: str) -> Any:
    """``payload`` with every ID placeholder replaced by ``chat_id``."""
    if payload == ID:
        return chat_id
    if isinstance(payload, dict):
        return {key: fill(value, chat_id) for key, value in payload.items()}
    if isinstance(payload, (list, tuple)):
        return type(payload)(fill(item, chat_id) for item in payload)
    return payload


def outcome_of_ack(reply: Any) -> str:
    """``ok`` or the error code of a well-formed ack; never ``internal``."""
    assert isinstance(reply, dict) and isinstance(reply.get("ok"), bool), reply
    if reply["ok"]:
        return "ok"
    error = reply["error"]
    assert set(error) == {"code", "message", "fields"}, reply
    assert error["code"] in ERROR_CODES and error["code"] != "internal", reply
    return error["code"]


async def outcome_of_response(response: aiohttp.ClientResponse) -> str:
    """``ok`` for 2xx/3xx, else the code of a well-formed error; never a 5xx."""
    body = await response.read()
    assert response.status < 500, (response.status, body[:500])
    if response.status < 400:
        return "ok"
    error = json.loads(body)["error"]
    assert set(error) == {"code", "message", "fields"}, body[:500]
    assert error["code"] != "internal", body[:500]
    assert response.status in STATUS_OF_CODE[error["code"]], (response.status, error)
    return error["code"]


async def assert_still_serving(server: Server, mark: int) -> None:
    """Connected on both namespaces, a valid call works, no traceback logged."""
    client = server.alice.client
    assert client.connected and {CONTROL, CHAT} <= set(client.namespaces), (
        client.namespaces
    )
    history = await server.alice.call(CHAT, "history", {"id": server.chat_id})
    assert history["ok"] is True, history
    assert server.log.since(mark) == []


# Socket.IO ----------------------------------------------------------------


async def emit(server: Server, event: str, arguments: tuple) -> str:
    namespace = EVENTS[event][0]
    target = server.doomed_id if event == "terminate" else server.chat_id
    reply = await server.alice.client.call(
        event, fill(arguments, target), namespace=namespace, timeout=TIMEOUT
    )
    return outcome_of_ack(reply)


def fuzz_event(event: str):
    """A test that sends ``event`` random arguments, one emit per example."""

    async def test(server: Server, socket_tally: Tally, arguments: tuple) -> None:
        mark = len(server.log.records)
        socket_tally.outcomes[await emit(server, event, arguments)] += 1
        await assert_still_serving(server, mark)

    test.__name__ = test.__qualname__ = f"test_fuzz_{event}"
    test = given(arguments=socket_arguments(event))(test)
    for arguments in explicit_arguments(event):
        test = example(arguments=arguments)(test)
    return FUZZ(test)


# One test per event, so each has its own budget, seed and metric check.
test_fuzz_start = fuzz_event("start")
test_fuzz_terminate = fuzz_event("terminate")
test_fuzz_join = fuzz_event("join")
test_fuzz_leave = fuzz_event("leave")
test_fuzz_notify = fuzz_event("notify")
test_fuzz_typing = fuzz_event("typing")
test_fuzz_history = fuzz_event("history")
test_fuzz_file = fuzz_event("file")


# REST ---------------------------------------------------------------------


async def request(
    server: Server,
    method: str,
    path: str,
    who: str | None,
    body: bytes | None = None,
    content_type: str = "application/json",
) -> str:
    harness = server.harness
    headers = {"Authorization": f"Bearer {server.tokens[who]}"} if who else {}
    if body is not None:
        headers["Content-Type"] = content_type
    data = io.BytesIO(body) if body and len(body) > 2**20 else body  # no loop lock
    url = URL(harness.url + path.replace(ID, server.chat_id), encoded=True)
    timeout = aiohttp.ClientTimeout(total=TIMEOUT)
    async with harness.http.request(
        method, url, data=data, headers=headers, timeout=timeout
    ) as response:
        return await outcome_of_response(response)


def fuzz_body(name: str):
    """A test that POSTs random bodies to one endpoint, one per example."""
    path, who, _ = BODIES[name]

    async def test(
        server: Server, rest_tally: Tally, body: Any, content_type: str
    ) -> None:
        mark = len(server.log.records)
        data = encoded(body, server.chat_id)
        outcome = await request(server, "POST", path, who, data, content_type)
        rest_tally.outcomes[outcome] += 1
        assert server.log.since(mark) == []

    test.__name__ = test.__qualname__ = f"test_fuzz_post_{name}"
    content_types = st.sampled_from(
        ["application/json", "text/plain", "application/x-www-form-urlencoded"]
    )
    test = given(body=rest_bodies(name), content_type=content_types)(test)
    for body in explicit_bodies(name):
        test = example(body=body, content_type="application/json")(test)
    return FUZZ(test)


test_fuzz_post_users = fuzz_body("users")
test_fuzz_post_tokens = fuzz_body("tokens")
test_fuzz_post_chats = fuzz_body("chats")
test_fuzz_post_messages = fuzz_body("messages")
test_fuzz_post_notifications = fuzz_body("notifications")


@FUZZ
@given(query=queries)
async def test_fuzz_message_queries(server: Server, rest_tally: Tally, query: str):
    """GET /api/chats/{id}/messages with a random query string"""
    mark = len(server.log.records)
    path = f"/api/chats/{ID}/messages?{query}"
    rest_tally.outcomes[await request(server, "GET", path, "alice")] += 1
    assert server.log.since(mark) == []


@FUZZ
@given(route=st.sampled_from(PATHS), chat_id=path_ids)
async def test_fuzz_path_ids(
    server: Server, rest_tally: Tally, route: tuple[str, str], chat_id: str
):
    """Every /api/ route with an {id} in its path, with a random id"""
    method, template = route
    mark = len(server.log.records)
    body = b'{"text": "hi"}' if method == "POST" else None
    path = template.format(percent(chat_id))
    rest_tally.outcomes[await request(server, method, path, "alice", body)] += 1
    assert server.log.since(mark) == []


async def test_the_fuzzed_chat_still_works(server: Server):
    """After everything above, alice's chat with bob takes messages as before."""
    chat_id = server.chat_id
    said = await server.alice.call(
        CHAT, "notify", {"id": chat_id, "text": f"still here {uuid.uuid4()}"}
    )
    assert said["ok"], said
    history = await server.alice.call(CHAT, "history", {"id": chat_id, "limit": 1})
    assert history["messages"][-1]["seq"] == said["message"]["seq"], history
