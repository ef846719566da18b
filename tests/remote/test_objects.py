"""A node's object server and a reader's puller, on loopback with real CURVE sockets.

The server answers raw parts of its arena to keys the head let in; it refuses others at the handshake, drops what
does not parse, and tells a reader whose object was stored under the node's old number that it is gone.
"""

from __future__ import annotations

import time

import pytest
import zmq

from nexus.cluster.remote import wire
from nexus.cluster.remote.keys import KeyPair
from nexus.cluster.remote.objects import PIECE, ObjectServer, Puller, address_towards
from nexus.core.errors import ObjectLostError


@pytest.fixture
def served():
    arena = bytearray(8 * PIECE + 100)
    for i in range(0, len(arena), 4096):
        arena[i] = (i // 4096) % 251
    pair, reader = KeyPair.new(), KeyPair.new()
    server = ObjectServer(memoryview(arena), pair, "127.0.0.1")
    server.node_id = 5
    server.allowed = {reader.public}
    puller = Puller(reader)
    try:
        yield arena, server, puller, (5, server.address, pair.public)
    finally:
        puller.close()
        server.close()


def test_a_reader_gets_the_parts_it_asks_for_in_one_or_many_frames(served) -> None:
    arena, server, puller, at = served
    parts = [(0, 10), (4096, 3 * PIECE + 7), (len(arena) - 1, 1), (64, 0)]
    views = puller.pull(at, parts)
    assert [bytes(v) for v in views] == [bytes(arena[o : o + n]) for o, n in parts]
    assert all(v.readonly for v in views)
    assert server.served == 1
    into = [memoryview(bytearray(n)) for _, n in parts]
    again = puller.pull(at, parts, into=into)
    assert bytes(into[1]) == bytes(arena[4096 : 4096 + 3 * PIECE + 7]) and bytes(again[1]) == bytes(into[1])
    assert len(puller.idle[(at[1], at[2])]) == 1, "one socket, given back after each pull"


def test_a_node_that_joined_again_does_not_serve_its_old_numbers_objects(served) -> None:
    _arena, server, puller, at = served
    server.node_id = 6  # fenced, and joined again as node 6: what node 5 stored is gone
    with pytest.raises(ObjectLostError, match="no longer has the object.*node 6 now"):
        puller.pull(at, [(0, 10)])


def test_a_key_not_let_in_gets_nothing_and_is_counted(served) -> None:
    _arena, server, _puller, at = served
    stranger = Puller(KeyPair.new())
    try:
        with pytest.raises(ObjectLostError, match="did not send"):
            stranger.pull(at, [(0, 10)], timeout=1.0)
    finally:
        stranger.close()
    assert server.refused >= 1 and server.served == 0


def test_a_server_that_does_not_answer_is_an_error_that_names_the_node() -> None:
    puller = Puller(KeyPair.new())
    quiet = zmq.Context.instance().socket(zmq.ROUTER)  # listens, never answers
    port = quiet.bind_to_random_port("tcp://127.0.0.1")
    try:
        started = time.monotonic()
        with pytest.raises(ObjectLostError, match=r"node 2a \(at tcp://127.0.0.1:\d+\) did not send"):
            puller.pull((0x2A, f"tcp://127.0.0.1:{port}", KeyPair.new().public), [(0, 1)], timeout=0.5)
        assert time.monotonic() - started < 5
    finally:
        quiet.close(0)
        puller.close()


@pytest.mark.parametrize(
    "request_frames",
    [
        [b"not json"],
        [wire.encode("get", node=5, request=1, parts=[[0, 10**12]])],  # past the arena's end
        [wire.encode("get", node=5, request=1, parts=[[-1, 4]])],
        [wire.encode("get", node=5, request=1, parts=[])],
        [wire.encode("get", node=5, request=1, parts=[[0, 1]] * 5000)],
        [wire.encode("get", node=5, request=1, parts="all")],
        [wire.encode("put", node=5)],
        [b"a", b"b"],
    ],
)
def test_a_malformed_request_is_dropped_and_the_server_goes_on(served, request_frames: list[bytes]) -> None:
    arena, server, puller, at = served
    raw = zmq.Context.instance().socket(zmq.DEALER)
    raw.curve_serverkey = at[2].encode()
    raw.curve_publickey, raw.curve_secretkey = (k.encode() for k in (puller.pair.public, puller.pair.secret))
    raw.connect(at[1])
    try:
        raw.send_multipart(request_frames)
        assert not raw.poll(300), "no answer to a malformed request"
    finally:
        raw.close(0)
    deadline = time.monotonic() + 5
    while server.malformed < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.malformed == 1
    assert bytes(puller.pull(at, [(0, 16)])[0]) == bytes(arena[:16]), "and it serves the next reader"


def test_the_served_address_is_the_one_towards_the_head() -> None:
    assert address_towards("127.0.0.1", 6380) == "127.0.0.1"
