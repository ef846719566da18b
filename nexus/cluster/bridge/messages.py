"""What the bridge and a device say to each other inside DATA frames: message ids and CBOR shapes, checked.

Each message is a CBOR array (RFC 8949) under a fixed message id, the ids
``0x40``-``0x45`` of the range below ``0x100`` that the message-id registry
keeps for Nexus (:mod:`nexus.messaging.message_ids`)::

    id    name      way            payload
    0x40  REGISTER  device->bridge [actor name, [method names]]  (again after each ACK: a reboot re-registers)
    0x41  CALL      bridge->device [call id, actor name, method, [arguments]]  (call id 0: a tell, no REPLY)
    0x42  REPLY     device->bridge [call id, ok, value or error text]
    0x43  OUTCALL   device->bridge [call id, cluster actor name, method, [arguments]]  (call id 0: a tell)
    0x44  OUTREPLY  bridge->device [call id, ok, value or error text]
    0x45  TELEMETRY device->bridge [name, value]  (best-effort stream: the latest value wins)

REGISTER, CALL, REPLY, OUTCALL and OUTREPLY go on the reliable stream.
Nothing here is ever unpickled: CBOR's plain types only (a tagged value is
refused), and a payload of the wrong shape is a :class:`MalformedMessage`,
which the bridge counts and drops.
"""

from __future__ import annotations

from typing import Any

import cbor2

__all__ = ["CALL", "OUTCALL", "OUTREPLY", "REGISTER", "REPLY", "TELEMETRY", "MalformedMessage", "decode", "encode"]

REGISTER, CALL, REPLY, OUTCALL, OUTREPLY, TELEMETRY = 0x40, 0x41, 0x42, 0x43, 0x44, 0x45
NAMES = {REGISTER: "REGISTER", CALL: "CALL", REPLY: "REPLY", OUTCALL: "OUTCALL", OUTREPLY: "OUTREPLY", TELEMETRY: "TELEMETRY"}
_PLAIN = (int, float, str, bytes, bool, type(None))


class MalformedMessage(ValueError):
    """A device message that does not decode or has the wrong shape for its id."""


def _refuse_tag(_decoder: Any, tag: Any) -> Any:
    raise MalformedMessage(f"CBOR tag {tag.tag}: a device message carries plain values only")


def _plain(value: Any, depth: int = 0) -> Any:
    """``value`` with its tuples as lists; TypeError if it holds anything but plain values."""
    if isinstance(value, _PLAIN):
        return value
    if depth < 8:
        if isinstance(value, list | tuple):
            return [_plain(v, depth + 1) for v in value]
        if isinstance(value, dict):
            return {_plain(k, depth + 1): _plain(v, depth + 1) for k, v in value.items()}
    raise TypeError(f"a device takes plain values only (numbers, text, bytes, lists, dicts, None, booleans), not {value!r:.80}")


def encode(value: Any) -> bytes:
    """A message's CBOR; TypeError for what a device cannot take (only plain values: numbers, text, bytes, lists, maps)."""
    return cbor2.dumps(_plain(value))


def _text(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 64


def decode(message_id: int, payload: bytes) -> list[Any]:
    """The message's fields, checked against its id's shape; :class:`MalformedMessage` says what is wrong."""
    name = NAMES.get(message_id)
    if name is None:
        raise MalformedMessage(f"unknown message id {message_id:#x}")
    try:
        value = cbor2.loads(payload, tag_hook=_refuse_tag)
    except MalformedMessage:
        raise
    except Exception as exc:  # (cbor2 raises several kinds for bad input)
        raise MalformedMessage(f"{name}: not CBOR ({exc})") from None
    try:
        value = _plain(value)  # (cbor2 turns the tags it knows into objects without the hook: dates, decimals, ...)
    except TypeError:
        raise MalformedMessage(f"{name}: a device message carries plain values only, not {value!r:.80}") from None
    if not isinstance(value, list):
        raise MalformedMessage(f"{name}: an array, not {type(value).__name__}")
    ok = False
    if message_id == REGISTER:
        ok = len(value) == 2 and _text(value[0]) and isinstance(value[1], list) and all(_text(m) for m in value[1])
    elif message_id in (CALL, OUTCALL):
        ok = len(value) == 4 and _call_id(value[0]) and _text(value[1]) and _text(value[2]) and isinstance(value[3], list)
    elif message_id in (REPLY, OUTREPLY):
        ok = len(value) == 3 and _call_id(value[0]) and isinstance(value[1], bool) and (value[1] or isinstance(value[2], str))
    elif message_id == TELEMETRY:
        ok = len(value) == 2 and _text(value[0])
    if not ok:
        raise MalformedMessage(f"{name}: the wrong shape {value!r:.120}")
    return value


def _call_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 0xFFFF_FFFF
