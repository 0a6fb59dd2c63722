"""What a user reads leads somewhere: the protocol is the repository's own
(docs/protocol.md), and every relative link in README.md and docs/*.md
resolves to a file in the repository (and a heading, for a #fragment)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from chatsio.api.openapi import build_spec

ROOT = Path(__file__).resolve().parent.parent
PROTOCOL = ROOT / "docs" / "protocol.md"
# The files a user may read or run (the tests' own references aside).
READ = (".py", ".md", ".json", ".js", ".html", ".conf")
# A contract outside the repository, by either name it went by.
OUTSIDE = re.compile(r"shared/|PROTOCOL\.md")
# [text](target) and ![alt](target); the target up to a space or ")".
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)[^)]*\)")
CODE_BLOCK = re.compile(r"^```.*?^```", re.M | re.S)


def repository_files() -> list[Path]:
    """Tracked and untracked files, less what .gitignore leaves out."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    return [ROOT / name for name in listed if (ROOT / name).is_file()]


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(document: Path) -> set[str]:
    text = CODE_BLOCK.sub("", document.read_text())
    return {slug(m[1]) for m in re.finditer(r"^#+\s+(.*)$", text, re.M)}


def links(document: Path) -> list[str]:
    """The link targets in ``document``, code blocks left out."""
    return LINK.findall(CODE_BLOCK.sub("", document.read_text()))


def test_nothing_a_user_reads_points_outside_the_repository():
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in repository_files()
        if path.suffix in READ and path.relative_to(ROOT).parts[0] != "tests"
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if OUTSIDE.search(line)
    ]
    assert found == [], "\n".join(found)


@pytest.mark.parametrize("document", documents(), ids=lambda p: p.name)
def test_every_relative_link_resolves(document: Path):
    broken = []
    for target in links(document):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        path, _, fragment = target.partition("#")
        linked = (document.parent / path).resolve() if path else document
        if not linked.is_relative_to(ROOT) or not linked.exists():
            broken.append(f"{target}: no such file in the repository")
        elif fragment and linked.suffix == ".md" and fragment not in anchors(linked):
            broken.append(f"{target}: no such heading in {linked.name}")
    assert broken == [], f"{document.name}: {broken}"


def test_the_readme_and_the_api_point_to_the_protocol():
    assert PROTOCOL.is_file()
    readme = (ROOT / "README.md").read_text()
    first_paragraph = readme.split("\n\n")[1]
    assert "(docs/protocol.md)" in first_paragraph
    assert "docs/protocol.md" in build_spec()["info"]["description"]
