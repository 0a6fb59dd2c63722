"""``chatsio`` with some transport pieces taken away (``chatsio.transport.pieces``).

    python tests/serve_without.py PIECE[,PIECE...] serve [arguments]

The pieces are removed before anything runs; the rest is ``chatsio``'s
command line.
"""

from __future__ import annotations

import sys

from chatsio.cli import main
from chatsio.transport import pieces


def run(argv: list[str]) -> int:
    names, *rest = argv
    removed = [name for name in names.split(",") if name]
    pieces.without(*removed)
    print(f"serving without {', '.join(removed)}", file=sys.stderr, flush=True)
    return main(rest)


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
