"""The allowance bookkeeping on its own: buckets, what reconnects resume, bars."""

from __future__ import annotations

import asyncio

from chatsio.sockets.ratelimit import PRUNE_AT, Allowance, Allowances


def spend(bucket, times: int) -> int:
    return sum(bucket.take() for _ in range(times))


def test_a_bucket_gives_its_burst_then_refuses():
    allowances = Allowances(Allowance(rate=0.001, burst=3))
    assert spend(allowances.open("alice"), 10) == 3


def test_a_new_connection_resumes_a_spent_bucket_but_not_a_full_one():
    allowances = Allowances(Allowance(rate=0.001, burst=3))
    spent = allowances.open("alice")
    spend(spent, 3)
    allowances.close("alice", spent)
    assert spend(allowances.open("alice"), 3) == 0
    untouched = allowances.open("bob")
    allowances.close("bob", untouched)
    assert "bob" not in allowances.left_behind


def test_each_open_connection_has_its_own_bucket():
    allowances = Allowances(Allowance(rate=0.001, burst=3))
    assert spend(allowances.open("alice"), 3) == 3
    assert spend(allowances.open("alice"), 3) == 3


async def test_a_bar_ends_after_the_cool_down():
    allowances = Allowances(Allowance(rate=1, burst=1, flood_cooldown=0.05))
    allowances.bar("mallory")
    assert 0 < allowances.barred_for("mallory") <= 0.05
    assert allowances.barred_for("alice") == 0
    await asyncio.sleep(0.06)  # the cool-down is a span of time
    assert allowances.barred_for("mallory") == 0
    assert "mallory" not in allowances.barred


async def test_refilled_buckets_are_pruned():
    allowances = Allowances(Allowance(rate=100, burst=1))
    for index in range(PRUNE_AT - 1):
        bucket = allowances.open(f"u{index}")
        bucket.take()
        allowances.close(f"u{index}", bucket)
    # Every one of them refills in 10 ms: as if a second had passed. (A real
    # sleep of 20 ms once found some not yet full, in a loaded full run.)
    for bucket in allowances.left_behind.values():
        bucket.stamp -= 1.0
    last = allowances.open("last")
    last.take()
    allowances.close("last", last)
    assert list(allowances.left_behind) == ["last"]
