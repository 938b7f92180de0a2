"""A minimal RTMP client for tests: plain handshake, AMF0 commands, chunk (de)framing.

Enough to reach publish and read the server's onStatus, and to send hand-made hostile bytes.
Every read is bounded by a deadline (socket timeouts), so a silent server fails the test.
"""
import os
import socket
import struct
import time

HOST = "127.0.0.1"

# RTMP message types (RTMP 5.4, 7.1).
SET_CHUNK_SIZE = 1
ABORT = 2
ACK = 3
USER_CONTROL = 4
WINDOW_ACK_SIZE = 5
SET_PEER_BANDWIDTH = 6
AUDIO = 8
VIDEO = 9
AMF0_DATA = 18
AMF0_COMMAND = 20

C1_SIZE = 1536


class Closed(Exception):
    """The server closed the connection (EOF or reset)."""


# ---- AMF0 -------------------------------------------------------------------------------------

class Null:
    def __repr__(self):
        return "null"


NULL = Null()


def amf0_encode(value):
    if value is None or value is NULL:
        return b"\x05"
    if isinstance(value, bool):
        return b"\x01" + (b"\x01" if value else b"\x00")
    if isinstance(value, (int, float)):
        return b"\x00" + struct.pack(">d", float(value))
    if isinstance(value, str):
        raw = value.encode()
        if len(raw) > 0xFFFF:
            return b"\x0c" + struct.pack(">I", len(raw)) + raw
        return b"\x02" + struct.pack(">H", len(raw)) + raw
    if isinstance(value, dict):
        out = b"\x03"
        for k, v in value.items():
            kb = k.encode()
            out += struct.pack(">H", len(kb)) + kb + amf0_encode(v)
        return out + b"\x00\x00\x09"
    if isinstance(value, (list, tuple)):
        return b"\x0a" + struct.pack(">I", len(value)) + b"".join(amf0_encode(v) for v in value)
    raise TypeError(f"cannot AMF0-encode {type(value)}")


def _amf0_props(buf, pos):
    obj = {}
    for _ in range(100000):
        (klen,) = struct.unpack_from(">H", buf, pos)
        pos += 2
        key = buf[pos:pos + klen].decode(errors="replace")
        pos += klen
        if klen == 0 and buf[pos] == 0x09:
            return obj, pos + 1
        obj[key], pos = _amf0_value(buf, pos)
    raise ValueError("AMF0 object too long")


def _amf0_value(buf, pos):
    marker = buf[pos]
    pos += 1
    if marker == 0x00:
        return struct.unpack_from(">d", buf, pos)[0], pos + 8
    if marker == 0x01:
        return buf[pos] != 0, pos + 1
    if marker == 0x02:
        (n,) = struct.unpack_from(">H", buf, pos)
        return buf[pos + 2:pos + 2 + n].decode(errors="replace"), pos + 2 + n
    if marker == 0x0C:
        (n,) = struct.unpack_from(">I", buf, pos)
        return buf[pos + 4:pos + 4 + n].decode(errors="replace"), pos + 4 + n
    if marker == 0x03:
        return _amf0_props(buf, pos)
    if marker == 0x08:
        return _amf0_props(buf, pos + 4)
    if marker == 0x0A:
        (n,) = struct.unpack_from(">I", buf, pos)
        pos += 4
        items = []
        for _ in range(n):
            v, pos = _amf0_value(buf, pos)
            items.append(v)
        return items, pos
    if marker in (0x05, 0x06):
        return None, pos
    if marker == 0x0B:
        return struct.unpack_from(">d", buf, pos)[0], pos + 10
    raise ValueError(f"unsupported AMF0 marker {marker:#x}")


def amf0_decode_all(buf):
    values, pos = [], 0
    for _ in range(10000):
        if pos >= len(buf):
            break
        v, pos = _amf0_value(buf, pos)
        values.append(v)
    return values


# ---- chunks -----------------------------------------------------------------------------------

def chunk_message(csid, msg_type, stream_id, timestamp, body, chunk_size=128):
    """One message as fmt-0 chunk followed by fmt-3 continuation chunks (csid < 64)."""
    assert 2 <= csid < 64
    header = bytes([csid]) + struct.pack(">I", min(timestamp, 0xFFFFFF))[1:] + \
        struct.pack(">I", len(body))[1:] + bytes([msg_type]) + struct.pack("<I", stream_id)
    out = bytearray(header)
    for i in range(0, max(len(body), 1), chunk_size):
        if i:
            out.append(0xC0 | csid)
        out += body[i:i + chunk_size]
    return bytes(out)


def read_until_closed(sock, timeout):
    """Reads and discards until EOF or reset; returns seconds waited. Raises TimeoutError."""
    start = time.monotonic()
    deadline = start + timeout
    for _ in range(10000000):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"connection still open after {timeout}s")
        sock.settimeout(left)
        try:
            data = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError):
            return time.monotonic() - start
        except socket.timeout:
            continue
        if not data:
            return time.monotonic() - start
    raise AssertionError("unbounded read")


class RtmpClient:
    def __init__(self, port, timeout=5.0):
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.port = port
        self.in_chunk_size = 128
        self.out_chunk_size = 128
        self._buf = bytearray()
        self._streams = {}  # csid -> dict(ts, length, type, sid, body)
        self.received = []  # every message read, as (type, stream_id, body)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- raw I/O --
    def send(self, data):
        self.sock.sendall(data)

    def _recv_exact(self, n, deadline):
        for _ in range(1000000):
            if len(self._buf) >= n:
                break
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {n} bytes from server before the deadline (have {len(self._buf)})")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except (ConnectionResetError, BrokenPipeError) as e:
                raise Closed(str(e)) from e
            except socket.timeout:
                continue
            if not data:
                raise Closed("EOF")
            self._buf += data
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def handshake(self, timeout=5.0):
        """Plain handshake (RTMP 5.2): C0=3, C1 = time | 4 zero bytes | random; C2 echoes S1."""
        deadline = time.monotonic() + timeout
        c1 = b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00" + os.urandom(C1_SIZE - 8)
        self.send(b"\x03" + c1)
        s0s1s2 = self._recv_exact(1 + 2 * C1_SIZE, deadline)
        if s0s1s2[0] != 3:
            raise AssertionError(f"S0 version {s0s1s2[0]} != 3")
        s1 = s0s1s2[1:1 + C1_SIZE]
        s2 = s0s1s2[1 + C1_SIZE:]
        self.send(s1)  # C2
        return s1, s2, c1

    def send_message(self, csid, msg_type, stream_id, body, timestamp=0):
        self.send(chunk_message(csid, msg_type, stream_id, timestamp, body, self.out_chunk_size))

    def command(self, name, txn, *args, csid=3, stream_id=0):
        body = amf0_encode(name) + amf0_encode(float(txn)) + b"".join(amf0_encode(a) for a in args)
        self.send_message(csid, AMF0_COMMAND, stream_id, body)

    def read_message(self, deadline):
        for _ in range(100000):
            b0 = self._recv_exact(1, deadline)[0]
            fmt, csid = b0 >> 6, b0 & 0x3F
            if csid == 0:
                csid = 64 + self._recv_exact(1, deadline)[0]
            elif csid == 1:
                lo, hi = self._recv_exact(2, deadline)
                csid = 64 + lo + 256 * hi
            st = self._streams.setdefault(csid, {"ts": 0, "delta": 0, "length": 0, "type": 0, "sid": 0,
                                                 "body": None, "ext": False})
            hlen = (11, 7, 3, 0)[fmt]
            h = self._recv_exact(hlen, deadline)
            if fmt <= 2:
                ts = int.from_bytes(h[0:3], "big")
                st["ext"] = ts == 0xFFFFFF
            if fmt <= 1:
                st["length"] = int.from_bytes(h[3:6], "big")
                st["type"] = h[6]
            if fmt == 0:
                st["sid"] = struct.unpack("<I", h[7:11])[0]
            if st["ext"]:
                ext = int.from_bytes(self._recv_exact(4, deadline), "big")
                if fmt <= 2:
                    ts = ext
            if st["body"] is None:
                if fmt == 0:
                    st["ts"] = ts
                elif fmt in (1, 2):
                    st["delta"] = ts
                    st["ts"] += ts
                else:
                    st["ts"] += st["delta"]
                st["body"] = bytearray()
            take = min(self.in_chunk_size, st["length"] - len(st["body"]))
            st["body"] += self._recv_exact(take, deadline)
            if len(st["body"]) < st["length"]:
                continue
            body, st["body"] = bytes(st["body"]), None
            if st["type"] == SET_CHUNK_SIZE:
                self.in_chunk_size = struct.unpack(">I", body[:4])[0] & 0x7FFFFFFF
            msg = (st["type"], st["sid"], body)
            self.received.append(msg)
            return msg
        raise AssertionError("too many chunks without a complete message")

    def wait_command(self, names, timeout=5.0):
        """Reads messages until an AMF0 command whose name is in `names`; returns its decoded values."""
        deadline = time.monotonic() + timeout
        for _ in range(10000):
            mtype, _sid, body = self.read_message(deadline)
            if mtype == AMF0_COMMAND:
                values = amf0_decode_all(body)
                if values and values[0] in names:
                    return values
        raise AssertionError(f"no {names} among 10000 messages")

    def read_until_closed(self, timeout):
        return read_until_closed(self.sock, timeout)

    # -- session --
    def connect(self, app="live", timeout=5.0):
        self.command("connect", 1, {
            "app": app, "type": "nonprivate", "flashVer": "FMLE/3.0 (compatible; sftest)",
            "tcUrl": f"rtmp://{HOST}:{self.port}/{app}"})
        return self.wait_command(("_result", "_error"), timeout)

    def publish(self, key, app="live", timeout=5.0):
        """connect, createStream, publish; returns the info object of the first onStatus."""
        self.handshake(timeout)
        res = self.connect(app, timeout)
        assert res[0] == "_result", res
        self.command("releaseStream", 2, NULL, key)
        self.command("FCPublish", 3, NULL, key)
        self.command("createStream", 4, NULL)
        for _ in range(100):
            res = self.wait_command(("_result", "_error"), timeout)
            if res[1] == 4.0:
                break
        assert res[0] == "_result", res
        stream_id = int(res[3])
        self.command("publish", 5, NULL, key, "live", csid=8, stream_id=stream_id)
        status = self.wait_command(("onStatus",), timeout)
        return status[3]
