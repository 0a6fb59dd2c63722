"""Keep the import direction of docs/architecture.md honest (an AST walk)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "chatsio"

# Bottom to top: a module may import chatsio modules from lower layers only
# (and from its own part).
LAYERS = [
    {"errors", "protocol"},
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
RANK = {part: rank for rank, parts in enumerate(LAYERS) for part in parts}
NEVER = {
    "sockets": {"storage"},  # handlers call services, never storage
    "api": {"storage"},
}
TRANSPORTS = {"socketio", "engineio", "aiohttp"}
TRANSPORT_FREE = {
    "errors",
    "protocol",
    "config",
    "logs",
    "schemas",
    "storage",
    "metrics",
    "services",
}


def part_of(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0].removesuffix(".py") if relative.parts else ""


def imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def violations() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        part = part_of(path)
        if part == "__init__":
            continue
        for name in imports(path):
            top, _, rest = name.partition(".")
            if top == "chatsio":
                target = rest.partition(".")[0]
                if not target or target == part:
                    continue
                if RANK[target] >= RANK[part] or target in NEVER.get(part, ()):
                    found.append(f"{path.relative_to(PACKAGE)} imports {name}")
            elif top in TRANSPORTS and part in TRANSPORT_FREE:
                found.append(f"{path.relative_to(PACKAGE)} imports {name}")
            elif RANK[part] <= RANK["config"] and top not in sys.stdlib_module_names:
                found.append(f"{path.relative_to(PACKAGE)} imports {name}")
    return found


def test_every_module_imports_only_from_lower_layers():
    assert violations() == []


def test_the_walk_sees_every_part():
    parts = {part_of(path) for path in PACKAGE.rglob("*.py")} - {"__init__"}
    assert parts == set(RANK)
