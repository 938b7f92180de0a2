"""Coalesced waiters get a large object's bytes as the upstream sends them, not when it finishes.

A Python upstream (http.server) trickles a 200 KB part over about a second; a `streamflex edge`
sits in front of it and 50 viewers (raw sockets, so the test sees when each byte arrives) ask for
the part before the upstream answers. Each viewer must have its head and its first body bytes
before the upstream sent its last byte, and the whole part, byte for byte. A second upstream
answer breaks off halfway: every waiter's connection is closed short of its Content-Length (never
a complete-looking wrong answer), and the next request fetches the part again.
"""
import http.server
import os
import socket
import threading
import time

import pytest

import sfharness as h

PART = "/live/slow/video/s1.p0.m4s"
BROKEN = "/live/slow/video/s2.p0.m4s"
SIZE = 200 * 1024
PIECES = 20
PIECE_GAP = 0.05  # 20 pieces of 10 KB, 50 ms apart: the body takes about a second
VIEWERS = 50
BODY = os.urandom(SIZE)


class SlowUpstream(http.server.ThreadingHTTPServer):
    """Answers /healthz at once; parts only once the test releases them, then trickled."""

    daemon_threads = True

    def __init__(self):
        super().__init__((h.HOST, 0), Handler)
        self.lock = threading.Lock()
        self.requests = {}          # path -> count
        self.release = threading.Event()
        self.head_sent = None       # monotonic time the part's head went out
        self.last_sent = None       # ... and its last byte
        self.broken_once = False


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        srv = self.server
        if self.path == "/healthz":
            self._head(200, 3, "text/plain")
            self.wfile.write(b"ok\n")
            return
        with srv.lock:
            srv.requests[self.path] = srv.requests.get(self.path, 0) + 1
            n = srv.requests[self.path]
        if self.path not in (PART, BROKEN):
            self._head(404, 0, "text/plain")
            return
        srv.release.wait(30)
        self._head(200, SIZE, "video/iso.segment", "public, max-age=31536000, immutable")
        self.wfile.flush()
        if self.path == PART:
            srv.head_sent = time.monotonic()
        step = SIZE // PIECES
        for i in range(PIECES):
            if self.path == BROKEN and n == 1 and i == PIECES // 2:
                # Half the body, then a reset: the answer cannot be completed.
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                self.connection.close()
                self.close_connection = True
                return
            self.wfile.write(BODY[i * step:(i + 1) * step if i < PIECES - 1 else SIZE])
            self.wfile.flush()
            if i < PIECES - 1:
                time.sleep(PIECE_GAP)  # the trickle is what this upstream is for
        if self.path == PART:
            srv.last_sent = time.monotonic()

    def _head(self, status, length, ctype, cache_control=None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(length))
        if cache_control:
            self.send_header("Cache-Control", cache_control)
        self.end_headers()


class Viewer(threading.Thread):
    """GET `path` on a raw socket: status, headers, body, and when the head and first body byte came."""

    def __init__(self, port, path):
        super().__init__(daemon=True)
        self.port, self.path = port, path
        self.status = 0
        self.headers = {}
        self.body = b""
        self.head_at = self.first_byte_at = None
        self.closed_early = False
        self.error = None
        self.sent = threading.Event()

    def run(self):
        try:
            s = socket.create_connection((h.HOST, self.port), timeout=20)
            s.sendall(f"GET {self.path} HTTP/1.1\r\nHost: {h.HOST}\r\n\r\n".encode())
            self.sent.set()
            data = b""
            length = None
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    self.closed_early = True
                    break
                data += chunk
                if length is None and b"\r\n\r\n" in data:
                    self.head_at = time.monotonic()
                    head, _, data = data.partition(b"\r\n\r\n")
                    lines = head.decode().split("\r\n")
                    self.status = int(lines[0].split()[1])
                    self.headers = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
                    length = int(self.headers["content-length"])
                if length is not None:
                    if data and self.first_byte_at is None:
                        self.first_byte_at = time.monotonic()
                    if len(data) >= length:
                        break
            self.body = data
            s.close()
        except OSError as e:
            self.error = repr(e)
        finally:
            self.sent.set()


@pytest.fixture(scope="module")
def slow():
    up = SlowUpstream()
    t = threading.Thread(target=up.serve_forever, daemon=True)
    t.start()
    yield up
    up.release.set()
    up.shutdown()


def crowd(edge, path, upstream, count=VIEWERS):
    viewers = [Viewer(edge.edge_port, path) for _ in range(count)]
    for v in viewers:
        v.start()
    for v in viewers:
        assert v.sent.wait(10), "a viewer could not send its request"
    # Every viewer waits at the edge, and the edge asked the upstream, before the upstream answers.
    h.wait_until(lambda: upstream.requests.get(path, 0) >= 1, 10, "the edge's upstream request")
    h.wait_until(lambda: edge.metric("streamflex_edge_waiting_requests") >= count, 10, "every viewer waiting")
    upstream.release.set()
    for v in viewers:
        v.join(30)
        assert not v.is_alive(), "a viewer got no complete answer in 30 s"
    return viewers


def test_waiters_get_the_body_while_the_upstream_is_still_sending(module_servers, slow):
    slow.release.clear()
    edge = h.start_edge(module_servers, [f"{h.HOST}:{slow.server_port}"], args=["--edge.upstream_timeout=10s"])
    viewers = crowd(edge, PART, slow)
    assert slow.requests[PART] == 1
    assert [v.error for v in viewers if v.error] == []
    assert all(v.status == 200 for v in viewers)
    assert all(v.body == BODY for v in viewers), "a viewer's body differs from the upstream's"
    caches = sorted(v.headers.get("x-cache") for v in viewers)
    assert caches.count("MISS") == 1 and caches.count("COALESCED") == VIEWERS - 1, caches
    assert slow.last_sent - slow.head_sent >= 0.8, "the upstream did not trickle"
    late = [round(v.first_byte_at - slow.last_sent, 3) for v in viewers if v.first_byte_at >= slow.last_sent]
    assert late == [], f"viewers whose first body byte came after the upstream's last (s): {late}"
    heads = sorted(v.head_at - slow.head_sent for v in viewers)
    # The heads follow the upstream's head, not its body (generous for a loaded 2-core machine).
    assert heads[-1] < 0.5 * (slow.last_sent - slow.head_sent), f"last head {heads[-1]:.3f} s after the upstream's"
    # A viewer arriving now is a hit on the cached object, with the ETag it has once complete.
    status, headers, body = h.http_request(f"{edge.edge}{PART}")
    assert (status, headers.get("x-cache"), body) == (200, "HIT", BODY)
    assert headers.get("etag")


def test_a_body_broken_off_upstream_closes_every_waiter_short_and_is_fetched_again(module_servers, slow):
    slow.release.clear()
    edge = h.start_edge(module_servers, [f"{h.HOST}:{slow.server_port}"], args=["--edge.upstream_timeout=10s"])
    viewers = crowd(edge, BROKEN, slow, count=10)
    for v in viewers:
        assert v.status == 200 and v.closed_early and len(v.body) < SIZE, (v.status, v.closed_early, len(v.body))
        assert v.body == BODY[:len(v.body)]
    status, headers, body = h.http_request(f"{edge.edge}{BROKEN}", timeout=10)
    assert (status, body == BODY) == (200, True)
    assert headers.get("x-cache") == "MISS"
    assert slow.requests[BROKEN] == 2
