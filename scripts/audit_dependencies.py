"""Fail if a package chatsio runs on has a known vulnerability.

Audits chatsio's runtime dependencies (install_requires and what they
require, as installed), not the test tools, against the package index pip is
configured with: ``PIP_INDEX_URL``, else ``index-url`` in pip's configuration
files (both as ``pip config list`` reports them), else pip's own default.

The advisories are the index's JSON API's ``vulnerabilities`` field (fed by
the Python Packaging Advisory Database), served beside a PyPI-style index's
``.../simple/`` at ``.../pypi/NAME/json``. pip-audit reads the same field, but
only from each release's own JSON (``/pypi/NAME/VERSION/json``), which some
mirrors do not serve: pip-audit then reports every package as "not found" and
exits 0, auditing nothing. This asks for the release's JSON when served, else
for the project's, whose advisories are its latest release's and so count
only when that is the one installed; it fails loudly on a package it could
not audit, and in one line when the index cannot be asked at all.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from urllib.parse import urlsplit, urlunsplit

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

# pip's configuration keys for the index, the first one set wins: an
# environment variable, then ``pip install``'s section, then ``global``.
INDEX_KEYS = (":env:.index-url", "install.index-url", "global.index-url")


class AuditError(Exception):
    """The audit cannot run at all; the message is its one line."""


def pip_index_url() -> str:
    """The index ``pip install`` would use here."""
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"],
        capture_output=True,
        text=True,
    )
    if pip.returncode:
        why = (pip.stderr.strip().splitlines() or ["no output"])[-1]
        raise AuditError(f"cannot audit: `pip config list` failed: {why}")
    listed = pip.stdout
    settings = {}
    for line in listed.splitlines():
        key, _, value = line.partition("=")
        settings[key] = ast.literal_eval(value)  # pip prints each value's repr
    for key in INDEX_KEYS:
        if settings.get(key):
            return settings[key].split()[0]
    from pip._internal.models.index import PyPI  # what pip uses when unset

    return PyPI.simple_url


def json_api(index_url: str) -> str:
    """Where a PyPI-style index at ``index_url`` serves its JSON API."""
    parts = urlsplit(index_url)
    path = parts.path.rstrip("/")
    if parts.scheme not in ("http", "https") or not path.endswith("/simple"):
        raise AuditError(
            f"cannot audit: the package index {shown(index_url)} is not a "
            "PyPI-style .../simple/ index, so it serves no advisories"
        )
    api_path = path.removesuffix("/simple") + "/pypi"
    return urlunsplit((parts.scheme, parts.netloc, api_path, "", ""))


def shown(url: str) -> str:
    """``url`` without any credentials in it."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, ""))


def fetch(url: str) -> dict | None:
    """The JSON at ``url``; None when the index does not serve it (404)."""
    try:
        with urllib.request.urlopen(url, timeout=20) as response:
            return json.load(response)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise AuditError(f"cannot audit: {shown(url)} answered {exc.code}") from None
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise AuditError(f"cannot audit: {shown(url)}: {reason}") from None


def audit(api: str, name: str, version: str) -> tuple[str, list[str] | None]:
    """The advisories that affect ``name`` ``version``; None when unknowable."""
    release = fetch(f"{api}/{name}/{version}/json")
    if release is None:
        latest = fetch(f"{api}/{name}/json")
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
    try:
        api = json_api(pip_index_url())
        with ThreadPoolExecutor(16) as pool:
            results = list(
                pool.map(lambda item: audit(api, *item), sorted(installed.items()))
            )
    except AuditError as exc:
        print(exc)
        return 1
    vulnerable = {name: found for name, found in results if found}
    unknown = [name for name, found in results if found is None]
    for name, found in vulnerable.items():
        print(f"VULNERABLE {name} {installed[name]}: {'; '.join(found)}")
    for name in unknown:
        print(
            f"NOT AUDITED {name} {installed[name]}: not the latest release, and "
            f"{shown(api)} serves no advisories for it"
        )
    print(
        f"audited {len(results) - len(unknown)} packages: {len(vulnerable)} vulnerable"
    )
    return 1 if vulnerable or unknown else 0


if __name__ == "__main__":
    sys.exit(main())
