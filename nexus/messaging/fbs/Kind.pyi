from __future__ import annotations

import flatbuffers
import numpy as np

import typing
from typing import cast

uoffset: typing.TypeAlias = flatbuffers.number_types.UOffsetTFlags.py_type

class Kind(object):
  User = cast(int, ...)
  System = cast(int, ...)
  Ask = cast(int, ...)
  Reply = cast(int, ...)
  Error = cast(int, ...)
  Heartbeat = cast(int, ...)
  Control = cast(int, ...)
  Task = cast(int, ...)
  TaskResult = cast(int, ...)

