"""orjson for Socket.IO packets decodes and encodes as the standard library did."""

from __future__ import annotations

import datetime
import json
import math

import orjson
import pytest
from engineio import json as engineio_json
from hypothesis import given
from hypothesis import strategies as st
from socketio import packet

from chatsio.transport import fastjson
from chatsio.transport.server import ChatsioPacket, encode_text

leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),  # beyond 64 bits too
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(),  # lone surrogates too
)
values = st.recursive(
    leaves,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(st.text(max_size=5), inner, max_size=5)
    ),
    max_leaves=30,
)


def outcome(decode, text):
    try:
        return "value", decode(text)
    except (ValueError, RecursionError) as exc:
        return "error", type(exc)


@given(values)
def test_what_it_writes_reads_back_as_what_json_wrote(value) -> None:
    ours = fastjson.dumps(value, separators=(",", ":"))
    assert isinstance(ours, str)
    assert json.loads(ours) == json.loads(json.dumps(value))


@given(values)
def test_it_reads_json_text_as_engineio_does(value) -> None:
    text = json.dumps(value)
    assert outcome(fastjson.loads, text) == outcome(engineio_json.loads, text)


@pytest.mark.parametrize(
    "text",
    [
        "123456789012345678901234567890",  # orjson alone would make it a float
        "-9223372036854775809",
        "18446744073709551616",
        "1" * 150,  # engineio refuses integers over 100 digits
        "NaN",
        "[-Infinity]",
        "1e400",
        '"\\ud800"',
        "[" * 2000 + "]" * 2000,
        '{"a": 1, "a": 2}',
        "[1,]",
        "",
    ],
)
def test_edge_cases_read_as_engineio_reads_them(text: str) -> None:
    ours, theirs = outcome(fastjson.loads, text), outcome(engineio_json.loads, text)
    if ours[0] == "value" and isinstance(ours[1], float) and math.isnan(ours[1]):
        assert math.isnan(theirs[1])
    else:
        assert ours == theirs
    assert outcome(fastjson.loads, text.encode()) == outcome(
        engineio_json.loads, text.encode()
    )


def test_keys_and_types_json_refuses_or_converts_are_left_to_json() -> None:
    assert fastjson.dumps({1: [2**70]}) == '{"1":[1180591620717411303424]}'
    with pytest.raises(TypeError):
        fastjson.dumps({"at": datetime.datetime.now()})
    assert fastjson.dumps("é\x1e") == '"é\\u001e"'  # UTF-8, control chars escaped


binary_values = st.recursive(
    leaves | st.binary(max_size=3) | st.binary(max_size=3).map(bytearray),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=3) | st.integers(), inner, max_size=4)
        | st.tuples(inner, inner)
    ),
    max_leaves=20,
)


def test_binary_data_anywhere_makes_a_binary_packet() -> None:
    event = ChatsioPacket(packet.EVENT, data=["file", {"data": b"x"}])
    assert event.packet_type == packet.BINARY_EVENT
    text = ChatsioPacket(packet.EVENT, data=["notify", {"text": "x", "n": 2**70}])
    assert text.packet_type == packet.EVENT


@given(
    binary_values,
    st.sampled_from([packet.EVENT, packet.ACK]),
    st.sampled_from([None, "/", "/chat"]),
    st.one_of(st.none(), st.integers(0, 10**12)),
)
def test_one_pass_text_packets_read_as_the_packet_class_writes_them(
    value, packet_type, namespace, id
) -> None:
    data = [value]
    encoded = encode_text(packet_type, namespace, id, data)
    pkt = ChatsioPacket(packet_type, namespace=namespace, id=id, data=data)
    if encoded is None:  # left to the packet class: binary, or beyond orjson
        assert pkt.packet_type != packet_type or orjson_refuses(data)
    else:
        assert pkt.packet_type == packet_type
        assert encoded == pkt.encode()


def orjson_refuses(data) -> bool:
    try:
        orjson.dumps(data, option=fastjson.STRICT)
    except TypeError:
        return True
    return False
