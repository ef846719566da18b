"""Fixed 32-bit message ids: explicit or stable hashes, collisions caught at registration."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from nexus.messaging import MessageIdCollisionError, MessageIdTable, UnknownMessageIdError, message_type, stable_message_id
from nexus.messaging.message_ids import DEFAULT_TABLE, RESERVED_BELOW


class MotorCommand:
    pass


class SensorReading:
    pass


def test_explicit_and_hashed_ids() -> None:
    table = MessageIdTable()
    assert table.register(MotorCommand, 0x1001) == 0x1001
    hashed = table.register(SensorReading)
    assert hashed == stable_message_id(f"{__name__}.SensorReading")
    assert table.id_of(MotorCommand) == 0x1001 and table.type_of(hashed) is SensorReading
    assert table.id_of(int) == 0, "unregistered types carry no id"
    assert 0x1001 in table and len(table) == 2


def test_stable_hash_is_the_same_in_every_process_and_run() -> None:
    name = "robot.messages.MotorCommand"
    here = stable_message_id(name)
    code = f"from nexus.messaging import stable_message_id; print(stable_message_id({name!r}))"
    there = int(subprocess.run([sys.executable, "-c", code], capture_output=True, check=True, text=True).stdout)
    assert here == there == 0xA7D9_9BEB, "pinned: firmware compiled against this id must keep working"
    assert here >= RESERVED_BELOW
    assert all(stable_message_id(f"t{i}") >= RESERVED_BELOW for i in range(2000))


def test_collision_is_an_error_at_registration() -> None:
    table = MessageIdTable()
    table.register(MotorCommand, 0x2000)
    with pytest.raises(MessageIdCollisionError, match=r"0x00002000 of .*SensorReading is already taken by .*MotorCommand"):
        table.register(SensorReading, 0x2000)
    with pytest.raises(MessageIdCollisionError, match="already registered under 0x00002000"):
        table.register(MotorCommand, 0x2001)
    assert table.register(MotorCommand, 0x2000) == 0x2000, "the same registration twice is fine"
    assert table.type_of(0x2000) is MotorCommand, "nothing was mixed up"


def test_hash_collision_between_names_is_caught_too() -> None:
    table = MessageIdTable()
    table.register(MotorCommand, name="shared.Name")
    with pytest.raises(MessageIdCollisionError):
        table.register(SensorReading, name="shared.Name")


def test_unknown_id_on_receive_is_a_clear_error() -> None:
    with pytest.raises(UnknownMessageIdError, match="unknown message id 0x0badf00d") as info:
        MessageIdTable().type_of(0x0BADF00D)
    from nexus.messaging import EnvelopeError

    assert isinstance(info.value, EnvelopeError)


@pytest.mark.parametrize("bad", [0, -1, 2**32, "7", 1.5, True])
def test_ids_must_be_32_bit_and_not_zero(bad: object) -> None:
    with pytest.raises(ValueError, match="1..0xFFFFFFFF"):
        MessageIdTable().register(MotorCommand, bad)  # type: ignore[arg-type]


def test_reserved_ids_are_for_nexus() -> None:
    with pytest.raises(ValueError, match="reserved for Nexus"):
        MessageIdTable().register(MotorCommand, 0x10)
    assert MessageIdTable().register(MotorCommand, 0x10, system=True) == 0x10
    with pytest.raises(TypeError, match="register a type"):
        MessageIdTable().register(MotorCommand(), 0x1000)  # type: ignore[arg-type]


def test_decorator_export_and_c_header() -> None:
    table = MessageIdTable()

    @message_type(0x3000, table=table)
    @dataclasses.dataclass
    class SetSpeed:
        rpm: int

    @message_type(name="robot.Stop", table=table)
    class Stop:
        pass

    assert table.id_of(SetSpeed) == 0x3000 and table.id_of(Stop) == stable_message_id("robot.Stop")
    assert {"id": 0x3000, "name": f"{__name__}.test_decorator_export_and_c_header.<locals>.SetSpeed"} in table.export()
    header = table.c_header()
    assert "#define NEXUS_MSG_SETSPEED 0x00003000u" in header and "NEXUS_MSG_STOP" in header
    table.unregister(SetSpeed)
    assert 0x3000 not in table
    table.unregister(SetSpeed)  # twice is harmless


def test_default_table_is_used_by_the_decorator() -> None:
    @message_type(0x7FFF_0001)
    class Registered:
        pass

    try:
        assert DEFAULT_TABLE.type_of(0x7FFF_0001) is Registered
    finally:
        DEFAULT_TABLE.unregister(Registered)


def test_c_header_spells_out_modules_when_class_names_clash() -> None:
    table = MessageIdTable()
    first = type("Ping", (), {"__module__": "robot.arm"})
    second = type("Ping", (), {"__module__": "robot.leg"})
    table.register(first, 0x5000)
    table.register(second, 0x5001)
    header = table.c_header()
    assert "NEXUS_MSG_ROBOT_ARM_PING 0x00005000u" in header and "NEXUS_MSG_ROBOT_LEG_PING 0x00005001u" in header
