"""scripts/audit_dependencies.py against a package index of the test's own.

The script must ask the index pip is configured with (``PIP_INDEX_URL``, or
``index-url`` in pip's configuration files), never a host of its own, and
must fail on anything it could not audit. The fake index here serves what a
PyPI-style index serves for a project, ``/pypi/NAME/json``: the latest
release's ``info.version`` and its ``vulnerabilities``; like some mirrors, it
serves no per-release JSON (``/pypi/NAME/VERSION/json`` is 404).
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cluster import free_port

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "audit_dependencies.py"
RUN_TIMEOUT = 120.0  # 30-odd packages, a pip subprocess, a loaded machine
ADVISORY = {
    "id": "GHSA-test-0000-0000",
    "fixed_in": ["99.0"],
    "withdrawn": None,
}


@dataclass
class FakeIndex:
    """What the index says about each project, and what it was asked."""

    vulnerable: set[str] = field(default_factory=set)
    newer: set[str] = field(default_factory=set)  # latest is not what is installed
    asked: list[str] = field(default_factory=list)

    async def project(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self.asked.append(name)
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            raise web.HTTPNotFound() from None
        if name in self.newer:
            version = "999.0"
        found = [ADVISORY] if name in self.vulnerable else []
        return web.json_response(
            {"info": {"name": name, "version": version}, "vulnerabilities": found}
        )


@dataclass
class Run:
    returncode: int
    lines: list[str]


@pytest.fixture
async def index() -> AsyncIterator[tuple[FakeIndex, str]]:
    """A fake index and its simple-API URL, as pip is configured with it."""
    fake = FakeIndex()
    app = web.Application()
    app.router.add_get("/pypi/{name}/json", fake.project)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield fake, str(server.make_url("/simple/"))
    finally:
        await server.close()


async def audit(tmp_path: Path, **pip_env: str) -> Run:
    """Run the script with pip configured only by ``pip_env`` (and an empty
    user configuration); its output, one line per list item."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path / "config"))
    env.update(pip_env)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(SCRIPT),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), RUN_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    return Run(process.returncode, output.decode().splitlines())


async def test_a_clean_index_passes(index, tmp_path: Path):
    fake, url = index
    run = await audit(tmp_path, PIP_INDEX_URL=url)
    assert run.returncode == 0, run.lines
    assert "aiohttp" in fake.asked, "the configured index was never asked"
    assert run.lines[-1] == f"audited {len(set(fake.asked))} packages: 0 vulnerable"


async def test_a_vulnerable_dependency_fails(index, tmp_path: Path):
    fake, url = index
    fake.vulnerable.add("aiohttp")
    run = await audit(tmp_path, PIP_INDEX_URL=url)
    assert run.returncode == 1, run.lines
    version = metadata.version("aiohttp")
    assert f"VULNERABLE aiohttp {version}: GHSA-test-0000-0000 (fixed in 99.0)" in (
        run.lines
    )


async def test_a_release_the_index_has_no_advisories_for_fails(index, tmp_path):
    fake, url = index
    fake.newer.add("marshmallow")
    run = await audit(tmp_path, PIP_INDEX_URL=url)
    assert run.returncode == 1, run.lines
    not_audited = [line for line in run.lines if line.startswith("NOT AUDITED")]
    assert len(not_audited) == 1 and "marshmallow" in not_audited[0], run.lines


async def test_the_index_from_a_pip_configuration_file(index, tmp_path: Path):
    fake, url = index
    fake.vulnerable.add("aiohttp")
    pip_conf = tmp_path / "pip.conf"
    pip_conf.write_text(f"[global]\nindex-url = {url}\n")
    run = await audit(tmp_path, PIP_CONFIG_FILE=str(pip_conf))
    assert run.returncode == 1, run.lines
    assert any(line.startswith("VULNERABLE aiohttp") for line in run.lines)


async def test_an_unreachable_index_fails_in_one_line(tmp_path: Path):
    url = f"http://127.0.0.1:{free_port()}/simple/"
    run = await audit(tmp_path, PIP_INDEX_URL=url)
    assert run.returncode == 1, run.lines
    assert len(run.lines) == 1 and url.removesuffix("simple/") in run.lines[0], (
        run.lines
    )


async def test_an_index_without_a_json_api_fails_in_one_line(index, tmp_path):
    fake, url = index
    run = await audit(tmp_path, PIP_INDEX_URL=url.replace("/simple/", "/flat/"))
    assert run.returncode == 1, run.lines
    assert len(run.lines) == 1 and "/flat/" in run.lines[0], run.lines
    assert fake.asked == []
