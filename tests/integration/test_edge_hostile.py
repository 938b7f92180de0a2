"""Hostile clients against an edge, while an ordinary viewer watches through the same edge.

One `all` server is the origin (ffmpeg publishes the 30 s clip, looped); a `streamflex edge` sits in
front of it. A viewer thread follows the video playlist through the edge for the whole module,
fetching each newly listed part; the last test checks what it saw. Hostile requests are raw
sockets, so nothing between the test and the edge normalises them.
"""
import json
import re
import select
import socket
import threading
import time

import pytest

import sfharness as h

STREAM = "hostile"
HEADER_TIMEOUT = 5.0  # the edge's: the whole request head within 5 s


class Viewer:
    """Follows the live video playlist through the edge in a thread: (time, what, status) per request."""

    def __init__(self, base):
        self.base = base
        self.log = []
        self.parts = []  # (time, uri) of each newly listed part fetched with 200
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _get(self, what, url):
        try:
            status, _, body = h.http_request(url, timeout=5)
        except OSError as e:
            status, body = 0, repr(e).encode()
        self.log.append((time.monotonic(), what, status))
        return status, body

    def _run(self):
        seen = set()
        deadline = time.monotonic() + 180
        while not self._stop.is_set() and time.monotonic() < deadline:
            status, body = self._get("playlist", f"{self.base}/live/{STREAM}/video/index.m3u8")
            if status == 200:
                pl = h.MediaPlaylist(body.decode(errors="replace"))
                newest = pl.open_parts or (pl.segments[-1]["parts"] if pl.segments else [])
                for p in newest[-2:]:
                    if p["uri"] in seen:
                        continue
                    seen.add(p["uri"])
                    if self._get("part", f"{self.base}/live/{STREAM}/video/{p['uri']}")[0] == 200:
                        self.parts.append((time.monotonic(), p["uri"]))
            self._stop.wait(0.25)

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=10)


@pytest.fixture(scope="module")
def edge(module_servers, module_procs, clip30, tmp_path_factory):
    work = tmp_path_factory.mktemp("hostile")
    origin = h.start_all(module_servers)
    key = origin.create_key(STREAM)
    module_procs.add(h.ffmpeg_publish_looped(clip30, origin.url(key), work / "ffmpeg.log"))
    origin.wait_live(STREAM, 10)

    def segment_listed():
        status, body, _ = h.http_get(f"{origin.origin}/live/{STREAM}/video/index.m3u8")
        return status == 200 and h.MediaPlaylist(body).segments
    h.wait_until(segment_listed, 10, "a complete segment at the origin")
    access_log = work / "access.log"
    e = h.start_edge(module_servers, [f"{h.HOST}:{origin.origin_port}"], edge_id="edge",
                     args=[f"--edge.access_log={access_log}"])
    e.access_log = access_log
    e.viewer = Viewer(e.edge)
    h.wait_until(lambda: len(e.viewer.parts) >= 2, 10, "the viewer fetching parts")
    yield e
    e.viewer.stop()


def connect(edge):
    s = socket.create_connection((h.HOST, edge.edge_port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_until_closed(sock, timeout):
    """Everything the edge sends until it closes the connection; raises if it is still open at the
    deadline. A reset after the answer counts as the close."""
    data = bytearray()
    deadline = time.monotonic() + timeout
    for _ in range(100000):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"connection still open after {timeout}s; received {bytes(data[:300])!r}")
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        except socket.timeout:
            continue
        if not chunk:
            break
        data += chunk
    sock.close()
    return bytes(data)


def responses(data):
    """[(status, headers, body)] of the HTTP/1.1 responses in `data`, split by Content-Length."""
    out = []
    rest = data
    for _ in range(100):
        if not rest:
            break
        head, sep, tail = rest.partition(b"\r\n\r\n")
        assert sep, f"incomplete response head: {rest[:200]!r}"
        lines = head.decode(errors="replace").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
        n = int(headers.get("content-length", "0"))
        out.append((int(lines[0].split()[1]), headers, tail[:n]))
        rest = tail[n:]
    return out


def drip_until_closed(sock, text, limit):
    """Sends `text` one byte per second until the edge closes the connection; returns the seconds
    from the first byte to the close, or None if it was still open after `limit` seconds."""
    t0 = time.monotonic()
    for i in range(int(limit) + 1):
        try:
            sock.sendall(text[i % len(text):i % len(text) + 1])
        except OSError:
            return time.monotonic() - t0
        # The pacing is the attack itself: one byte, then up to a second watching for the close.
        next_byte = t0 + i + 1
        while time.monotonic() < next_byte:
            readable, _, _ = select.select([sock], [], [], max(0.0, next_byte - time.monotonic()))
            if readable:
                try:
                    if not sock.recv(4096):
                        return time.monotonic() - t0
                except OSError:
                    return time.monotonic() - t0
    return None


PLAYLIST_REQUEST = f"GET /live/{STREAM}/video/index.m3u8 HTTP/1.1\r\nHost: {h.HOST}\r\n".encode()


def test_slow_loris_is_closed_within_the_header_timeout(edge):
    s = connect(edge)
    closed_after = drip_until_closed(s, PLAYLIST_REQUEST + b"X-Slow: " + b"a" * 100, HEADER_TIMEOUT + 2)
    s.close()
    print(f"slow-loris closed after {closed_after}s")
    assert closed_after is not None, f"still open {HEADER_TIMEOUT + 2}s after the first byte"
    assert closed_after <= HEADER_TIMEOUT + 1


def test_slow_loris_after_one_complete_request_is_closed_within_the_header_timeout(edge):
    s = connect(edge)
    s.sendall(PLAYLIST_REQUEST + b"\r\n")
    first = b""
    for _ in range(100):
        s.settimeout(5)
        first += s.recv(65536)
        got = responses(first) if b"\r\n\r\n" in first else []
        if got and len(got[0][2]) == int(got[0][1].get("content-length", "0")):
            break
    assert first.startswith(b"HTTP/1.1 200"), first[:100]
    closed_after = drip_until_closed(s, PLAYLIST_REQUEST + b"X-Slow: " + b"a" * 100, HEADER_TIMEOUT + 2)
    s.close()
    print(f"slow-loris on a kept-alive connection closed after {closed_after}s")
    assert closed_after is not None, f"still open {HEADER_TIMEOUT + 2}s after the first slow byte"
    assert closed_after <= HEADER_TIMEOUT + 1


def test_oversized_header_gets_431_and_the_connection_closed(edge):
    s = connect(edge)
    s.sendall(PLAYLIST_REQUEST + b"X-Big: " + b"a" * (64 * 1024) + b"\r\n\r\n")
    got = responses(read_until_closed(s, 5))
    assert [r[0] for r in got] == [431]


SMUGGLED = f"GET /live/{STREAM}/master.m3u8 HTTP/1.1\r\nHost: {h.HOST}\r\n\r\n".encode()


@pytest.mark.parametrize("framing", [
    pytest.param(b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n" % (5 + len(SMUGGLED)), id="cl-and-te"),
    pytest.param(b"Transfer-Encoding: chunked\r\nContent-Length: %d\r\n" % (5 + len(SMUGGLED)), id="te-and-cl"),
    pytest.param(b"Content-Length: 0\r\nContent-Length: %d\r\n" % (5 + len(SMUGGLED)), id="two-lengths"),
])
def test_ambiguous_body_framing_gets_400_and_nothing_smuggled_is_answered(edge, framing):
    # The body is a zero chunk, then a whole second request: a server that framed the first by a
    # different header than a front proxy would answer the second.
    s = connect(edge)
    s.sendall(PLAYLIST_REQUEST + framing + b"\r\n" + b"0\r\n\r\n" + SMUGGLED)
    got = responses(read_until_closed(s, 5))
    assert [r[0] for r in got] == [400], [(r[0], r[2][:80]) for r in got]


@pytest.mark.parametrize("target", [
    "/live/../../etc/passwd",
    "/live/%2e%2e/%2e%2e/etc/passwd",
    "/live/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
    "//etc/passwd",
    "/live//etc/passwd",
    "/../../../../etc/passwd",
    "/player/../../../../etc/passwd",
])
def test_path_traversal_gets_404_or_400_never_a_file(edge, target):
    s = connect(edge)
    s.sendall(f"GET {target} HTTP/1.1\r\nHost: {h.HOST}\r\nConnection: close\r\n\r\n".encode())
    got = responses(read_until_closed(s, 5))
    assert len(got) == 1
    status, _, body = got[0]
    # A dot segment, plain or percent-encoded, is refused by the edge itself (never passed on to an
    # origin that might map it to a file); the rest reach the origin, which has no such stream.
    dotted = ".." in target or "%2e%2e" in target.lower()
    assert status == (400 if dotted else 404), (status, body[:200])
    assert b"root:" not in body


def test_a_parallel_viewer_saw_only_200s_throughout(edge):
    v = edge.viewer
    v.stop()
    bad = [(round(t - v.log[0][0], 2), what, status) for t, what, status in v.log if status != 200]
    times = [t for t, _ in v.parts]
    gaps = [b - a for a, b in zip(times, times[1:])]
    print(f"viewer: {len(v.log)} requests, {len(v.parts)} new parts over {times[-1] - times[0]:.1f}s, "
          f"longest wait for a new part {max(gaps):.2f}s")
    assert not bad, bad[:10]
    assert max(gaps) < 2.0, "the viewer went more than a segment without a new part"


def test_access_log_has_one_json_line_per_viewer_request_and_hostile_ones_stay_valid(edge):
    # Runs after the hostile tests: every line is still one valid JSON object, and each of the
    # viewer's requests (all 200s) has its line, with the bytes it was sent.
    v = edge.viewer
    v.stop()
    wanted = {(uri, 200) for _, uri in v.parts}
    lines = []

    def refused():
        return {l["status"] for l in lines if l["stream"] == "" and l["cache"] == "ERROR"}

    def logged():
        lines[:] = [json.loads(line) for line in edge.access_log.read_text().splitlines()]
        return (wanted <= {(l["object"], l["status"]) for l in lines} and any(l["status"] == 404 for l in lines)
                and {400, 408, 431} <= refused())
    # Lines are written within 250 ms. The hostile requests are logged too: the traversals (404 from
    # the origin) and those refused before any route, with no stream: the oversized head (431), the
    # ambiguous framings (400) and the slow-loris heads (408, closed without an answer).
    try:
        h.wait_until(logged, 5, "the viewer's part requests and the refused requests in the access log")
    finally:
        print(f"access log: {len(lines)} lines; refused {sorted(refused())}, "
              f"other statuses {sorted({l['status'] for l in lines} - {200})}")
    fields = {"time", "remote", "stream", "rendition", "object", "status", "bytes", "ttfb_ms", "cache"}
    assert all(set(l) == fields for l in lines), [l for l in lines if set(l) != fields][:3]
    parts = [l for l in lines if l["object"] in {uri for _, uri in v.parts}]
    assert all(l["stream"] == STREAM and l["rendition"] == "video" and l["bytes"] > 1000 for l in parts), parts[:3]
    assert all(l["cache"] in ("HIT", "MISS", "COALESCED") for l in parts), parts[:3]
    playlists = [l for l in lines if l["object"] == "index.m3u8" and l["stream"] == STREAM]
    assert len(playlists) >= sum(1 for _, what, _ in v.log if what == "playlist") - 1
