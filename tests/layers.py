"""The import rules of docs/architecture.md, checked on a package tree (an AST walk).

``violations(root)`` reads every module under ``root`` (a package directory)
and names each import that breaks a rule, as ``path:line: import -> target:
why``. Every import counts: ``import a.b``, ``from a import b`` (``b`` is a
module when the tree has one by that name, else a name in ``a``) and relative
imports, resolved against the importing module's package.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# Bottom to top: a module may import the package's modules from lower ranks
# only, and from its own part (a top-level module or folder); ``__init__`` is
# the package's own (its version).
LAYERS = [
    {"__init__", "errors", "protocol"},
    {"config", "logs"},
    {"schemas", "storage", "metrics"},
    {"services"},
    {"transport"},
    {"sockets", "api"},
    {"app"},
    {"startup"},  # the command line's: start-up failures as one line
    {"arguments"},  # the command line's: its parser and help
    {"cli"},
    {"__main__"},
]
# Inside these folders, bottom to top in the same way (from today's imports).
INSIDE = {
    "transport": [
        {
            "attachments",
            "channels",
            "fastjson",
            "junk",
            "ledger",
            "redis_clients",
            "rerun",
            "websocket",
        },
        {"engine"},  # websocket
        {"server"},  # attachments, engine, fastjson, junk
        {"fanout"},  # engine, server
        {"bus"},  # channels, fastjson, redis_clients
        # bus, fanout, ledger; engine, fanout, server; bus, redis_clients
        {"cluster", "pieces", "presence"},
        {"read_catchup", "presence_catchup"},  # cluster
        {"catchup"},  # cluster, ledger, read_catchup, rerun
        {"__init__"},  # what the rest of chatsio may import
    ],
    "sockets": [
        {"ratelimit"},
        {"base"},  # ratelimit
        {"chat", "control", "emitter"},  # base
        {"__init__"},
    ],
}
NEVER = {
    "sockets": {"storage"},  # handlers call services, never storage
    "api": {"storage"},
}
# Folders whose modules only their own folder imports: the rest of the package
# takes what the folder's __init__ exports.
CLOSED = {"transport"}
TRANSPORTS = {"socketio", "engineio", "aiohttp"}
STORAGE_LIBRARIES = {"sqlalchemy", "asyncpg", "aiosqlite", "sqlite3"}


def ranks(layers: list[set[str]]) -> dict[str, int]:
    return {name: rank for rank, names in enumerate(layers) for name in names}


RANK = ranks(LAYERS)
INSIDE_RANK = {folder: ranks(order) for folder, order in INSIDE.items()}


@dataclass(frozen=True)
class Import:
    line: int
    text: str  # as written
    target: str  # the dotted module it reaches


class Tree:
    """The modules of a package directory, by dotted name."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.modules = {self.name_of(path): path for path in root.rglob("*.py")}

    def name_of(self, path: Path) -> str:
        parts = [self.root.name, *path.relative_to(self.root).with_suffix("").parts]
        return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)

    def imports(self, path: Path) -> Iterator[Import]:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield Import(node.lineno, f"import {alias.name}", alias.name)
            elif isinstance(node, ast.ImportFrom):
                base = self.resolve(path, node.level, node.module)
                text = f"from {'.' * node.level}{node.module or ''} import"
                for alias in node.names:
                    member = f"{base}.{alias.name}"
                    target = member if member in self.modules else base
                    yield Import(node.lineno, f"{text} {alias.name}", target)

    def resolve(self, path: Path, level: int, module: str | None) -> str:
        """The absolute name ``from <level dots><module>`` means in ``path``."""
        if level == 0:
            return module or ""
        package = self.name_of(path).split(".")
        if path.name != "__init__.py":
            package.pop()
        base = package[: len(package) - (level - 1)]
        return ".".join([*base, module] if module else base)


def place(name: str) -> tuple[str, str]:
    """(part, name inside the part's folder) of a dotted module name."""
    parts = name.split(".")[1:]
    return (parts[0] if parts else "__init__"), (parts[1] if len(parts) > 1 else "")


def violations(root: Path) -> list[str]:
    tree = Tree(root)
    found = []
    for name, path in sorted(tree.modules.items()):
        where = path.relative_to(root)
        unplaced = unranked(name)
        if unplaced:
            found.append(f"{where}: {unplaced}")
            continue
        for found_import in tree.imports(path):
            why = broken_rule(tree.root.name, name, found_import.target)
            if why:
                line = f"{where}:{found_import.line}: {found_import.text}"
                found.append(f"{line} -> {found_import.target}: {why}")
    return found


def unranked(name: str) -> str | None:
    part, inner = place(name)
    if part not in RANK:
        return f"{part} is in no layer"
    if part in INSIDE and (inner or "__init__") not in INSIDE_RANK[part]:
        return f"{inner} has no rank inside {part}"
    return None


def broken_rule(package: str, source: str, target: str) -> str | None:
    part, inner = place(source)
    top = target.partition(".")[0]
    if top != package:
        return library_rule(part, top)
    target_part, target_inner = place(target)
    if target_part != part:
        if target_part not in RANK:
            return f"{target_part} is in no layer"
        if RANK[target_part] >= RANK[part]:
            return f"{target_part} is not below {part}"
        if target_part in NEVER.get(part, ()):
            return f"{part} never imports {target_part}"
        if target_part in CLOSED and target_inner:
            return f"outside {target_part}/ only {package}.{target_part} is imported"
        return None
    if part not in INSIDE or target == source:
        return None
    order = INSIDE_RANK[part]
    below, above = order.get(target_inner or "__init__"), order[inner or "__init__"]
    if below is None or below >= above:
        return f"inside {part}/, {target_inner or '__init__'} is not below {inner}"
    return None


def library_rule(part: str, library: str) -> str | None:
    if library in TRANSPORTS and RANK[part] < RANK["transport"]:
        return f"{library} is for transport and above, not {part}"
    if library in STORAGE_LIBRARIES and part != "storage":
        return f"only storage uses {library}"
    if RANK[part] <= RANK["config"] and library not in sys.stdlib_module_names:
        return f"{part} uses the standard library only"
    return None
