# The Nexus device client for MicroPython (1.9 and later: the BBC micro:bit's firmware) and CPython.
#
# A device registers named actors; the cluster calls them through the bridge
# as device:<key>/<name>, and the device may call the cluster's named actors.
# The wire is the bridge's (nexus/cluster/bridge/frames.py): COBS frames with
# a 12-byte header and CRC-16/CCITT-FALSE; payloads are CBOR (the subset:
# integers, text, bytes, arrays, maps, booleans, null, floats). This end keeps
# one reliable frame in flight (stop and wait: window 1) and is written small
# for a 9 KB heap: no f-strings, few functions. The host loads it through the
# raw REPL one function at a time (nexus.cluster.bridge.device.pieces).
#
#   c = Client(uart, b"sensor01")
#   c.actor("led", Led(), ("on", "off"))
#   c.run()
try:
    from ustruct import pack, unpack
    from utime import ticks_diff, ticks_ms
except ImportError:  # CPython
    from ._cpython import pack, ticks_diff, ticks_ms, unpack
REG, CALL, REPLY, OUT, OUTREPLY, TELE = 0x40, 0x41, 0x42, 0x43, 0x44, 0x45


def crc16(b):
    c = 0xFFFF
    for x in b:
        c ^= x << 8
        for _ in range(8):
            c = ((c << 1) ^ (0x1021 if c & 0x8000 else 0)) & 0xFFFF
    return c


def uncobs(b):
    out = bytearray()
    i = 0
    while i < len(b):
        k = b[i]
        if k == 0 or i + k > len(b):
            return None
        out.extend(b[i + 1:i + k])
        i += k
        if k < 255 and i < len(b):
            out.append(0)
    return out


def enc(v, o):
    s = [v]
    while s:
        v = s.pop()
        if v is None or v is True or v is False:
            o.append(0xF6 if v is None else 0xF4 + v)
        elif isinstance(v, float):
            o.extend(b"\xfa" + pack(">f", v))
        elif isinstance(v, int):
            m, n = (32, -1 - v) if v < 0 else (0, v)
            if n < 24:
                o.append(m | n)
            else:
                o.extend(pack(">BI", m | 26, n))
        else:
            d = isinstance(v, dict)
            m = 96 if isinstance(v, str) else 160 if d else 64 if isinstance(v, (bytes, bytearray)) else 128
            if m == 96:
                v = bytes(v, "utf-8")
            o.extend(pack(">BH", m | 25, len(v)))
            if m < 128:
                o.extend(v)
                continue
            it = list(v.items()) if d else v
            for i in range(len(it) - 1, -1, -1):
                s.extend((it[i][1], it[i][0]) if d else (it[i],))
    return o


def dec(b, i):
    m, n = b[i] >> 5, b[i] & 31
    i += 1
    if m == 7:
        if n > 25:
            k = 4 if n == 26 else 8
            return unpack(">f" if k == 4 else ">d", b[i:i + k])[0], i + k
        return (False, True, None)[n - 20], i
    if n > 23:
        k = 1 << (n - 24)
        n = int.from_bytes(b[i:i + k], "big")
        i += k
    if m < 2:
        return n if m == 0 else -1 - n, i
    if m < 4:
        v = bytes(b[i:i + n])
        return (v if m == 2 else str(v, "utf-8")), i + n
    v = {} if m == 5 else []
    for _ in range(n):
        x, i = dec(b, i)
        if m == 5:
            v[x], i = dec(b, i)
        else:
            v.append(x)
    return v, i


class Client:
    def __init__(self, uart, key, mtu=96, beat=500):
        self.uart, self.key, self.mtu, self.beat = uart, (bytes(key) + bytes(8))[:8], mtu, beat
        self.actors = {}
        self.buf = bytearray(mtu + 20)
        self.n = 0
        self.q = []
        self.reg = []
        self.inbox = []
        self.answers = {}
        self.cid = self.tx = self.rx = self.be = self.sid = 0
        self.open = self.inflight = None
        self.heard = self.sent = self.last = ticks_ms() - 9999

    def actor(self, name, obj, methods):
        self.actors[name] = (obj, tuple(methods))
        if self.open:
            self.send(REG, [name, list(methods)])

    def frame(self, kind, stream, seq, mid, payload):
        b = pack("<BBBBHIH", 1, kind, 0, stream, seq, mid, len(payload)) + payload
        b += pack("<H", crc16(b))
        out = bytearray(1)  # COBS, here rather than in a function of its own: the board's stack is 1.8 KB
        at = 0
        for x in b:
            if x:
                out.append(x)
            if not x or len(out) - at == 255:
                out[at] = len(out) - at if x == 0 else 255
                at = len(out)
                out.append(0)
        out[at] = len(out) - at
        out.append(0)
        self.uart.write(out)
        self.sent = ticks_ms()

    def send(self, mid, value, reliable=True):
        if value is not None:
            value = bytes(enc(value, bytearray()))
            if len(value) > self.mtu:
                raise ValueError("over the MTU")
            if not reliable:
                self.be = (self.be + 1) & 0xFFFF
                return self.frame(4, 0, self.be, mid, value)
            self.q.append((mid, value))
        if self.inflight is None and self.q and self.open:
            self.inflight = (self.tx,) + self.q.pop(0)
            self.tx = (self.tx + 1) & 0xFFFF
            self.last = ticks_ms()
            self.frame(4, 1, *self.inflight)

    def publish(self, name, value):
        if self.open:
            self.send(TELE, [name, value], False)

    def tell(self, actor, method, *args):
        self.send(OUT, [0, actor, method, list(args)])

    def call(self, actor, method, *args):
        self.cid = self.cid % 99999 + 1
        cid = self.cid
        self.send(OUT, [cid, actor, method, list(args)])
        start = ticks_ms()
        while cid not in self.answers:  # (not by step: each call deeper costs stack the board has little of)
            now = ticks_ms()
            if not self.open or ticks_diff(now, start) > 10000:
                raise OSError("no answer from the cluster")
            self.feed(now)
            self.tick(now)
            for m in self.inbox:
                if m[0] == OUTREPLY:
                    self.inbox.remove(m)
                    self.on(*m)
                    break
        ok, value = self.answers.pop(cid)
        if not ok:
            raise RuntimeError(value)
        return value

    def run(self):
        while True:
            self.step()

    def step(self):
        try:  # (whatever goes wrong, the loop goes on: a device dropped to its REPL would take frames for keys)
            now = ticks_ms()
            self.feed(now)
            while self.reg:
                name = self.reg.pop()
                self.send(REG, [name, list(self.actors[name][1])])
            while self.inbox:
                try:
                    self.on(*self.inbox.pop(0))
                except Exception:
                    pass
            self.tick(now)
        except Exception:
            self.n = 0

    def tick(self, now):
        if not self.open:
            if ticks_diff(now, self.sent) >= self.beat:
                self.frame(1, 0, 0, 0, pack("<8sHBH", self.key, self.mtu, 1, self.beat))
        elif ticks_diff(now, self.heard) > 6 * self.beat:
            self.open = None
        elif self.inflight and ticks_diff(now, self.last) >= 300:
            self.last = now
            self.frame(4, 1, *self.inflight)
        elif ticks_diff(now, self.sent) >= self.beat:
            self.frame(6, 0, 0, 0, b"")

    def feed(self, now):
        for x in self.uart.read() or b"":
            if x:  # (into a buffer made once: appending byte by byte would scatter a 9 KB heap)
                if 0 <= self.n < len(self.buf):
                    self.buf[self.n] = x
                    self.n += 1
                else:
                    self.n = -1
                continue
            n, self.n = self.n, 0
            b = n > 0 and uncobs(self.buf[:n])
            if b and len(b) > 13 and b[0] == 1 and not b[2] and len(b) == 14 + b[10] + 256 * b[11]:
                if unpack("<H", b[-2:])[0] == crc16(b[:-2]):
                    self.got(b[1], b[3], unpack("<H", b[4:6])[0], unpack("<I", b[6:10])[0], b[12:-2], now)

    def got(self, kind, stream, seq, mid, payload, now):
        if kind == 2:  # ACK: a new session (the same one again: an answer to an INIT sent twice)
            sid, mtu = unpack("<IH", payload[:6])
            if self.open and sid == self.sid:
                return
            self.sid, self.mtu = sid, min(self.mtu, mtu)
            self.tx = self.rx = 0
            self.open, self.inflight, self.heard = True, None, now
            del self.q[:]
            self.reg = list(self.actors)
        elif self.open:
            self.heard = now
            if kind == 3:  # RESET: the bridge lost the session; INIT again
                self.open = None
            elif kind == 5:  # ACKNACK
                if self.inflight and unpack("<H", payload[:2])[0] == (self.inflight[0] + 1) & 0xFFFF:
                    self.inflight = None
                    self.send(0, None)
            elif kind == 4 and stream == 1:
                if seq == self.rx:
                    self.rx = (self.rx + 1) & 0xFFFF
                    self.inbox.append((mid, payload))
                self.frame(5, 1, 0, 0, pack("<HH", self.rx, 0))

    def on(self, mid, m):
        m = dec(m, 0)[0]
        if mid == OUTREPLY:
            self.answers[m[0]] = (m[1], m[2])
        elif mid == CALL:
            cid, name, method, args = m
            try:
                entry = self.actors[name]
                if method not in entry[1]:
                    raise AttributeError("no method " + method)
                value, ok = getattr(entry[0], method)(*args), True
            except Exception as exc:
                value, ok = repr(exc)[:60], False
            if cid:
                try:
                    self.send(REPLY, [cid, ok, value])
                except Exception as exc:
                    self.send(REPLY, [cid, False, "the result cannot be sent: %s" % exc])
