"""`streamflex loadgen --abr` against a small live HLS server written here (http.server).

The server lists three variants (1, 3 and 6 Mbit/s) whose media playlists slide in real time: one
1 s segment per second, each exactly its variant's bit rate long in bytes, six in the window. Two
viewers run in poll mode with simulated links of 1 and 5 Mbit/s (`--bandwidth 1M,5M`, round
robin). The 1 Mbit/s viewer must stay on the lowest variant; the 5 Mbit/s one must climb to
3 Mbit/s (3 x 1.5 fits in 5) and never to 6 Mbit/s (it does not fit); the server's own request log
confirms which variant each segment came from.
"""
import http.server
import json
import re
import threading
import time

import pytest

import sfharness as h

RATES = {"low": 1_000_000, "mid": 3_000_000, "high": 6_000_000}
T0 = time.time()


class LiveHls(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__((h.HOST, 0), Handler)
        self.lock = threading.Lock()
        self.segments = {name: 0 for name in RATES}  # segment requests per variant


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _send(self, body, ctype):
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        path = self.path.split("?")[0]
        if path == "/live/abr/master.m3u8":
            lines = ["#EXTM3U"]
            for name, bw in sorted(RATES.items(), key=lambda kv: -kv[1]):
                lines += [f'#EXT-X-STREAM-INF:BANDWIDTH={bw},CODECS="avc1.64001f",RESOLUTION=640x360',
                          f"{name}/index.m3u8"]
            return self._send(("\n".join(lines) + "\n").encode(), "application/vnd.apple.mpegurl")
        m = re.fullmatch(r"/live/abr/(\w+)/index\.m3u8", path)
        if m and m.group(1) in RATES:
            newest = int(time.time() - T0) - 1  # the last complete 1 s segment
            first = max(0, newest - 5)
            lines = ["#EXTM3U", "#EXT-X-VERSION:6", "#EXT-X-TARGETDURATION:1", f"#EXT-X-MEDIA-SEQUENCE:{first}"]
            for n in range(first, newest + 1):
                pdt = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(T0 + n)) + f".{int((T0 + n) % 1 * 1000):03d}Z"
                lines += [f"#EXT-X-PROGRAM-DATE-TIME:{pdt}", "#EXTINF:1.000,", f"s{n}.ts"]
            return self._send(("\n".join(lines) + "\n").encode(), "application/vnd.apple.mpegurl")
        m = re.fullmatch(r"/live/abr/(\w+)/s\d+\.ts", path)
        if m and m.group(1) in RATES:
            with self.server.lock:
                self.server.segments[m.group(1)] += 1
            return self._send(bytes(RATES[m.group(1)] // 8), "video/mp2t")
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def live():
    srv = LiveHls()
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    h.wait_until(lambda: time.time() - T0 >= 4, 10, "a few segments listed")
    yield srv
    srv.shutdown()


def test_abr_viewers_settle_on_the_variant_their_link_carries(live, tmp_path):
    out = tmp_path / "summary.json"
    p = h.run([h.BIN, "loadgen", "--url", f"http://{h.HOST}:{live.server_port}/live/abr/master.m3u8",
               "--viewers", "2", "--mode", "poll", "--duration", "14s", "--abr", "--bandwidth", "1M,5M",
               "--json", str(out)], timeout=60)
    print(p.stdout)
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr[-3000:])
    s = json.loads(out.read_text())
    assert s["error_count"] == 0, s["errors"]
    abr = s["abr"]
    by = {int(k): v for k, v in abr["media_by_bandwidth"].items()}
    assert abr["switches_up"] == 1 and abr["switches_down"] == 0, abr
    assert by.get(6_000_000, 0) == 0, by
    assert by.get(3_000_000, 0) >= 5, by  # the 5 Mbit/s viewer, once it climbed
    assert by.get(1_000_000, 0) >= 10, by  # the 1 Mbit/s viewer throughout, the other at first
    # The server agrees on where every segment came from.
    assert live.segments == {"low": by[1_000_000], "mid": by[3_000_000], "high": 0}, (live.segments, by)
    assert "abr" in p.stdout and "switches 1 up, 0 down" in p.stdout
