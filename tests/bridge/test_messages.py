"""What calls and answers say inside frames: CBOR under fixed ids, checked; anything else is MalformedMessage."""

from __future__ import annotations

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nexus.cluster.bridge.messages import CALL, OUTCALL, REGISTER, REPLY, TELEMETRY, MalformedMessage, decode, encode


def test_each_message_decodes_to_its_fields_and_the_wrong_shape_is_refused() -> None:
    assert decode(REGISTER, encode(["led", ["on", "off"]])) == ["led", ["on", "off"]]
    assert decode(REPLY, encode([7, True, {"t": 21.5}])) == [7, True, {"t": 21.5}]
    assert decode(REPLY, encode([7, False, "OSError(5,)"])) == [7, False, "OSError(5,)"]
    assert decode(OUTCALL, encode([0, "counter", "incr", [1]])) == [0, "counter", "incr", [1]]
    assert decode(TELEMETRY, encode(["temp", 21.5])) == ["temp", 21.5]
    for message_id, value in [
        (REGISTER, ["led", "on"]),  # methods not a list
        (REGISTER, ["", []]),  # no name
        (REGISTER, ["x" * 65, []]),  # a name too long
        (REPLY, [7, False, 5]),  # an error that is not text
        (REPLY, [True, True, 1]),  # a boolean for a call id
        (CALL, [1, "a", "b"]),  # no arguments
        (OUTCALL, [-1, "a", "b", []]),
        (TELEMETRY, {"temp": 1}),
    ]:
        with pytest.raises(MalformedMessage):
            decode(message_id, encode(value))
    with pytest.raises(MalformedMessage, match="unknown message id"):
        decode(0x99, encode([]))
    with pytest.raises(MalformedMessage, match="plain values only"):  # (a tag cbor2 knows: a date)
        decode(TELEMETRY, cbor2.dumps(["time", cbor2.CBORTag(1, 0)]))
    with pytest.raises(MalformedMessage, match="tag 999"):
        decode(TELEMETRY, cbor2.dumps(["x", cbor2.CBORTag(999, 0)]))
    with pytest.raises(MalformedMessage, match="not CBOR"):
        decode(REPLY, b"\x9f")
    with pytest.raises(TypeError, match="plain values only"):
        encode([1, {2, 3}])


@settings(max_examples=400, derandomize=True)
@given(st.sampled_from([REGISTER, CALL, REPLY, OUTCALL, TELEMETRY, 0x46]), st.binary(max_size=200))
def test_any_payload_decodes_or_is_malformed_never_anything_else(message_id: int, payload: bytes) -> None:
    try:
        decode(message_id, payload)
    except MalformedMessage:
        pass
