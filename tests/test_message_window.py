"""``GET /api/chats/{id}/messages`` with both ``after`` and ``before``: a window.

PROTOCOL.md, REST: the two bounds together give the oldest ``limit`` messages
with ``after < seq < before``; a window with no seq in it (``before <= after +
1``) is an empty page, not an error. ``after`` alone and ``before`` alone keep
their meaning. Run on SQLite and PostgreSQL, through a real server.
"""

from __future__ import annotations

from typing import Any

import pytest
from conftest import Harness
from helpers import fast_user, store_messages

from chatsio.config import Config

STORED = 30  # messages in the chat, seq 1 to 30

WINDOWS = [
    pytest.param({"after": 10, "before": 20}, range(11, 20), id="inside"),
    pytest.param({"after": 10, "before": 20, "limit": 3}, range(11, 14), id="limit"),
    pytest.param({"after": 10, "before": 20, "limit": 9}, range(11, 20), id="fits"),
    pytest.param({"after": 5, "before": 7}, [6], id="one-seq"),
    pytest.param({"after": 0, "before": 31, "limit": 1000}, range(1, 31), id="all"),
    pytest.param({"after": 0, "before": 100}, range(1, 31), id="past-the-end"),
    pytest.param({"after": 25, "before": 500, "limit": 2}, [26, 27], id="tail"),
    pytest.param({"after": 0, "before": 1}, [], id="before-first"),
    pytest.param({"after": 30, "before": 40}, [], id="after-last"),
    pytest.param({"after": 5, "before": 6}, [], id="adjacent"),
    pytest.param({"after": 5, "before": 5}, [], id="equal"),
    pytest.param({"after": 5, "before": 3, "limit": 2}, [], id="reversed"),
    pytest.param({"after": 20}, range(21, 31), id="after-only"),
    pytest.param({"after": 0, "limit": 5}, range(1, 6), id="after-only-limit"),
    pytest.param({"before": 10, "limit": 3}, [7, 8, 9], id="before-only"),
    pytest.param({"before": 500, "limit": 2}, [29, 30], id="before-past-the-end"),
    pytest.param({"limit": 4}, range(27, 31), id="neither"),
]


@pytest.fixture
def config(any_database_url: str) -> Config:
    return Config(database_url=any_database_url, rate_limit=1000, rate_burst=1000)


@pytest.fixture
async def chat(chatsio: Harness) -> tuple[str, str]:
    """A chat of alice and bob with STORED messages; its path and bob's token.

    A second chat with messages of its own shows the page stays in its chat.
    """
    tokens = {name: await fast_user(chatsio, name) for name in ("alice", "bob")}
    ids = []
    for _ in range(2):
        status, body = await chatsio.post(
            "/api/chats", {"members": ["bob"]}, tokens["alice"]
        )
        assert status == 201, body
        ids.append(body["id"])
        await store_messages(chatsio, body["id"], "alice", STORED)
    return f"/api/chats/{ids[0]}/messages", tokens["bob"]


async def page(harness: Harness, path: str, token: str, query: dict) -> Any:
    params = {name: str(value) for name, value in query.items()}
    headers = {"Authorization": f"Bearer {token}"}
    async with harness.http.get(
        harness.url + path, params=params, headers=headers
    ) as response:
        return response.status, await response.json()


async def test_after_and_before_together_are_a_window(chatsio, chat):
    path, token = chat
    wrong = []
    for case in WINDOWS:
        query, expected = case.values
        status, body = await page(chatsio, path, token, query)
        got = [message["seq"] for message in body] if status == 200 else body
        if status != 200 or got != list(expected):
            wrong.append(f"[{case.id}] {query}: {status} {got}")
    assert not wrong, "\n".join(wrong)


async def test_an_empty_window_is_still_for_members_only(chatsio, chat):
    path, _ = chat
    outsider = await fast_user(chatsio, "carol")
    status, body = await page(chatsio, path, outsider, {"after": 5, "before": 5})
    assert status == 403 and body["error"]["code"] == "forbidden", (status, body)
