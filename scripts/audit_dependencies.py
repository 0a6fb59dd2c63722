"""Fail if a package chatsio runs on has a known vulnerability.

Audits chatsio's runtime dependencies (install_requires and what they
require, as installed), not the test tools.

pip-audit is the tool for this, but it asks PyPI for each release's JSON
(/pypi/NAME/VERSION/json), which the registry mirror on this project's machines
does not serve: pip-audit then reports every package as "not found" and exits
0, auditing nothing. This asks the same advisory data (PyPI's
``vulnerabilities`` field, fed by the Python Packaging Advisory Database) for
the release itself when served, else for the latest release when that is the
one installed, and fails loudly on a package it could not audit.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PYPI = "https://pypi.org/pypi"


def fetch(url: str) -> dict | None:
    try:
        with urllib.request.urlopen(url, timeout=20) as response:
            return json.load(response)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise


def audit(name: str, version: str) -> tuple[str, list[str] | None]:
    """The advisories that affect ``name`` ``version``; None when unknowable."""
    release = fetch(f"{PYPI}/{name}/{version}/json")
    if release is None:
        latest = fetch(f"{PYPI}/{name}/json")
        if latest is None or latest["info"]["version"] != version:
            return name, None
        release = latest
    found = [
        f"{v['id']} (fixed in {', '.join(v.get('fixed_in') or ['?'])})"
        for v in release.get("vulnerabilities", [])
        if not v.get("withdrawn")
    ]
    return name, found


def runtime_closure(root: str) -> dict[str, str]:
    """Installed name -> version for everything ``root`` needs to run."""
    found: dict[str, str] = {}
    todo = [(root, frozenset())]
    while todo:
        name, extras = todo.pop()
        dist = metadata.distribution(name)
        for line in dist.requires or []:
            requirement = Requirement(line)
            wanted = requirement.marker is None or any(
                requirement.marker.evaluate({"extra": extra})
                for extra in (extras or {""})
            )
            key = canonicalize_name(requirement.name)
            if wanted and key not in found:
                try:
                    found[key] = metadata.version(requirement.name)
                except metadata.PackageNotFoundError:
                    continue  # an optional platform package not installed here
                todo.append((requirement.name, frozenset(requirement.extras)))
    return found


def main() -> int:
    installed = runtime_closure("chatsio")
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda item: audit(*item), sorted(installed.items())))
    vulnerable = {name: found for name, found in results if found}
    unknown = [name for name, found in results if found is None]
    for name, found in vulnerable.items():
        print(f"VULNERABLE {name} {installed[name]}: {'; '.join(found)}")
    for name in unknown:
        print(f"NOT AUDITED {name} {installed[name]}: not the latest release, and")
        print("  the registry does not serve that release's advisories")
    print(
        f"audited {len(results) - len(unknown)} packages: {len(vulnerable)} vulnerable"
    )
    return 1 if vulnerable or unknown else 0


if __name__ == "__main__":
    sys.exit(main())
