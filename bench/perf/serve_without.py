"""``chatsio serve`` with some transport speed-ups taken away, so that the
library's own code runs in their place (``chatsio.transport.pieces``).

    python bench/perf/serve_without.py PIECE[,PIECE...] serve [arguments]

A bench launcher, not a setting: production has no way to turn a piece off.
"""

from __future__ import annotations

import sys

from chatsio.cli import main
from chatsio.transport.pieces import without

if __name__ == "__main__":
    removed, *argv = sys.argv[1:]
    without(*removed.split(","))
    sys.exit(main(argv))
