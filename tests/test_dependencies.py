"""setup.cfg declares what chatsio uses, and the locks and floors keep to it.

setup.cfg's ranges are the tested window: the locks (requirements.txt for
running, requirements-test.txt for the suite) pin its top, and
constraints/floors.txt, which scripts/test-floors installs, pins its bottom.
"""

from __future__ import annotations

import ast
import configparser
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "chatsio"

# Distributions chatsio needs without importing them by name.
USED_UNIMPORTED = {
    "bidict": "transport/fanout.py reads a room's bidict's _fwdm",
    "asyncpg": "SQLAlchemy's postgresql+asyncpg dialect, chosen by DATABASE_URL",
    "aiosqlite": "SQLAlchemy's sqlite+aiosqlite dialect, the default database",
}


def setup_options() -> configparser.ConfigParser:
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    return setup


def requirements(value: str) -> dict[str, Requirement]:
    """Canonical name -> requirement, for a setup.cfg list of them."""
    found = [Requirement(line) for line in value.strip().splitlines()]
    return {canonicalize_name(r.name): r for r in found}


def runtime_requirements() -> dict[str, Requirement]:
    return requirements(setup_options()["options"]["install_requires"])


def tool_requirements() -> dict[str, Requirement]:
    """The ``test`` extra: what the suite itself runs on."""
    return requirements(setup_options()["options.extras_require"]["test"])


def pins(path: Path) -> dict[str, str]:
    """Canonical name -> version for each ``name==version`` line of ``path``."""
    found = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip().rstrip("\\").strip()
        if line and not line.startswith("-"):
            requirement = Requirement(line)
            (spec,) = requirement.specifier
            assert spec.operator == "==", f"{path.name}: {line} is not a pin"
            found[canonicalize_name(requirement.name)] = spec.version
    return found


def third_party_imports() -> dict[str, set[str]]:
    """Top-level module imported outside the standard library -> the files."""
    found: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top != "chatsio" and top not in sys.stdlib_module_names:
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_imported_package_is_declared():
    declared = runtime_requirements()
    distributions = metadata.packages_distributions()
    imports = third_party_imports()
    assert imports, "the AST walk found no third-party import at all"
    for module, files in sorted(imports.items()):
        owners = {canonicalize_name(d) for d in distributions.get(module, [])}
        assert owners, f"{module} (imported by {sorted(files)}) is not installed"
        assert owners & declared.keys(), (
            f"{module} (imported by {sorted(files)}) comes from {sorted(owners)}, "
            "which setup.cfg's install_requires does not declare"
        )


@pytest.mark.parametrize("name", sorted(USED_UNIMPORTED))
def test_packages_used_without_an_import_are_declared(name):
    assert name in runtime_requirements(), f"{name}: {USED_UNIMPORTED[name]}"


def test_every_requirement_is_a_bounded_window():
    """A floor and a cap on each: nothing untested is let in."""
    declared = runtime_requirements() | tool_requirements()
    for requirement in declared.values():
        operators = {spec.operator for spec in requirement.specifier}
        assert operators == {">=", "<"}, f"{requirement}: want >=floor,<cap"


@pytest.mark.parametrize(
    ("lock", "declared"),
    [
        ("requirements.txt", runtime_requirements),
        ("requirements-test.txt", lambda: runtime_requirements() | tool_requirements()),
    ],
)
def test_the_lock_pins_every_requirement_inside_its_range(lock, declared):
    pinned = pins(ROOT / lock)
    for name, requirement in declared().items():
        assert name in pinned, f"{lock} does not pin {name}"
        assert requirement.specifier.contains(pinned[name], prereleases=True), (
            f"{lock} pins {name}=={pinned[name]}, outside setup.cfg's {requirement}"
        )


def test_the_test_lock_runs_the_same_versions_as_the_runtime_lock():
    runtime, test = (
        pins(ROOT / "requirements.txt"),
        pins(ROOT / "requirements-test.txt"),
    )
    differing = {n: (v, test.get(n)) for n, v in runtime.items() if test.get(n) != v}
    assert not differing, f"runtime pin vs test pin: {differing}"


def test_the_floors_file_pins_each_floor_of_setup_cfg():
    declared = runtime_requirements() | tool_requirements()
    floors = {
        name: next(s.version for s in r.specifier if s.operator == ">=")
        for name, r in declared.items()
    }
    pinned = pins(ROOT / "constraints" / "floors.txt")
    assert pinned.keys() == floors.keys(), (
        f"floors.txt and setup.cfg disagree on {pinned.keys() ^ floors.keys()}"
    )
    for name, floor in floors.items():
        assert Version(pinned[name]) == Version(floor), (
            f"floors.txt pins {name}=={pinned[name]}, setup.cfg's floor is {floor}"
        )
