"""JSON for Socket.IO packets: orjson wherever it agrees with the standard library.

python-socketio encodes each packet with ``json.dumps`` and decodes it with
python-engineio's ``json.loads`` (the standard library's, refusing integers of
more than 100 digits). orjson is several times faster but differs at the
edges, and each edge is left to the standard library, so every value decodes
as before:

- integers beyond 64 bits: orjson's ``dumps`` refuses them, and its ``loads``
  turns them into floats without a word, so text holding a run of 19 digits
  or more is decoded by the standard library (a shorter integer fits in 64
  bits);
- NaN and Infinity, lone surrogates, nesting deeper than 1024: orjson refuses
  them both ways;
- non-str dict keys, dates, dataclasses: the standard library's rules apply
  (keys made str, a TypeError for the others).

Decoding is left to the standard library only for texts of up to
FALLBACK_MAX characters: a larger one is decoded once, by orjson, whatever it
holds. Otherwise a 6.9 MB text that orjson refuses at its last character (a
lone surrogate) was decoded again, 1.3-1.9 s of CPU on the event loop. So past
that size (beyond any valid packet: the largest, a 4,000-character text with
every character escaped, is about 24 KB), NaN, lone surrogates and nesting
deeper than 1024 make the text invalid, and an integer beyond 64 bits reads
as a float.

Two visible differences. orjson writes non-ASCII characters as UTF-8 where
``json.dumps`` writes ``\\u`` escapes: any JSON parser reads the same text from
both, and the frame is shorter. And a NaN or infinite float becomes ``null``
where ``json.dumps`` writes ``NaN``, which is not JSON and which browsers'
``JSON.parse`` rejects; chatsio sends no floats. Spacing is always compact, as
python-socketio asks for its packets.

Measured: not alone (``5c57997``); the bench's profile at 9,000/s puts
"aiohttp's C WebSocket reader, orjson" together at 2 % of the server's CPU.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson
from engineio import json as engineio_json

# The largest text the standard library decodes (see the module's docstring).
FALLBACK_MAX = 64 * 1024


class Unreadable(ValueError):
    """A text over FALLBACK_MAX that orjson refuses: invalid, and over every
    payload's limit."""


LONG_DIGITS = re.compile(r"\d{19}")
LONG_DIGITS_BYTES = re.compile(rb"\d{19}")
# Types orjson would encode but the standard library refuses: leave them to it.
STRICT = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def dumps(obj: Any, *, separators: tuple[str, str] | None = None, **kwargs) -> str:
    """Encode as ``json.dumps(obj, separators=(",", ":"))`` would."""
    if not kwargs:
        try:
            return orjson.dumps(obj, option=STRICT).decode()
        except TypeError:  # orjson.JSONEncodeError: an edge case above
            pass
    return json.dumps(obj, separators=(",", ":"), **kwargs)


def loads(text: str | bytes, **kwargs) -> Any:
    """Decode as python-engineio's ``json.loads`` would."""
    if kwargs:
        return engineio_json.loads(text, **kwargs)
    if len(text) > FALLBACK_MAX:
        try:
            return orjson.loads(text)
        except ValueError as exc:
            raise Unreadable(str(exc)) from None
    pattern = LONG_DIGITS if isinstance(text, str) else LONG_DIGITS_BYTES
    if pattern.search(text) is None:
        try:
            return orjson.loads(text)
        except ValueError:  # JSONDecodeError, or a str holding a lone surrogate
            pass
    return engineio_json.loads(text)
