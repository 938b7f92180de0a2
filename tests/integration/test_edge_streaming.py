"""Coalesced waiters get a large object's bytes as the upstream sends them, not when it finishes.

A Python upstream (http.server) trickles a 200 KB part over about a second; a `streamflex edge`
sits in front of it and 50 viewers (raw sockets, so the test sees when each byte arrives) ask for
the part before the upstream answers. Each viewer must have its head and its first body bytes
before the upstream sent its last byte, and the whole part, byte for byte. A second upstream
answer breaks off halfway: every waiter's connection is closed short of its Content-Length (never
a complete-looking wrong answer), and the next request fetches the part again.

The same with an answer of unknown length (Transfer-Encoding: chunked, as the origin sends the
open LL-DASH segment while it is produced): the edge answers every waiter with chunked coding,
chunk by chunk; one that breaks off ends every waiter's answer without the last-chunk and is not
cached; while it arrives the edge's cache counts the bytes received so far (its byte bound holds
with many such objects open). Against the real origin (`streamflex all` fed by ffmpeg): the open segment fetched through
the edge arrives in pieces spread over the segment's duration, not at its end.

HTTP/1.0 viewers (no chunked coding) of such an answer, waiting for it or arriving while it comes,
get it only once it is whole, with Content-Length; if it breaks off, a 502, never a short 200.
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
CHUNKED = "/live/slow/video/s3.m4s"         # answered with Transfer-Encoding: chunked
BROKEN_CHUNKED = "/live/slow/video/s4.m4s"  # chunked, reset halfway the first time
COUNTED = "/live/slow/video/s7.m4s"         # chunked, the cache's size watched while it arrives
CHUNKED_10 = "/live/slow/video/s5.m4s"         # chunked, asked for by HTTP/1.0 viewers too
BROKEN_CHUNKED_10 = "/live/slow/video/s6.m4s"  # the same, reset halfway the first time
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
        self.head_sent = {}         # path -> monotonic time the head went out
        self.last_sent = {}         # path -> ... and its last byte
        self.ending = {}            # path -> when it began writing the last-chunk (chunked)
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
        if self.path not in (PART, BROKEN, CHUNKED, BROKEN_CHUNKED, COUNTED, CHUNKED_10,
                             BROKEN_CHUNKED_10):
            self._head(404, 0, "text/plain")
            return
        srv.release.wait(30)
        chunked = self.path in (CHUNKED, BROKEN_CHUNKED, COUNTED, CHUNKED_10, BROKEN_CHUNKED_10)
        self._head(200, None if chunked else SIZE, "video/iso.segment", "public, max-age=31536000, immutable")
        self.wfile.flush()
        srv.head_sent[self.path] = time.monotonic()
        step = SIZE // PIECES
        for i in range(PIECES):
            if self.path in (BROKEN, BROKEN_CHUNKED, BROKEN_CHUNKED_10) and n == 1 and i == PIECES // 2:
                # Half the body, then a reset: the answer cannot be completed.
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                self.connection.close()
                self.close_connection = True
                return
            piece = BODY[i * step:(i + 1) * step if i < PIECES - 1 else SIZE]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            self.wfile.flush()
            if i < PIECES - 1:
                time.sleep(PIECE_GAP)  # the trickle is what this upstream is for
        if chunked:
            srv.ending[self.path] = time.monotonic()  # nobody can have the whole body before this
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        srv.last_sent[self.path] = time.monotonic()

    def _head(self, status, length, ctype, cache_control=None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        if length is None:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(length))
        if cache_control:
            self.send_header("Cache-Control", cache_control)
        self.end_headers()


class ChunkedDecoder:
    """Decodes a chunked body as its bytes come (RFC 9112 7.1): `body` so far, `ended` once the
    last-chunk and the blank line after it arrived."""

    def __init__(self):
        self.raw = b""
        self.body = bytearray()
        self.ended = False

    def feed(self, data):
        self.raw += data
        while not self.ended and b"\r\n" in self.raw:
            line, _, rest = self.raw.partition(b"\r\n")
            size = int(line.split(b";")[0], 16)
            if size == 0:
                if rest.startswith(b"\r\n"):  # no trailers from our servers
                    self.ended = True
                return
            if len(rest) < size + 2:
                return
            assert rest[size:size + 2] == b"\r\n", "chunk data not followed by CRLF"
            self.body += rest[:size]
            self.raw = rest[size + 2:]


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
        self.complete = False  # the whole body: Content-Length bytes, or the chunked last-chunk
        self.error = None
        self.sent = threading.Event()

    def run(self):
        try:
            s = socket.create_connection((h.HOST, self.port), timeout=20)
            s.sendall(f"GET {self.path} HTTP/1.1\r\nHost: {h.HOST}\r\n\r\n".encode())
            self.sent.set()
            data = b""
            length = None
            chunked = None  # ChunkedDecoder once the head says so
            for _ in range(100000):
                chunk = s.recv(65536)
                if not chunk:
                    self.closed_early = True
                    break
                data += chunk
                if length is None and chunked is None and b"\r\n\r\n" in data:
                    self.head_at = time.monotonic()
                    head, _, data = data.partition(b"\r\n\r\n")
                    lines = head.decode().split("\r\n")
                    self.status = int(lines[0].split()[1])
                    self.headers = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
                    if self.headers.get("transfer-encoding") == "chunked":
                        chunked = ChunkedDecoder()
                    else:
                        length = int(self.headers["content-length"])
                if chunked is not None:
                    chunked.feed(data)
                    data = b""
                    if chunked.body and self.first_byte_at is None:
                        self.first_byte_at = time.monotonic()
                    if chunked.ended:
                        self.complete = True
                        break
                elif length is not None:
                    if data and self.first_byte_at is None:
                        self.first_byte_at = time.monotonic()
                    if len(data) >= length:
                        self.complete = True
                        break
            self.body = bytes(chunked.body) if chunked is not None else data
            s.close()
        except OSError as e:
            self.error = repr(e)
        finally:
            self.sent.set()


class Viewer10(threading.Thread):
    """GET `path` as HTTP/1.0 on a raw socket, read to the connection's end (how an HTTP/1.0 client
    delimits a body without Content-Length): status line, headers, body, when the head came."""

    def __init__(self, port, path):
        super().__init__(daemon=True)
        self.port, self.path = port, path
        self.status_line = ""
        self.status = 0
        self.headers = {}
        self.body = b""
        self.head_at = None
        self.error = None
        self.sent = threading.Event()
        self.sent_at = None

    def run(self):
        try:
            s = socket.create_connection((h.HOST, self.port), timeout=20)
            s.sendall(f"GET {self.path} HTTP/1.0\r\nHost: {h.HOST}\r\n\r\n".encode())
            self.sent_at = time.monotonic()
            self.sent.set()
            data = b""
            for _ in range(100000):
                chunk = s.recv(65536)
                if not chunk:
                    break
                if self.head_at is None and b"\r\n\r\n" in data + chunk:
                    self.head_at = time.monotonic()
                data += chunk
            s.close()
            head, _, self.body = data.partition(b"\r\n\r\n")
            lines = head.decode(errors="replace").split("\r\n")
            self.status_line = lines[0]
            self.status = int(lines[0].split()[1]) if lines[0] else 0
            self.headers = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
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
    head_sent, last_sent = slow.head_sent[PART], slow.last_sent[PART]
    assert last_sent - head_sent >= 0.8, "the upstream did not trickle"
    late = [round(v.first_byte_at - last_sent, 3) for v in viewers if v.first_byte_at >= last_sent]
    assert late == [], f"viewers whose first body byte came after the upstream's last (s): {late}"
    heads = sorted(v.head_at - head_sent for v in viewers)
    # The heads follow the upstream's head, not its body (generous for a loaded 2-core machine).
    assert heads[-1] < 0.5 * (last_sent - head_sent), f"last head {heads[-1]:.3f} s after the upstream's"
    # A viewer arriving now is a hit on the cached object, with the ETag it has once complete.
    status, headers, body = h.http_request(f"{edge.edge}{PART}")
    assert (status, headers.get("x-cache"), body) == (200, "HIT", BODY)
    assert headers.get("etag")


def test_a_body_broken_off_upstream_closes_every_waiter_short_and_is_fetched_again(module_servers, slow):
    slow.release.clear()
    edge = h.start_edge(module_servers, [f"{h.HOST}:{slow.server_port}"], args=["--edge.upstream_timeout=10s"])
    viewers = crowd(edge, BROKEN, slow, count=10)
    for v in viewers:
        assert v.status == 200 and v.closed_early and not v.complete and len(v.body) < SIZE, (
            v.status, v.closed_early, len(v.body))
        assert v.body == BODY[:len(v.body)]
    status, headers, body = h.http_request(f"{edge.edge}{BROKEN}", timeout=10)
    assert (status, body == BODY) == (200, True)
    assert headers.get("x-cache") == "MISS"
    assert slow.requests[BROKEN] == 2


def test_waiters_get_a_chunked_body_chunk_by_chunk_while_the_upstream_sends_it(module_servers, slow):
    slow.release.clear()
    edge = h.start_edge(module_servers, [f"{h.HOST}:{slow.server_port}"], args=["--edge.upstream_timeout=10s"])
    viewers = crowd(edge, CHUNKED, slow)
    assert slow.requests[CHUNKED] == 1
    assert [v.error for v in viewers if v.error] == []
    assert all(v.status == 200 for v in viewers)
    assert all(v.headers.get("transfer-encoding") == "chunked" and "content-length" not in v.headers
               for v in viewers), viewers[0].headers
    assert all(v.complete for v in viewers), "a viewer's chunked answer did not end with the last-chunk"
    assert all(v.body == BODY for v in viewers), "a viewer's body differs from the upstream's"
    caches = sorted(v.headers.get("x-cache") for v in viewers)
    assert caches.count("MISS") == 1 and caches.count("COALESCED") == VIEWERS - 1, caches
    head_sent, last_sent = slow.head_sent[CHUNKED], slow.last_sent[CHUNKED]
    assert last_sent - head_sent >= 0.8, "the upstream did not trickle"
    firsts = sorted(v.first_byte_at - head_sent for v in viewers)
    print(f"\n[edge chunked] {VIEWERS} viewers: first body bytes {firsts[0]:.3f}..{firsts[-1]:.3f} s after the "
          f"upstream's head; the upstream's last byte after {last_sent - head_sent:.3f} s")
    late = [round(v.first_byte_at - last_sent, 3) for v in viewers if v.first_byte_at >= last_sent]
    assert late == [], f"viewers whose first body byte came after the upstream's last (s): {late}"
    # Complete now: cached with its length and ETag.
    status, headers, body = h.http_request(f"{edge.edge}{CHUNKED}")
    assert (status, headers.get("x-cache"), body == BODY) == (200, "HIT", True)
    assert headers.get("content-length") == str(SIZE) and headers.get("etag"), headers


def test_a_chunked_body_broken_off_upstream_ends_every_waiter_without_the_last_chunk(module_servers, slow):
    slow.release.clear()
    edge = h.start_edge(module_servers, [f"{h.HOST}:{slow.server_port}"], args=["--edge.upstream_timeout=10s"])
    viewers = crowd(edge, BROKEN_CHUNKED, slow, count=10)
    for v in viewers:
        assert v.status == 200 and v.headers.get("transfer-encoding") == "chunked", (v.status, v.headers)
        assert v.closed_early and not v.complete and len(v.body) < SIZE, (v.closed_early, v.complete, len(v.body))
        assert v.body == BODY[:len(v.body)]
    status, headers, body = h.http_request(f"{edge.edge}{BROKEN_CHUNKED}", timeout=10)
    assert (status, body == BODY, headers.get("x-cache")) == (200, True, "MISS")
    assert slow.requests[BROKEN_CHUNKED] == 2


def test_an_open_dash_segment_through_the_edge_arrives_in_pieces_before_it_ends(module_servers, procs, clip30,
                                                                                  tmp_path):
    """The real origin streams the segment in progress (chunked, a CMAF chunk at a time); through
    the edge of `streamflex all` a player gets it the same way, not once the segment is complete."""
    srv = h.start_all(module_servers)
    key = srv.create_key("llx")
    procs.add(h.ffmpeg_publish(clip30, srv.url(key), tmp_path / "ffmpeg.log"))
    base = f"/live/llx/video/"

    def playlist():
        status, body, _ = h.http_get(f"{srv.origin}{base}index.m3u8")
        return h.MediaPlaylist(body) if status == 200 else None

    h.wait_until(lambda: (p := playlist()) and len(p.segments) >= 1, 30, "a complete segment")
    pl = playlist()
    # The segment after the open one (the open one itself if it has no part yet): the origin holds
    # it until its first CMAF chunk, then streams it to its end.
    msn = pl.open_msn + 1 if pl.open_parts else pl.open_msn
    path = f"{base}s{msn}.m4s"
    asked = time.monotonic()
    head, chunks, ended = get_chunked(srv.edge_port, path, asked + 15)
    assert head.startswith("HTTP/1.1 200"), head
    lower = head.lower()
    assert "transfer-encoding: chunked" in lower and "\ncontent-length:" not in lower, head
    assert "x-cache: miss" in lower, head
    spread = chunks[-1][0] - chunks[0][0]
    print(f"\n[edge dash-ll] s{msn} through the edge: {len(chunks)} chunks, first {chunks[0][0] - asked:.3f} s after "
          f"the request, spread {spread:.3f} s, last-chunk {ended - asked:.3f} s after the request")
    # 0.5 s parts in 2 s segments: at least 3 pieces over at least a second, the first long before
    # the segment's end.
    assert len(chunks) >= 3, [len(c) for _, c in chunks]
    assert spread >= 1.0, spread
    body = b"".join(c for _, c in chunks)
    status, headers, whole = h.http_request(f"{srv.origin}{path}")
    assert status == 200 and body == whole, (status, len(body), len(whole))
    # Complete now at the edge too: a hit with its length.
    status, headers, again = h.http_request(f"{srv.edge}{path}")
    assert (status, headers.get("x-cache"), headers.get("content-length"), again == whole) == (
        200, "HIT", str(len(whole)), True)


def get_chunked(port, path, deadline):
    """GET over a raw socket: (head, [(arrival time, decoded bytes of that read)], time of the end)."""
    s = socket.create_connection((h.HOST, port), timeout=10)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: {h.HOST}:{port}\r\n\r\n".encode())
    data = b""
    decoder = ChunkedDecoder()
    chunks = []
    head = None
    for _ in range(100000):
        left = deadline - time.monotonic()
        assert left > 0, f"answer incomplete at the deadline ({len(chunks)} pieces)"
        s.settimeout(left)
        got = s.recv(65536)
        assert got, f"closed after {len(chunks)} pieces"
        now = time.monotonic()
        if head is None:
            data += got
            if b"\r\n\r\n" not in data:
                continue
            raw_head, _, got = data.partition(b"\r\n\r\n")
            head = raw_head.decode(errors="replace")
            assert "transfer-encoding: chunked" in head.lower(), head
        before = len(decoder.body)
        decoder.feed(got)
        if len(decoder.body) > before:
            chunks.append((now, bytes(decoder.body[before:])))
        if decoder.ended:
            break
    s.close()
    return head, chunks, time.monotonic()


def test_the_cache_counts_a_chunked_body_while_it_arrives(module_servers, slow):
    """streamflex_edge_cache_bytes grows with the chunked body as it arrives (it stayed 0 until the
    complete object replaced the arriving one) and ends at the complete object's size."""
    slow.release.set()
    edge = h.start_edge(module_servers, [f"{h.HOST}:{slow.server_port}"], args=["--edge.upstream_timeout=10s"])
    viewer = Viewer(edge.edge_port, COUNTED)
    viewer.start()
    seen = []
    for _ in range(1500):  # a sample every 20 ms or so, for at most 30 s (the body takes about one)
        seen.append(edge.metric("streamflex_edge_cache_bytes"))
        viewer.join(0.02)
        if not viewer.is_alive():
            break
    viewer.join(30)
    assert viewer.complete and viewer.body == BODY
    arriving = sorted({v for v in seen if 0 < v < SIZE})
    print(f"\n[edge cache] {len(seen)} samples while the chunked body arrived: {len(arriving)} distinct sizes "
          f"between 0 and {SIZE}")
    assert len(arriving) >= 2, f"the cache did not count the body while it arrived: {sorted(set(seen))}"
    assert seen == sorted(seen), "the count went down while the body arrived"
    h.wait_until(lambda: edge.metric("streamflex_edge_cache_bytes") == SIZE, 5, "the complete object's size")


def test_http10_viewers_of_an_arriving_chunked_answer_get_it_whole_with_content_length(module_servers, slow):
    """HTTP/1.0 has no chunked coding: a body delimited by the connection's end would look whole
    even if it broke off upstream. So HTTP/1.0 viewers, the ones waiting for the object and one that
    finds it arriving (a hit), get it once it is complete, with Content-Length; HTTP/1.1 viewers
    meanwhile have it chunk by chunk."""
    slow.release.clear()
    edge = h.start_edge(module_servers, [f"{h.HOST}:{slow.server_port}"], args=["--edge.upstream_timeout=10s"])
    old = [Viewer10(edge.edge_port, CHUNKED_10) for _ in range(3)]
    new = [Viewer(edge.edge_port, CHUNKED_10) for _ in range(5)]
    for v in old + new:
        v.start()
    for v in old + new:
        assert v.sent.wait(10), "a viewer could not send its request"
    h.wait_until(lambda: slow.requests.get(CHUNKED_10, 0) >= 1, 10, "the edge's upstream request")
    h.wait_until(lambda: edge.metric("streamflex_edge_waiting_requests") >= 8, 10, "every viewer waiting")
    slow.release.set()
    # One more HTTP/1.0 viewer once the body is arriving: a hit on the object still arriving.
    h.wait_until(lambda: any(v.first_byte_at for v in new), 10, "the first chunk at an HTTP/1.1 viewer")
    late = Viewer10(edge.edge_port, CHUNKED_10)
    late.start()
    for v in old + new + [late]:
        v.join(30)
        assert not v.is_alive(), "a viewer got no complete answer in 30 s"
    assert slow.requests[CHUNKED_10] == 1
    assert [v.error for v in old + new + [late] if v.error] == []
    ending = slow.ending[CHUNKED_10]
    assert late.sent_at < ending, "the late viewer came after the body had arrived: not the case under test"
    for v in new:
        assert v.status == 200 and v.headers.get("transfer-encoding") == "chunked" and v.complete, v.headers
        assert v.body == BODY
    for v in old + [late]:
        assert v.status_line.startswith("HTTP/1.0 200"), v.status_line
        assert v.headers.get("content-length") == str(SIZE) and "transfer-encoding" not in v.headers, v.headers
        assert v.body == BODY, (len(v.body), SIZE)
        assert v.head_at > ending, f"an HTTP/1.0 head came {ending - v.head_at:.3f} s before the body ended upstream"
    assert late.headers.get("x-cache") == "HIT", late.headers
    print(f"\n[edge http/1.0] heads {min(v.head_at for v in old + [late]) - ending:.3f}.."
          f"{max(v.head_at for v in old + [late]) - ending:.3f} s after the upstream began its last-chunk")


def test_http10_viewers_of_a_chunked_answer_broken_off_upstream_get_502(module_servers, slow):
    slow.release.clear()
    edge = h.start_edge(module_servers, [f"{h.HOST}:{slow.server_port}"], args=["--edge.upstream_timeout=10s"])
    old = [Viewer10(edge.edge_port, BROKEN_CHUNKED_10) for _ in range(3)]
    new = [Viewer(edge.edge_port, BROKEN_CHUNKED_10) for _ in range(3)]
    for v in old + new:
        v.start()
    for v in old + new:
        assert v.sent.wait(10), "a viewer could not send its request"
    h.wait_until(lambda: slow.requests.get(BROKEN_CHUNKED_10, 0) >= 1, 10, "the edge's upstream request")
    h.wait_until(lambda: edge.metric("streamflex_edge_waiting_requests") >= 6, 10, "every viewer waiting")
    slow.release.set()
    for v in old + new:
        v.join(30)
        assert not v.is_alive(), "a viewer got no answer in 30 s"
    for v in new:
        assert v.status == 200 and v.closed_early and not v.complete, (v.status, v.closed_early, v.complete)
    for v in old:
        assert v.error is None, v.error
        assert v.status_line.startswith("HTTP/1.0 502"), (v.status_line, len(v.body))
        assert v.headers.get("x-cache") == "ERROR"
    # Not cached: fetched again, whole.
    status, headers, body = h.http_request(f"{edge.edge}{BROKEN_CHUNKED_10}", timeout=10)
    assert (status, body == BODY) == (200, True)
    assert slow.requests[BROKEN_CHUNKED_10] == 2
