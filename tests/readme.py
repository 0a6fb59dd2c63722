"""README.md's fenced shell and Python blocks, each with the mark before it.

Every ``sh`` or ``python`` block is preceded by an HTML comment on the line
above: ``<!-- example: NAME -->`` for an example that tests/test_readme_examples.py
runs, ``<!-- not run: WHY -->`` for a command or recipe checked elsewhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
FENCE = re.compile(
    r"(?:^<!-- (?P<mark>.*?) -->\n)?^```(?P<language>\w*)\n(?P<code>.*?)^```$",
    re.MULTILINE | re.DOTALL,
)
RUNNABLE = {"sh", "bash", "shell", "console", "python", "py"}


@dataclass(frozen=True)
class Block:
    language: str
    code: str
    mark: str | None  # the comment's text, None when the block has none
    line: int  # of the opening fence, for messages

    @property
    def example(self) -> str | None:
        """The example's name when the test runs this block."""
        if self.mark and self.mark.startswith("example: "):
            return self.mark.removeprefix("example: ")
        return None


def blocks() -> list[Block]:
    """The README's shell and Python blocks, in order."""
    text = README.read_text()
    found = []
    for match in FENCE.finditer(text):
        if match["language"] in RUNNABLE:
            line = text.count("\n", 0, match.start("language")) + 1
            found.append(Block(match["language"], match["code"], match["mark"], line))
    return found
