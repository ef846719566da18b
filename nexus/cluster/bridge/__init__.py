"""The bridge to devices on a serial line (microcontrollers whose actors join the cluster).

:mod:`.frames` (the frame format: COBS, header, CRC, a reader that resyncs
and counts what it rejects) and :mod:`.streams` (the reliable and
best-effort streams of a session, as state machines with no I/O). Nothing
that comes from a device is ever unpickled: payloads are CBOR or fixed
structs.
"""
