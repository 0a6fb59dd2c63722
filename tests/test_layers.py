"""Keep the import direction of docs/architecture.md honest (``layers``)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from layers import INSIDE, LAYERS, violations

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "chatsio"


def test_every_module_imports_only_from_lower_layers():
    assert violations(PACKAGE) == []


def documented_orders() -> dict[str, list[set[str]]]:
    """The fenced block of architecture.md's Layers section: ``part: a b < c``,
    bottom to top, a line that starts with ``<`` continuing the one before."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    section = text.split("\n## Layers\n", 1)[1].split("\n## ", 1)[0]
    block = section.split("```", 2)[1].split("\n", 1)[1]
    joined = re.sub(r"\n\s+<", " <", block.strip())
    orders = {}
    for line in joined.splitlines():
        name, _, ranks = line.partition(":")
        orders[name.strip()] = [set(rank.split()) for rank in ranks.split("<")]
    return orders


def test_the_documented_ranks_are_the_checked_ones():
    assert documented_orders() == {"chatsio": LAYERS, **INSIDE}


# Each rule, broken on purpose: a tree with an empty module for every rank
# (a folder where the package has one), and one module planted that breaks it.


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "chatsio"
    modules = ["__init__.py"]
    for part in set().union(*LAYERS) - {"__init__"}:
        if part in INSIDE:
            modules += [f"{part}/{name}.py" for name in set().union(*INSIDE[part])]
        elif (PACKAGE / part).is_dir():
            modules.append(f"{part}/__init__.py")
        else:
            modules.append(f"{part}.py")
    for module in modules:
        (root / module).parent.mkdir(parents=True, exist_ok=True)
        (root / module).touch()
    return root


def test_the_empty_copy_breaks_no_rule(tree: Path):
    assert violations(tree) == []


def plant(tree: Path, module: str, source: str) -> list[str]:
    path = tree / module
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"import logging\n{source}\n")
    return violations(tree)


UPWARD = "sockets is not below services"
BYPASSES = {
    "the package's own name": (
        "services/chats.py",
        "from chatsio import sockets",
        "services/chats.py:2: from chatsio import sockets -> chatsio.sockets: "
        + UPWARD,
    ),
    "a module by the package's name": (
        "api/chats.py",
        "from chatsio import storage",
        "api/chats.py:2: from chatsio import storage -> chatsio.storage: "
        "api never imports storage",
    ),
    "a relative import of a module": (
        "services/chats.py",
        "from .. import sockets",
        "services/chats.py:2: from .. import sockets -> chatsio.sockets: " + UPWARD,
    ),
    "a relative import from a module": (
        "services/chats.py",
        "from ..sockets.base import BaseNamespace",
        "services/chats.py:2: from ..sockets.base import BaseNamespace"
        " -> chatsio.sockets.base: " + UPWARD,
    ),
    "a relative import in a package's __init__": (
        "services/__init__.py",
        "from ..sockets import base",
        "services/__init__.py:2: from ..sockets import base"
        " -> chatsio.sockets.base: " + UPWARD,
    ),
    "SQLAlchemy above storage": (
        "services/chats.py",
        "import sqlalchemy",
        "services/chats.py:2: import sqlalchemy -> sqlalchemy: "
        "only storage uses sqlalchemy",
    ),
    "a database driver above storage": (
        "app.py",
        "from asyncpg import exceptions",
        "app.py:2: from asyncpg import exceptions -> asyncpg: "
        "only storage uses asyncpg",
    ),
    "sqlite3 beside storage": (
        "schemas.py",
        "import sqlite3",
        "schemas.py:2: import sqlite3 -> sqlite3: only storage uses sqlite3",
    ),
    "aiosqlite in an entry point": (
        "startup.py",
        "import aiosqlite.core",
        "startup.py:2: import aiosqlite.core -> aiosqlite.core: "
        "only storage uses aiosqlite",
    ),
    "a transport library below transport": (
        "services/chats.py",
        "import socketio",
        "services/chats.py:2: import socketio -> socketio: "
        "socketio is for transport and above, not services",
    ),
    "aiohttp in storage": (
        "storage/users.py",
        "from aiohttp import web",
        "storage/users.py:2: from aiohttp import web -> aiohttp: "
        "aiohttp is for transport and above, not storage",
    ),
    "a third-party library in settings": (
        "config.py",
        "import yaml",
        "config.py:2: import yaml -> yaml: config uses the standard library only",
    ),
    "upward inside transport": (
        "transport/engine.py",
        "from chatsio.transport.server import ChatsioServer",
        "transport/engine.py:2: from chatsio.transport.server import ChatsioServer"
        " -> chatsio.transport.server: inside transport/, server is not below engine",
    ),
    "upward inside transport, relative": (
        "transport/fanout.py",
        "from . import bus",
        "transport/fanout.py:2: from . import bus -> chatsio.transport.bus:"
        " inside transport/, bus is not below fanout",
    ),
    "transport's __init__ from inside transport": (
        "transport/bus.py",
        "from chatsio.transport import RedisBus",
        "transport/bus.py:2: from chatsio.transport import RedisBus"
        " -> chatsio.transport: inside transport/, __init__ is not below bus",
    ),
    "across one rank inside sockets": (
        "sockets/chat.py",
        "from .control import ControlNamespace",
        "sockets/chat.py:2: from .control import ControlNamespace"
        " -> chatsio.sockets.control: inside sockets/, control is not below chat",
    ),
    "upward inside sockets": (
        "sockets/ratelimit.py",
        "import chatsio.sockets.base",
        "sockets/ratelimit.py:2: import chatsio.sockets.base"
        " -> chatsio.sockets.base: inside sockets/, base is not below ratelimit",
    ),
    "transport's internals from the composition root": (
        "app.py",
        "from chatsio.transport.bus import RedisBus",
        "app.py:2: from chatsio.transport.bus import RedisBus"
        " -> chatsio.transport.bus: outside transport/ only chatsio.transport"
        " is imported",
    ),
    "a transport module by its package": (
        "sockets/base.py",
        "from chatsio.transport import server",
        "sockets/base.py:2: from chatsio.transport import server"
        " -> chatsio.transport.server: outside transport/ only chatsio.transport"
        " is imported",
    ),
    "a module in no layer": (
        "helpers.py",
        "",
        "helpers.py: helpers is in no layer",
    ),
    "a module with no rank in its folder": (
        "transport/polling.py",
        "",
        "transport/polling.py: polling has no rank inside transport",
    ),
}


@pytest.mark.parametrize("case", BYPASSES)
def test_a_planted_violation_is_named(tree: Path, case: str):
    module, source, expected = BYPASSES[case]
    assert plant(tree, module, source) == [expected]


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("app.py", "from chatsio.transport import ChatsioServer"),
        ("api/pages.py", "import chatsio"),
        ("schemas.py", "from chatsio import protocol, __version__"),
        ("transport/server.py", "from . import engine, fastjson"),
        ("sockets/chat.py", "from .base import BaseNamespace"),
        ("storage/users.py", "import sqlite3, sqlalchemy.exc"),
        ("services/chats.py", "from .emitter import Emitter"),
    ],
)
def test_an_allowed_import_passes(tree: Path, module: str, source: str):
    assert plant(tree, module, source) == []
