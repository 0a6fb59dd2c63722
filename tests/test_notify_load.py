"""The direct check of a plainly valid ``notify`` gives exactly what
marshmallow would, and leaves everything else to marshmallow."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import Schema, ValidationError

from chatsio import protocol
from chatsio.schemas import notify_in, plain_notify

CHAT = "d069b28f-5df2-4177-9b09-e23095bf6fcf"


def by_marshmallow(data):
    """NotifyIn's fields, loaded by marshmallow alone."""
    return Schema.load(notify_in, data)


def strings(most: int):
    """Strings near what Text accepts and refuses: ASCII, any Unicode (lone
    surrogates included), NUL, empty, at and past the bound."""
    return st.one_of(
        st.text(max_size=12),
        st.text(alphabet=st.characters(codec="ascii"), max_size=12),
        st.sampled_from(["", "\x00", "a\x00b", "\ud800", "é\udfff", "🎉", " "]),
        st.sampled_from([most - 1, most, most + 1]).map(lambda n: "x" * n),
        st.sampled_from([most, most + 1]).map(lambda n: "é" * n),
    )


chat_ids = st.one_of(
    st.just(CHAT),
    st.just(CHAT.upper()),
    st.just("{" + CHAT + "}"),
    st.just(CHAT.replace("-", "")),
    st.just(CHAT + " "),
    st.uuids().map(str),
    st.text(max_size=40),
)
others = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.lists(st.none())
)
payloads = st.one_of(
    st.fixed_dictionaries(
        {"id": chat_ids, "text": strings(protocol.TEXT_MAX)},
        optional={
            "client_id": st.one_of(st.none(), strings(protocol.CLIENT_ID_MAX), others),
            "kind": st.one_of(
                st.just("message"), st.sampled_from(["file", "Message", ""]), others
            ),
            "extra": others,
        },
    ),
    st.dictionaries(st.sampled_from(["id", "text", "client_id", "kind"]), others),
    others,
    st.lists(st.just(CHAT)),
)


@settings(max_examples=1500, derandomize=True, database=None)
@given(payloads)
def test_plain_notify_agrees_with_marshmallow(data) -> None:
    fast = plain_notify(data)
    try:
        expected = by_marshmallow(data)
    except ValidationError:
        assert fast is None, f"accepted what marshmallow refuses: {data!r}"
        return
    assert fast is None or fast == expected
    assert notify_in.load(data) == expected


EDGES = [
    None, True, 0, 1.5, [], {}, "", " ", "\x00", "a\x00b", "\ud800", "é\udfff",
    "🎉", "message", "file", CHAT, CHAT.upper(), "{" + CHAT + "}",
    *("x" * n for n in (protocol.CLIENT_ID_MAX, protocol.CLIENT_ID_MAX + 1)),
    *("x" * n for n in (protocol.TEXT_MAX, protocol.TEXT_MAX + 1)),
    *("é" * n for n in (protocol.TEXT_MAX, protocol.TEXT_MAX + 1)),
]  # fmt: skip


@pytest.mark.parametrize("field", ["id", "text", "client_id", "kind", "extra"])
def test_each_field_at_its_edges(field) -> None:
    """A valid message with one field replaced by each edge value in turn."""
    for value in EDGES:
        data = {"id": CHAT, "text": "hello", "client_id": "c-1", field: value}
        test_plain_notify_agrees_with_marshmallow.hypothesis.inner_test(data)


@pytest.mark.parametrize(
    "data",
    [
        {"id": CHAT, "text": "hello"},
        {"id": str(uuid.uuid4()), "text": "ünïcødé 🎉", "client_id": "c-1"},
        {"id": CHAT, "text": "x" * protocol.TEXT_MAX, "kind": "message"},
        {"id": CHAT, "text": "hi", "client_id": None},
    ],
)
def test_ordinary_messages_take_the_direct_check(data) -> None:
    assert plain_notify(data) == by_marshmallow(data)


def test_a_refused_notify_still_names_its_fields() -> None:
    with pytest.raises(ValidationError) as refused:
        notify_in.load({"id": CHAT, "text": "", "extra": 1})
    assert set(refused.value.messages) == {"text", "extra"}
