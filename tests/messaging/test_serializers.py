"""Serializers and their registry: every codec, out-of-band buffers, clear errors."""

from __future__ import annotations

import dataclasses
import pickle
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

from nexus.messaging import (
    CborSerializer,
    CloudPickleSerializer,
    CodecId,
    DeserializationError,
    FlatBuffersSerializer,
    JsonSerializer,
    PickleSerializer,
    RawSerializer,
    SerializationError,
    Serializer,
    SerializerRegistry,
    default_registry,
)


@dataclasses.dataclass
class Point:
    x: int
    y: float
    label: str = ""


REDUCE_CALLS: list[int] = []


class Counted:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        REDUCE_CALLS.append(1)
        return (Counted, ())


def _address(view: object) -> int:
    return np.frombuffer(memoryview(view).cast("B"), dtype=np.uint8).__array_interface__["data"][0]


@pytest.mark.parametrize("serializer", [PickleSerializer(), CloudPickleSerializer()])
def test_pickle_codecs_round_trip(serializer: Serializer) -> None:
    value = {"a": [1, 2.5, "x", None, (True, b"bytes")], "nested": {1: {2: 3}}}
    assert serializer.loads(serializer.dumps(value)) == value
    assert serializer.runs_code_on_load and serializer.supports_out_of_band


@pytest.mark.parametrize("serializer", [PickleSerializer(), CloudPickleSerializer()])
def test_numpy_array_travels_out_of_band_without_copying(serializer: Serializer) -> None:
    array = np.arange(1_000_000, dtype=np.int64)
    buffers: list[pickle.PickleBuffer] = []
    payload = serializer.dumps({"a": array}, buffers)
    assert len(payload) < 400, "only the array's description is in band"
    assert len(buffers) == 1
    assert _address(buffers[0]) == array.__array_interface__["data"][0], "the buffer is the array's own memory"
    frames = [memoryview(b).toreadonly() for b in buffers]
    back = serializer.loads(payload, frames)["a"]
    assert np.array_equal(back, array)
    assert back.__array_interface__["data"][0] == array.__array_interface__["data"][0], "loads wraps the buffer, no copy"
    assert not back.flags.writeable, "a read-only buffer gives a read-only array"
    with pytest.raises(ValueError, match="read-only"):
        back[0] = 1


def test_small_buffers_stay_in_band_below_the_threshold() -> None:
    serializer = PickleSerializer(oob_threshold=1024)
    buffers: list[pickle.PickleBuffer] = []
    small, large = np.zeros(10), np.zeros(1000)
    payload = serializer.dumps((small, large), buffers)
    assert len(buffers) == 1 and memoryview(buffers[0]).nbytes == large.nbytes
    a, b = serializer.loads(payload, buffers)
    assert np.array_equal(a, small) and np.array_equal(b, large)


def test_without_a_buffer_list_everything_is_in_band() -> None:
    array = np.arange(10_000)
    payload = PickleSerializer().dumps(array)
    assert len(payload) > array.nbytes
    assert np.array_equal(PickleSerializer().loads(payload), array)


@pytest.mark.parametrize("serializer", [PickleSerializer(), CloudPickleSerializer()])
def test_memoryviews_become_out_of_band_buffers(serializer: Serializer) -> None:
    data = bytearray(range(256)) * 64
    view = memoryview(data)
    shaped = memoryview(bytearray(8 * 1000)).cast("d", (100, 10))
    buffers: list[pickle.PickleBuffer] = []
    payload = serializer.dumps(["head", view, shaped], buffers)
    assert len(buffers) == 2
    assert _address(buffers[0]) == _address(view)
    head, back, back_shaped = serializer.loads(payload, buffers)
    assert head == "head" and bytes(back) == bytes(data)
    assert back_shaped.format == "d" and back_shaped.shape == (100, 10)
    # a non-contiguous view is copied in band, and still comes back right
    strided = memoryview(bytearray(range(100)))[::2]
    assert bytes(serializer.loads(serializer.dumps(strided, []))) == bytes(range(0, 100, 2))


def test_failed_dumps_leaves_no_partial_buffers() -> None:
    buffers: list[pickle.PickleBuffer] = []
    with pytest.raises(SerializationError):
        PickleSerializer().dumps([np.zeros(10_000), threading.Lock()], buffers)
    assert buffers == []


def test_unserializable_object_is_named_with_its_path() -> None:
    lock = threading.Lock()
    with pytest.raises(SerializationError, match=r"lock object .* at \[1\]\['inner'\]") as info:
        PickleSerializer().dumps((1, {"inner": lock}))
    assert isinstance(info.value, TypeError)
    with pytest.raises(SerializationError, match=r"at \[0\]"):
        CloudPickleSerializer().dumps([lock])


def test_plain_pickle_refuses_a_lambda_cloudpickle_takes_it() -> None:
    with pytest.raises(SerializationError, match="function"):
        PickleSerializer().dumps(lambda x: x + 1)
    double = CloudPickleSerializer().loads(CloudPickleSerializer().dumps(lambda x: x * 2))
    assert double(21) == 42


def test_cloudpickle_ships_classes_and_functions_defined_in_main(tmp_path: object) -> None:
    """A class and a function of a notebook (``__main__``) reach another process by value."""
    writer = textwrap.dedent(
        """
        import sys
        from nexus.messaging import CloudPickleSerializer

        class Greeter:
            def __init__(self, name):
                self.name = name
            def greet(self):
                return f"hello {self.name} from {scale(2)}"

        def scale(x):
            return x * 21

        sys.stdout.buffer.write(CloudPickleSerializer().dumps(Greeter("nexus")))
        """
    )
    reader = (
        "import sys; from nexus.messaging import CloudPickleSerializer; "
        "print(CloudPickleSerializer().loads(sys.stdin.buffer.read()).greet())"
    )
    payload = subprocess.run([sys.executable, "-c", writer], capture_output=True, check=True).stdout
    out = subprocess.run([sys.executable, "-c", reader], input=payload, capture_output=True, check=True).stdout
    assert out.decode().strip() == "hello nexus from 42"


def test_raw_codec() -> None:
    raw = RawSerializer()
    assert raw.loads(raw.dumps(b"abc")) == b"abc"
    assert raw.dumps(bytearray(b"x")) == b"x" and raw.dumps(memoryview(b"yz")) == b"yz"
    with pytest.raises(SerializationError, match="raw codec takes bytes"):
        raw.dumps("text")
    assert not raw.runs_code_on_load


@pytest.mark.parametrize("serializer", [JsonSerializer(), CborSerializer()])
def test_safe_structured_codecs(serializer: Serializer) -> None:
    value = {"a": [1, 2.5, "x", None, True], "b": {"c": -3}}
    assert serializer.loads(serializer.dumps(value)) == value
    assert not serializer.runs_code_on_load
    # a dataclass travels as its fields and comes back typed when the receiver names the type
    encoded = serializer.dumps(Point(1, 2.5, "p"))
    assert serializer.loads(encoded) == {"x": 1, "y": 2.5, "label": "p"}
    assert serializer.loads(encoded, message_type=Point) == Point(1, 2.5, "p")
    with pytest.raises(DeserializationError, match="does not fit Point"):
        serializer.loads(serializer.dumps({"x": 1, "z": 2}), message_type=Point)
    with pytest.raises(DeserializationError, match="not a mapping"):
        serializer.loads(serializer.dumps([1, 2]), message_type=Point)
    with pytest.raises(SerializationError, match=r"lock object .* at \[.k.\]\[0\]"):
        serializer.dumps({"k": [threading.Lock()]})


def test_cbor_keeps_bytes_and_json_refuses_nan() -> None:
    cbor = CborSerializer()
    assert cbor.loads(cbor.dumps({"blob": b"\x00\xff"})) == {"blob": b"\x00\xff"}
    with pytest.raises(SerializationError):
        JsonSerializer().dumps(float("nan"))


def test_flatbuffers_tables_with_the_object_api() -> None:
    from nexus.messaging.fbs.MessageHeader import MessageHeader, MessageHeaderT

    fb = FlatBuffersSerializer()
    header = MessageHeaderT(kind=3, codec=5, messageId=77, sender="nexus://device/7")
    data = fb.dumps(header)
    lazy = fb.loads(data, message_type=MessageHeaderT)
    assert isinstance(lazy, MessageHeader), "untrusted bytes are not unpacked eagerly: the table accessor reads on demand"
    assert (lazy.Kind(), lazy.MessageId(), lazy.Sender()) == (3, 77, b"nexus://device/7")
    back = FlatBuffersSerializer(unpack=True).loads(data, message_type=MessageHeaderT)
    assert (back.kind, back.codec, back.messageId, back.sender) == (3, 5, 77, b"nexus://device/7")
    table = fb.loads(data, message_type=MessageHeader)
    assert table.MessageId() == 77
    assert fb.loads(data) == data, "without a type: the finished buffer"
    assert fb.dumps(data) == data
    with pytest.raises(SerializationError, match="Pack"):
        fb.dumps({"not": "a table"})
    with pytest.raises(DeserializationError, match="not generated FlatBuffers code"):
        fb.loads(data, message_type=Point)


def test_registry() -> None:
    registry = default_registry()
    assert [s.codec_id for s in registry] == [1, 2, 3, 4, 5, 6]
    assert registry.get(CodecId.CBOR).name == "cbor" and registry.by_name("json").codec_id == CodecId.JSON
    assert CodecId.PICKLE in registry and 99 not in registry and len(registry) == 6
    with pytest.raises(ValueError, match="codec id 2 is taken by"):
        registry.register(PickleSerializer())
    with pytest.raises(KeyError, match="no serializer has codec id 99"):
        registry.get(99)
    with pytest.raises(KeyError, match="no serializer is named"):
        registry.by_name("protobuf")

    class Upper(RawSerializer):
        codec_id = 64
        name = "upper"

        def loads(self, data, buffers=(), message_type=None):  # type: ignore[no-untyped-def]
            return bytes(data).upper()

    registry.register(Upper())
    assert registry.get(64).loads(b"abc") == b"ABC"
    registry.register(Upper(), replace=True)

    class Bad(RawSerializer):
        codec_id = 0

    with pytest.raises(ValueError, match=r"1\.\.255"):
        SerializerRegistry([Bad()])
    assert "cbor" in repr(registry.get(5))


def test_cbor_refuses_tags_that_cost_time_or_run_parsers() -> None:
    import datetime
    import decimal
    import re
    import time

    import cbor2

    cbor = CborSerializer()
    when = datetime.datetime(2026, 11, 27, tzinfo=datetime.timezone.utc)
    assert cbor.loads(cbor.dumps({"at": when, "big": 2**100, "neg": -(2**90)})) == {"at": when, "big": 2**100, "neg": -(2**90)}
    for hostile in (cbor2.dumps(re.compile("(?i)" * 2000 + "a")), cbor2.dumps(decimal.Decimal("1e-99999")), cbor2.dumps(2**10_000)):
        start = time.perf_counter()
        with pytest.raises(ValueError, match="tag|bignum"):
            cbor.loads(hostile)
        assert time.perf_counter() - start < 5, "refused unread, not worked through"  # a hang guard, not a measurement
    with pytest.raises(ValueError, match="nesting"):
        cbor.loads(b"\x81" * 100 + b"\x01")
    with pytest.raises(ValueError, match="truncated|claims more"):
        cbor.loads(b"\x9b\x00\x00\x00\x00\xff\xff\xff\xff")


def test_json_is_strict_utf8_without_nan() -> None:
    json_codec = JsonSerializer()
    with pytest.raises(ValueError, match="NaN is not JSON"):
        json_codec.loads(b"[NaN]")
    with pytest.raises(UnicodeDecodeError):
        json_codec.loads('{"a": 1}'.encode("utf-16"))


def test_pickle_runs_reduce_once_and_non_native_memoryviews_arrive_as_bytes() -> None:
    import ctypes

    calls = REDUCE_CALLS
    calls.clear()
    buffers: list[pickle.PickleBuffer] = []
    PickleSerializer().dumps([Counted(), np.zeros(10_000)], buffers)
    assert len(calls) == 1 and len(buffers) == 1
    doubles = (ctypes.c_double * 1024)(*range(1024))
    view = memoryview(doubles)
    assert view.format == "<d"
    back = PickleSerializer().loads(PickleSerializer().dumps(view, buffers := []), buffers)
    assert bytes(back) == bytes(view) and back.format == "B"
