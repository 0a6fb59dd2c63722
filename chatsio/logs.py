"""Log lines a person can trust: nothing a client sends can forge one.

Client-supplied values reach the log in many places (a request path, an event
name, a session id echoed back by Engine.IO), ours and the libraries'. Rather
than escape each at its call site, the handler's formatter escapes every line
break and other control character in the message, so one record is always one
line. A traceback still follows on lines of its own.
"""

from __future__ import annotations

import logging
import sys

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# C0 controls (tab kept), DEL, C1's NEL and the Unicode line and paragraph
# separators: each one a line break to some terminal or log viewer.
_BREAKS = [*range(0x00, 0x09), *range(0x0A, 0x20), 0x7F, 0x85, 0x2028, 0x2029]
ESCAPES = {
    code: f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" for code in _BREAKS
}
ESCAPES |= {0x0A: "\\n", 0x0D: "\\r"}


def one_line(text: str) -> str:
    """``text`` with its line breaks and control characters escaped."""
    return text.translate(ESCAPES)


class OneLineFormatter(logging.Formatter):
    """Formats the message (not its traceback) as one escaped line."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return one_line(super().formatMessage(record))


def setup_logging(level: int) -> None:
    """Log to standard error, one escaped line per record."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(OneLineFormatter(LOG_FORMAT))
    logging.basicConfig(level=level, handlers=[handler])
