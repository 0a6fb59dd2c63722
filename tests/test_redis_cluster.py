"""Two ``chatsio serve`` nodes on a three-master Redis Cluster (issue 19, items 3, 4).

``REDIS_URL=redis+cluster://host:port`` names one node of the cluster; what
crosses between nodes on a single Redis crosses here too: the many-node and
fault tests are collected again in this module, where their ``redis_server``
is the whole cluster (``WholeCluster``: stopped, started, frozen and asked as
one Redis would be) and their nodes run on it. A single master killed or
frozen for a few seconds degrades and recovers as a Redis restart does:
everything crosses again within RECOVERY, and the catch-up delivers, once,
what was said meanwhile.

Left out, and why:

- the 70 s outages (test_faults, test_bus_recovery): they prove the bus retries
  every RETRY_EVERY with no growing backoff, which is the bus's loop whatever
  the Redis; their 3 s and 10 s forms run here, and 140 s would triple the
  module's time;
- test_faults' 20 repeated faults: 40 s on the cluster, as long as every
  other addition here together (it passed, nothing leaked, when measured);
- test_cluster's stock write-only ``AsyncRedisManager``: stock python-socketio
  cannot speak to a cluster, and on a cluster chatsio's broadcast channel is
  sharded (SPUBLISH), which stock never sends;
- test_sharded_bus's idle-node test as written publishes its barrier with a
  plain PUBLISH from a plain client, which a cluster's sharded broadcast
  channel never hears; the test of that name below is its cluster form;
- test_sharded_bus's in-process tests: one counts a single SSUBSCRIBE for 50
  rooms, where a cluster takes one per slot by design (it refuses one spanning
  slots); the other publishes with a plain client; entering a room before the
  other node's message is proven across nodes here (``a_join_then...``);
- test_faults' PostgreSQL loss and SIGTERM tests: nothing of them goes through
  Redis; test_deployments: deployments there keep apart by database number,
  and a cluster has database 0 only; test_heroku: a TLS single Redis, as
  Heroku gives; test_ended_chats' frozen-Redis test builds its Redis inline
  (no fixture to swap) and proves the database's answer, not the bus's.
"""

from __future__ import annotations

import asyncio

import pytest
import test_cluster
import test_faults
from cluster import wait_until
from conftest import TIMEOUT
from helpers import say
from redis_cluster import RedisCluster, WholeCluster, require_redis_tools
from test_bus_recovery import (  # noqa: F401 -- collected again, on the cluster
    QuietChats,
    check_recovery,
    test_a_quiet_chat_catches_up_after_redis_returns,
)
from test_cluster import (  # noqa: F401 -- collected again, on the cluster
    test_chatsio_notify_reaches_every_node,
    test_concurrent_senders_on_two_nodes_share_one_seq,
    test_every_kind_of_event_crosses_nodes,
)
from test_deployments import chatsio_notify
from test_faults import (  # noqa: F401 -- collected again, on the cluster
    test_a_dead_listener_task_is_restarted,
    test_a_hung_redis_never_holds_an_ack,
    test_a_killed_node_loses_nothing_that_was_acked,
    test_a_killed_pubsub_connection_is_noticed_and_replaced,
)
from test_leave import (  # noqa: F401 -- collected again, on the cluster
    test_leaving_on_one_node_empties_the_room_on_the_other,
)
from test_sharded_bus import (  # noqa: F401 -- collected again, on the cluster
    alice_and_bob,
    received,
    start_chat,
    test_a_fresh_connection_gets_the_next_invite,
    test_a_join_then_the_other_nodes_message_arrives_live,
    test_a_node_subscribes_to_the_rooms_of_its_sockets_and_no_others,
    test_a_restarted_redis_has_every_subscription_back_within_5s,
)

from chatsio.protocol import chat_room, user_room
from chatsio.transport.bus import default_channel
from chatsio.transport.channels import room_channel
from chatsio.transport.redis_clients import SILENCE_LIMIT

# test_cluster's: the two nodes on this module's ``redis_server``, the peers.
nodes, peers = test_cluster.nodes, test_cluster.peers

OUTAGE = 3.0  # seconds: shorter than cluster-node-timeout, as a quick restart
# Long enough for a node to give up on a frozen master's pub/sub connection.
PAST_SILENCE = 2 * SILENCE_LIMIT


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory):
    require_redis_tools()
    cluster = RedisCluster(tmp_path_factory.mktemp("redis-cluster")).start()
    yield cluster
    cluster.stop()


@pytest.fixture
async def redis_server(redis_cluster):
    """What the many-node tests call their Redis: here, the whole cluster."""
    assert redis_cluster.ok(), "a previous test left the cluster broken"
    whole = WholeCluster(redis_cluster)
    yield whole
    await whole.recover()


@pytest.fixture
def two_nodes(nodes):
    return nodes


async def test_redis_stopping_degrades_and_recovers(nodes, peers, redis_server):
    """test_faults' 3 s outage, every master stopped."""
    await test_faults.test_redis_stopping_degrades_and_recovers(
        nodes, peers, redis_server, 3
    )


async def test_an_idle_node_receives_none_of_a_busy_nodes_room_traffic(
    nodes, peers, redis_server
):
    """test_sharded_bus's, its barrier a ``chatsio notify``: that broadcast,
    sharded here, reaches the idle node after the busy node heard its own
    room traffic back, so after any of it would have reached the idle one."""
    busy, idle = nodes
    alice, bob = await alice_and_bob(peers, busy, busy)
    chat_id = await start_chat(alice, alice, bob)
    said = [await say(alice, chat_id, f"m{n}") for n in range(40)]
    await wait_until(
        lambda: _at_least(received(busy, "room"), len(said)), within=TIMEOUT
    )
    await chatsio_notify(redis_server.url, "barrier")
    await wait_until(lambda: _at_least(received(idle, "broadcast"), 1), within=TIMEOUT)
    assert await received(idle, "room") == 0


async def _at_least(count, floor: float) -> bool:
    return await count >= floor


async def master_killed(cluster: RedisCluster, port: int, seconds: float) -> None:
    cluster.kill(port)
    await asyncio.sleep(seconds)  # the outage itself
    await asyncio.to_thread(cluster.revive)  # same port, same nodes.conf


async def master_frozen(cluster: RedisCluster, port: int, seconds: float) -> None:
    cluster.freeze(port)
    await asyncio.sleep(seconds)
    cluster.thaw(port)


@pytest.mark.parametrize(
    ("outage", "shard"),
    [
        (master_killed, 0),
        (master_killed, 1),
        (master_killed, 2),
        (master_frozen, 1),
    ],
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


async def test_a_chat_ended_in_an_outage_of_a_members_master_ends_for_him(
    nodes, peers, redis_cluster
):
    """A batch reaching some masters only: alice ends a chat while the master
    of bob's /control channel is frozen past the bus's silence limit, the
    chat's own channel being on another master. Node b hears the chat's room
    close and never bob's terminate (node b's pub/sub to that master is gone
    when it thaws); its catch-up ends the chat for bob all the same."""
    room = await QuietChats(nodes, peers).open()
    broadcast = default_channel(redis_cluster.url)
    bobs = redis_cluster.master_of(room_channel(broadcast, user_room("bob")))
    while (
        redis_cluster.master_of(room_channel(broadcast, chat_room(room.ending))) == bobs
    ):
        room.ending = await room.start()
    await check_recovery(
        room, lambda s: master_frozen(redis_cluster, bobs, s), PAST_SILENCE
    )
    assert redis_cluster.ok()
