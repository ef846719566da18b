"""The control messages between a head and its nodes: one JSON object per frame, checked before it is used.

JSON, not pickle: membership needs only plain data, so a control frame is
never executed, whoever sent it. (The data frames of attached peers, drivers
and a node's workers, are pickled, as between a driver and its workers: only
peers whose key is on the allow-list get to send them, and the cluster's key
is as good as a login to every host of it.) A frame is ``{"op": NAME,
...fields}``; what does not parse, is too large, or lacks a field is a
ValueError the receiver counts and drops.
"""

from __future__ import annotations

import json
from typing import Any, TypeGuard

__all__ = ["MAX_FRAME", "decode", "encode", "is_int"]

MAX_FRAME = 1 << 20
"""The largest control frame taken (the sockets refuse larger ones too: ZMQ_MAXMSGSIZE)."""


def encode(op: str, **fields: Any) -> bytes:
    return json.dumps({"op": op, **fields}, separators=(",", ":")).encode()


def decode(frame: bytes, required: dict[str, dict[str, type | tuple[type, ...]]]) -> tuple[str, dict[str, Any]]:
    """The op and fields of ``frame``; ``required`` maps each op taken to its fields and their types."""
    if len(frame) > MAX_FRAME:
        raise ValueError(f"a control frame of {len(frame)} bytes (at most {MAX_FRAME})")
    try:
        message = json.loads(frame, parse_int=_small_int, parse_constant=_no_constant)
    except RecursionError:
        raise ValueError("a control frame nested too deep") from None
    except (ValueError, UnicodeDecodeError):
        raise ValueError("a control frame that is not JSON") from None
    if not isinstance(message, dict) or not isinstance(message.get("op"), str):
        raise ValueError("a control frame without an op")
    op = message.pop("op")
    fields = required.get(op)
    if fields is None:
        raise ValueError(f"an unknown control op {op[:40]!r}")
    for name, kind in fields.items():
        value = message.get(name)
        if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, float, (int, float))):
            raise ValueError(f"a {op!r} frame whose {name!r} is {type(value).__name__}, not {getattr(kind, '__name__', kind)}")
    return op, message


def is_int(value: Any) -> TypeGuard[int]:
    """Whether an optional field of a decoded frame is an integer (JSON's true and false are not)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _small_int(text: str) -> int:
    """JSON integers up to 2**63 (a number of 400 digits is no pid, port or node number)."""
    if len(text) > 19:
        raise ValueError("an integer out of range in a control frame")
    return int(text)


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} in a control frame")  # NaN and Infinity are no times or amounts
