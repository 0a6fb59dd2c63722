"""The transport: chatsio's replacements of python-socketio and python-engineio
parts, each module saying which upstream behaviour it replaces and why.

What the rest of chatsio uses is exported here; ``app.py`` and ``cli.py``
import nothing else from the package. ``pieces`` lists the speed-ups that can
be taken away, for benchmarks and tests.
"""

from chatsio.transport.attachments import AttachmentBudget
from chatsio.transport.bus import TLS_VERIFY_SETTING, RedisBus
from chatsio.transport.catchup import CatchUp
from chatsio.transport.cluster import BusEmitter, ClusterFanout
from chatsio.transport.engine import abort_websocket
from chatsio.transport.fanout import DirectFanout
from chatsio.transport.ledger import DeliveryLedger
from chatsio.transport.presence import RedisDirectory
from chatsio.transport.presence_catchup import PresenceCatchUp
from chatsio.transport.read_catchup import ReadCatchUp
from chatsio.transport.server import ChatsioPacket, ChatsioServer

__all__ = [
    "TLS_VERIFY_SETTING",
    "AttachmentBudget",
    "BusEmitter",
    "CatchUp",
    "ChatsioPacket",
    "ChatsioServer",
    "ClusterFanout",
    "DeliveryLedger",
    "DirectFanout",
    "PresenceCatchUp",
    "ReadCatchUp",
    "RedisBus",
    "RedisDirectory",
    "abort_websocket",
]
