"""The library internals chatsio relies on are still there, as it expects.

One test per internal named in ``upstream_contract.INVENTORY``, checked on the
installed libraries (real instances where it is a member of one), without
Redis or a server: an upgrade that moves one fails here first, naming the
internal and the chatsio code that needs it. Then the inventory's own
honesty: every override and every private library name in chatsio's code is
in it, every site it names exists, and chatsio's own members in library
subclasses are named so that no upstream member can collide with them.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import inspect
import pkgutil
import textwrap
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path

import engineio
import pytest
import socketio
from aiohttp.test_utils import make_mocked_request
from engineio.async_drivers import aiohttp as aiohttp_driver
from engineio.async_socket import AsyncSocket
from sqlalchemy import bindparam, column, select
from sqlalchemy.dialects import postgresql
from upstream_contract import ADDED, COPIED, INVENTORY, Internal

import chatsio

# Libraries whose subclasses in chatsio follow the naming rule.
LIBRARIES = ("socketio", "engineio", "aiohttp", "redis", "bidict", "asyncio")
OWN_PREFIXES = ("chatsio_", "_chatsio_")
ROOT = Path(chatsio.__file__).parent


def resolve(path: str) -> object:
    """The object a dotted path names: the longest importable module, then
    attributes. AttributeError if any part is missing."""
    parts = path.split(".")
    for split in range(len(parts), 0, -1):
        try:
            found = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for part in parts[split:]:
            found = getattr(found, part)
        return found
    raise AttributeError(f"no module in {path}")


def stock_room() -> object:
    """A room of a stock manager, with one socket in it."""
    manager = socketio.AsyncManager()
    manager.set_server(socketio.AsyncServer(async_mode="aiohttp"))
    manager.basic_enter_room("sid", "/chat", "room", eio_sid="eio-sid")
    return manager.rooms["/chat"]["room"]


def stock_manager() -> socketio.AsyncManager:
    manager = socketio.AsyncManager()
    manager.set_server(socketio.AsyncServer(async_mode="aiohttp"))
    return manager


def engineio_socket() -> AsyncSocket:
    return AsyncSocket(engineio.AsyncServer(async_mode="aiohttp"), "sid")


def compiled_statement() -> object:
    statement = select(column("a")).where(column("b") == bindparam("p"))
    return statement.compile(dialect=postgresql.asyncpg.dialect())


# Real instances, by the class path the inventory names them with.
INSTANCES: dict[str, Callable[[], object]] = {
    "socketio.AsyncServer": lambda: socketio.AsyncServer(async_mode="aiohttp"),
    "socketio.packet.Packet": lambda: socketio.packet.Packet(
        encoded_packet='51-/chat,7["file",{"_placeholder":true,"num":0}]'
    ),
    "socketio.AsyncManager": stock_manager,
    "socketio.AsyncRedisManager": lambda: socketio.AsyncRedisManager(
        "redis://127.0.0.1:6379/0", write_only=True
    ),
    "bidict.bidict": stock_room,
    "engineio.AsyncServer": lambda: engineio.AsyncServer(async_mode="aiohttp"),
    "engineio.async_socket.AsyncSocket": engineio_socket,
    "engineio.async_drivers.aiohttp.WebSocket": lambda: aiohttp_driver.WebSocket(
        engineio_socket()._websocket_handler, engineio.AsyncServer()
    ),
    "sqlalchemy.sql.compiler.SQLCompiler": compiled_statement,
}


def signature_text(function: object) -> str:
    """The parameters' names and kinds, as ``(self, a, *args, **kwargs)``."""
    signature = inspect.signature(function)
    bare = [
        parameter.replace(
            default=inspect.Parameter.empty, annotation=inspect.Parameter.empty
        )
        for parameter in signature.parameters.values()
    ]
    return str(
        signature.replace(parameters=bare, return_annotation=inspect.Signature.empty)
    )


def routine_tree(function: object) -> ast.AST:
    function = inspect.unwrap(getattr(function, "__func__", function))
    return ast.parse(textwrap.dedent(inspect.getsource(function))).body[0]


def source_hash(function: object) -> str:
    """A hash of the routine's code: its docstring, comments and layout left
    out, so that only a change of what it does asks for a re-read."""
    tree = routine_tree(function)
    body = tree.body
    if (
        body
        and isinstance(body[0], ast.Expr)
        and isinstance(body[0].value, ast.Constant)
    ):
        tree.body = body[1:] or [ast.Pass()]
    return hashlib.sha256(ast.unparse(tree).encode()).hexdigest()[:16]


def names_used(function: object) -> set[str]:
    """Every name, attribute and string constant in the routine's code."""
    found = set()
    for node in ast.walk(routine_tree(function)):
        if isinstance(node, ast.Name):
            found.add(node.id)
        elif isinstance(node, ast.Attribute):
            found.add(node.attr)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            found.add(node.value)
    return found


def mocked_environ() -> dict:
    request = make_mocked_request(
        "GET", "/socket.io/?EIO=4", headers={"Authorization": "Bearer token"}
    )
    return aiohttp_driver.translate_request(request)


def problem_with(entry: Internal) -> str | None:
    """What is wrong with ``entry`` upstream, or None."""
    owner_path, _, member = entry.upstream.rpartition(".")
    if entry.key is not None:
        return None if entry.key in mocked_environ() else "is gone"
    if entry.kind == ADDED:
        instance = INSTANCES[owner_path]()
        if hasattr(instance, member) or member in assigned_attributes(type(instance)):
            return "now exists upstream, and chatsio's would clobber it"
        return None
    if entry.on_instance:
        return None if hasattr(INSTANCES[owner_path](), member) else "is gone"
    try:
        found = resolve(entry.upstream)
    except AttributeError:
        return "is gone"
    if entry.params is not None and signature_text(found) != entry.params:
        now = getattr(found, "__qualname__", member)
        return f"changed: it is now {now}{signature_text(found)}"
    missing = sorted(set(entry.uses) - names_used(found)) if entry.uses else []
    if missing:
        return f"no longer uses {', '.join(missing)}"
    if entry.value is not None and found != entry.value:
        return f"is now {found!r}"
    if entry.kind == COPIED and (now := source_hash(found)) not in entry.hashes:
        return (
            f"changed upstream (its source hash is now {now}; the copy was "
            f"checked against {', '.join(sorted(entry.hashes))}): re-read the "
            f"copy, then add {now} to its entry in tests/upstream_contract.py"
        )
    return None


def entry_id(entry: Internal) -> str:
    key = f"[{entry.key}]" if entry.key is not None else ""
    return f"{entry.kind}:{entry.upstream}{key}"


@pytest.mark.parametrize("entry", INVENTORY, ids=entry_id)
def test_upstream_internal(entry: Internal) -> None:
    problem = problem_with(entry)
    if problem is not None:
        pytest.fail(
            f"{entry.name} {problem}: needed by {entry.needed_by} ({entry.kind})",
            pytrace=False,
        )


# -- the inventory's honesty -------------------------------------------------


@cache
def chatsio_classes() -> list[type]:
    classes = []
    for module_info in pkgutil.walk_packages(chatsio.__path__, "chatsio."):
        if module_info.name.endswith("__main__"):
            continue
        module = importlib.import_module(module_info.name)
        classes += [
            value
            for value in vars(module).values()
            if isinstance(value, type) and value.__module__ == module.__name__
        ]
    return classes


def is_library(cls: type) -> bool:
    return cls.__module__.split(".")[0] in LIBRARIES


def library_subclasses() -> Iterator[tuple[type, list[type]]]:
    """Each chatsio class with a library class above it, and those classes."""
    for cls in chatsio_classes():
        bases = [base for base in cls.__mro__[1:] if is_library(base)]
        if bases:
            yield cls, bases


@cache
def assigned_attributes(cls: type) -> frozenset[str]:
    """The ``self.<name>`` a class's own methods assign."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError):
        return frozenset()
    found = set()
    for node in ast.walk(tree.body[0]):
        targets = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign | ast.AugAssign):
            targets = [node.target]
        for target in targets:
            for item in ast.walk(target):
                if (
                    isinstance(item, ast.Attribute)
                    and isinstance(item.value, ast.Name)
                    and item.value.id == "self"
                ):
                    found.add(item.attr)
    return frozenset(found)


def library_has(bases: list[type], name: str) -> bool:
    return any(
        name in vars(base) or name in assigned_attributes(base) for base in bases
    )


def is_listed(cls: type, name: str) -> bool:
    """Whether an entry names ``name`` on a library class above ``cls``."""
    for entry in INVENTORY:
        owner_path, _, member = entry.upstream.rpartition(".")
        if name != member and name not in entry.uses:
            continue
        owner = resolve(owner_path)
        if isinstance(owner, type) and owner in cls.__mro__:
            return True
    return False


def own_members(cls: type) -> Iterator[str]:
    """The members a chatsio class defines in its body (functions, class
    attributes), without the ones Python makes."""
    for name, value in vars(cls).items():
        if name.startswith("__") and not callable(value):
            continue
        if name in ("__dict__", "__weakref__", "__slots__", "_abc_impl"):
            continue
        yield name


def test_every_override_is_in_the_inventory() -> None:
    unlisted = [
        f"{cls.__module__}.{cls.__qualname__}.{name}"
        for cls, bases in library_subclasses()
        for name in (*own_members(cls), *assigned_attributes(cls))
        if library_has(bases, name) and not is_listed(cls, name)
    ]
    assert not unlisted, (
        "chatsio overrides or replaces library members the inventory does not "
        f"name; add them to tests/upstream_contract.py: {sorted(set(unlisted))}"
    )


def collides(cls: type, bases: list[type], name: str) -> bool:
    """Whether ``name``, which chatsio defines in ``cls``, breaks the rule."""
    if library_has(bases, name) or name.startswith(OWN_PREFIXES):
        return False
    is_namespace = issubclass(cls, socketio.AsyncNamespace)
    return not (is_namespace and name.startswith("on_"))


def misnamed(members_of: Callable[[type], Iterator[str] | frozenset[str]]) -> list:
    """``members_of`` each library subclass that break the naming rule."""
    return sorted(
        f"{cls.__module__}.{cls.__qualname__}.{name}"
        for cls, bases in library_subclasses()
        for name in members_of(cls)
        if collides(cls, bases, name)
    )


def test_chatsio_members_of_library_subclasses_cannot_collide() -> None:
    unprefixed = misnamed(own_members)
    assert not unprefixed, (
        "members chatsio defines in library subclasses must be overrides, "
        "on_<event> handlers or prefixed chatsio_/_chatsio_, or an upstream "
        f"member of the same name would shadow them: {unprefixed}"
    )


def test_chatsio_attributes_of_library_subclasses_cannot_collide() -> None:
    unprefixed = misnamed(assigned_attributes)
    assert not unprefixed, (
        "instance attributes chatsio sets in library subclasses must be "
        f"library ones (in the inventory) or prefixed chatsio_/_chatsio_: {unprefixed}"
    )


def private_names_used() -> dict[str, str]:
    """Each ``x._name`` in chatsio's code, with the first file that uses it."""
    used: dict[str, str] = {}
    for path in sorted(ROOT.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                used.setdefault(node.attr, str(path.relative_to(ROOT.parent)))
    return used


def chatsio_defines(name: str) -> bool:
    """Whether ``name`` is chatsio's own: a member of a chatsio class that no
    third-party class above it has."""
    for cls in chatsio_classes():
        if name in vars(cls) or name in assigned_attributes(cls):
            third_party = [
                base
                for base in cls.__mro__[1:]
                if base.__module__.split(".")[0] not in ("chatsio", "builtins")
            ]
            return not library_has(third_party, name)
    return False


def test_every_private_library_name_chatsio_uses_is_in_the_inventory() -> None:
    listed = set()
    for entry in INVENTORY:
        listed.add(entry.upstream.rpartition(".")[2])
        listed.update(entry.uses)
    unlisted = [
        f"{name} (in {where})"
        for name, where in private_names_used().items()
        if name not in listed and not chatsio_defines(name)
    ]
    assert not unlisted, (
        "chatsio uses private library names the inventory does not name; add "
        f"them to tests/upstream_contract.py: {sorted(unlisted)}"
    )


def is_chatsio(cls: type) -> bool:
    return cls.__module__.partition(".")[0] == "chatsio"


def site_exists(needed_by: str) -> bool:
    """Whether the chatsio code exists, a class's member defined by the class
    itself (an override removed would still resolve to the library's)."""
    path, _, qualname = needed_by.partition(" ")
    module = path.removesuffix(".py").replace("/", ".")
    owner, _, member = f"{module}.{qualname}".rpartition(".")
    try:
        found = resolve(owner)
    except AttributeError:
        return False
    if inspect.isclass(found):
        return any(member in vars(cls) for cls in found.__mro__ if is_chatsio(cls))
    return hasattr(found, member)


def test_every_site_the_inventory_names_exists() -> None:
    stale = sorted(
        {entry.needed_by for entry in INVENTORY if not site_exists(entry.needed_by)}
    )
    assert not stale, (
        f"tests/upstream_contract.py names chatsio code that is gone: {stale}"
    )


def test_the_overrides_are_found_automatically() -> None:
    """The walk behind the override test sees what it should: the stock
    overrides it must find, and no false one."""
    found = {
        f"{cls.__qualname__}.{name}"
        for cls, bases in library_subclasses()
        for name in own_members(cls)
        if library_has(bases, name)
    }
    assert {"ChatsioServer._handle_event", "ChatsioEngine._service_task"} <= found
    assert not {name for name in found if ".chatsio_" in name or "._chatsio_" in name}
