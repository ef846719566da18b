"""The bridge to devices on a serial line (microcontrollers whose actors join the cluster).

:mod:`.frames` (the frame format: COBS, header, CRC, a reader that resyncs
and counts what it rejects), :mod:`.streams` (the reliable and best-effort
streams, as state machines with no I/O) and :mod:`.session` (the bridge's
end of a device's session: handshake, reboots, heartbeats, death; no I/O
either), :mod:`.messages` (what calls and answers say inside frames: CBOR,
checked), :mod:`.link` (the serial line itself: pyserial, a thread, calls
that always end) and :mod:`.device` (the MicroPython client and its loader).
Nothing
that comes from a device is ever unpickled: payloads are CBOR or fixed
structs.
"""
