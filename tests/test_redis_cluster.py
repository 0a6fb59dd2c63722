"""Two ``chatsio serve`` nodes on a three-master Redis Cluster (issue 19, item 3).

``REDIS_URL=redis+cluster://host:port`` names one node of the cluster; what
crosses between nodes on a single Redis crosses here too (the many-node tests
run again on the cluster), and a master killed or frozen for a few seconds
degrades and recovers as a Redis restart does: everything crosses again within
RECOVERY, and the catch-up delivers, once, what was said meanwhile.
"""

from __future__ import annotations

import asyncio

import pytest
import test_cluster
from cluster import running_nodes
from redis_cluster import RedisCluster, require_redis_tools
from test_bus_recovery import QuietChats, check_recovery
from test_cluster import (  # noqa: F401 -- collected again, on the cluster
    test_chatsio_notify_reaches_every_node,
    test_concurrent_senders_on_two_nodes_share_one_seq,
    test_every_kind_of_event_crosses_nodes,
)

peers = test_cluster.peers

OUTAGE = 3.0  # seconds: shorter than cluster-node-timeout, as a quick restart


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory):
    require_redis_tools()
    cluster = RedisCluster(tmp_path_factory.mktemp("redis-cluster")).start()
    yield cluster
    cluster.stop()


@pytest.fixture
def redis_server(redis_cluster):
    """What the many-node tests call their Redis: here, the cluster."""
    assert redis_cluster.ok(), "a previous test left the cluster broken"
    return redis_cluster


@pytest.fixture
async def nodes(tmp_path, postgres_url, redis_server):
    env = {"DATABASE_URL": postgres_url, "REDIS_URL": redis_server.url}
    async with running_nodes(tmp_path, env) as started:
        yield started


async def master_killed(cluster: RedisCluster, port: int, seconds: float) -> None:
    cluster.kill(port)
    await asyncio.sleep(seconds)  # the outage itself
    await asyncio.to_thread(cluster.restart, port)  # same port, same nodes.conf


async def master_frozen(cluster: RedisCluster, port: int, seconds: float) -> None:
    cluster.freeze(port)
    await asyncio.sleep(seconds)
    cluster.thaw(port)


@pytest.mark.parametrize(
    ("outage", "shard"),
    [(master_killed, 0), (master_killed, 1), (master_killed, 2), (master_frozen, 1)],
    ids=["killed-0", "killed-1", "killed-2", "frozen-1"],
)
async def test_a_master_outage_degrades_and_recovers(
    nodes, peers, redis_cluster, shard, outage
):
    """Whichever shard goes, what was said meanwhile reaches node b once,
    within RECOVERY of the master's return (``check_recovery``)."""
    room = await QuietChats(nodes, peers).open()
    port = redis_cluster.ports[shard]
    await check_recovery(room, lambda s: outage(redis_cluster, port, s), OUTAGE)
    assert redis_cluster.ok()
