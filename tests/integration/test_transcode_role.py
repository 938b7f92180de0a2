"""The transcode role alone: ingest, transcode and origin as three processes, as on three machines.

`streamflex ingest` relays ffmpeg's publish over RTMP (ingest.relay, with ingest.relay_secret) to
`streamflex transcode`, which checks the secret, transcodes the stream to a small ladder and pushes
every rung's CMAF to `streamflex origin` (DASH-IF Live Media Ingest, Bearer origin.ingest_secret).
The origin's multivariant playlist must list the rungs by name, with RESOLUTION and the declared
BANDWIDTH, highest first (the rung name travels in the request path, the declared rate in the init
segment's btrt); ffprobe and ffmpeg -xerror read it. The origin is killed and started again mid-
stream: the transcoder retries and the origin serves the stream again. When the publish ends the
transcoder ends the stream at the origin. The origin's program date time is the source's arrival,
carried in the pushed chunks' prft boxes, and with a slow relay hop (a proxy delaying it 1.5 s) still
the arrival at the ingest node, whose clock the relay sends (@streamflex). A stream's settings made
on the ingest node's API (profile, segment and part targets) reach the transcoder and the origin. A
relay with a wrong secret is refused by the transcoder and nothing reaches the origin. A timestamp
jump at the ingest node (relayed with continuous times and an @streamflex epoch) is a discontinuity
at the same segment in every rendition at the origin, audio re-encoded included.
"""
import collections
import datetime
import re
import signal
import socket
import struct
import threading
import time

import pytest

import sfapi
import sfharness as h

HOST = h.HOST
INGEST_SECRET = "origin-ingest-5d1c"
RELAY_SECRET = "relay-secret-91ab"
# Small rungs, so the ladder keeps real time on a loaded 2-core machine.
LADDER = ["--transcode.profiles=duo=360p:640x360@30:600k:660k:ultrafast,160p:284x160@15:145k:160k:ultrafast",
          "--transcode.profile=duo", "--transcode.max_lag=10s", "--transcode.max_queue_frames=400"]
DECLARED = {"360p": 660000, "160p": 160000}


def start_origin(make_server, port=None):
    port, admin = port or h.free_port(), h.free_port()
    srv = make_server(role="origin", start=False, defaults=False,
                      args=[f"--admin.listen={HOST}:{admin}", f"--origin.listen={HOST}:{port}",
                            f"--origin.ingest_secret={INGEST_SECRET}", "--origin.ingest_idle=30s"])
    srv.admin_port = admin
    srv.origin_port = port
    srv.origin = f"http://{HOST}:{port}"
    srv.start()
    return srv


def start_transcoder(make_server, origin, relay_secret=RELAY_SECRET, extra=()):
    rtmp, admin = h.free_port(), h.free_port()
    srv = make_server(role="transcode", start=False, defaults=False,
                      args=[f"--admin.listen={HOST}:{admin}", f"--transcode.listen={HOST}:{rtmp}",
                            f"--transcode.relay_secret={relay_secret}", f"--transcode.origin_url={origin.origin}",
                            f"--transcode.origin_secret={INGEST_SECRET}", "--transcode.push_max_backoff=1s",
                            "--transcode.push_timeout=2s", "--log.level=info",
                            *[a for a in LADDER if a.split("=")[0] not in {e.split("=")[0] for e in extra}],
                            *extra])
    srv.admin_port = admin
    srv.rtmp_port = rtmp
    srv.start()
    return srv


def start_ingest(make_server, transcoder, relay_secret=RELAY_SECRET, port=None, extra=()):
    port = port or transcoder.rtmp_port
    return make_server(role="ingest", record=False,
                       args=[f"--ingest.relay=rtmp://{HOST}:{port}/relay/{{stream}}",
                             f"--ingest.relay_secret={relay_secret}", "--ingest.relay_max_backoff=1s", *extra])


class DelayProxy:
    """A TCP proxy on 127.0.0.1 that hands on every byte from the client `delay` seconds after it
    arrived (a long relay hop: ingest -> transcode); answers go back at once. Threads end when
    either side closes or close() is called; each wait is bounded."""

    def __init__(self, upstream_port, delay):
        self.upstream_port, self.delay = upstream_port, delay
        self.listener = socket.create_server((HOST, 0))
        self.listener.settimeout(0.5)
        self.port = self.listener.getsockname()[1]
        self.closed = threading.Event()
        self.sockets = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed.is_set():
            try:
                client, _ = self.listener.accept()
            except (socket.timeout, OSError):
                continue
            try:
                upstream = socket.create_connection((HOST, self.upstream_port), timeout=5)
            except OSError:
                client.close()
                continue
            self.sockets += [client, upstream]
            pending = collections.deque()
            ready = threading.Condition()
            threading.Thread(target=self._read, args=(client, upstream, pending, ready), daemon=True).start()
            threading.Thread(target=self._forward, args=(client, upstream, pending, ready), daemon=True).start()
            threading.Thread(target=self._back, args=(client, upstream), daemon=True).start()

    def _read(self, client, upstream, pending, ready):
        client.settimeout(0.5)
        while not self.closed.is_set():
            try:
                data = client.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                data = b""
            with ready:
                pending.append((time.monotonic() + self.delay, data))
                ready.notify()
            if not data:
                return

    def _forward(self, client, upstream, pending, ready):
        while not self.closed.is_set():
            with ready:
                if not pending:
                    ready.wait(0.5)
                    continue
                due, data = pending[0]
            if time.monotonic() < due:
                time.sleep(min(due - time.monotonic(), 0.5))
                continue
            with ready:
                pending.popleft()
            try:
                if not data:
                    upstream.shutdown(socket.SHUT_WR)
                    return
                upstream.sendall(data)
            except OSError:
                client.close()
                return

    def _back(self, client, upstream):
        upstream.settimeout(0.5)
        while not self.closed.is_set():
            try:
                data = upstream.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                data = b""
            try:
                if not data:
                    client.close()
                    return
                client.sendall(data)
            except OSError:
                return

    def close(self):
        self.closed.set()
        self.listener.close()
        for s in self.sockets:
            try:
                s.close()
            except OSError:
                pass


def master_variants(origin, stream):
    """[(uri, attributes)] of the multivariant playlist, in order; [] while absent."""
    status, body, _ = h.http_get(f"{origin.origin}/live/{stream}/master.m3u8")
    if status != 200:
        return []
    lines = body.splitlines()
    out = []
    for i, line in enumerate(lines):
        if line.startswith("#EXT-X-STREAM-INF:") and i + 1 < len(lines):
            attrs = dict(re.findall(r'([A-Z-]+)=("[^"]*"|[^,]*)', line.split(":", 1)[1]))
            out.append((lines[i + 1].strip(), attrs))
    return out


def segments(origin, stream, rung):
    status, body, _ = h.http_get(f"{origin.origin}/live/{stream}/{rung}/index.m3u8")
    return body.count("#EXTINF") if status == 200 else 0


def ladder_listed(origin, stream):
    variants = master_variants(origin, stream)
    return [uri for uri, _ in variants] == ["360p/index.m3u8", "160p/index.m3u8"] and all(
        segments(origin, stream, r) >= 2 for r in DECLARED)


def btrt_max_bitrate(init):
    """maxBitrate of the first btrt box in an init segment (None without one)."""
    at = init.find(b"btrt")
    if at < 4:
        return None
    return struct.unpack(">I", init[at + 8:at + 12])[0]


def check_master(origin, stream):
    variants = master_variants(origin, stream)
    assert [uri for uri, _ in variants] == ["360p/index.m3u8", "160p/index.m3u8"], variants
    sizes = {uri.split("/")[0]: a["RESOLUTION"] for uri, a in variants}
    assert sizes == {"360p": "640x360", "160p": "284x160"}, variants
    for uri, a in variants:
        rung = uri.split("/")[0]
        bandwidth = int(a["BANDWIDTH"])
        # The declared peak plus the audio rendition's rate (AAC, well under 400 kb/s).
        assert DECLARED[rung] < bandwidth < DECLARED[rung] + 400000, (rung, a)
        assert a["CODECS"].startswith('"avc1.') and "mp4a.40.2" in a["CODECS"], a
    # The declared rate reached the origin's own init segment of the rung (written back as btrt).
    for rung, declared in DECLARED.items():
        status, body, _ = h.http_get(f"{origin.origin}/live/{stream}/{rung}/index.m3u8")
        init_uri = re.search(r'#EXT-X-MAP:URI="([^"]+)"', body).group(1)
        code, _, init = h.http_request(f"{origin.origin}/live/{stream}/{rung}/{init_uri}")
        assert code == 200
        assert btrt_max_bitrate(init) == declared, rung


def test_ingest_transcode_origin_on_three_processes(make_server, procs, clip30, tmp_path):
    origin = start_origin(make_server)
    tc = start_transcoder(make_server, origin)
    ing = start_ingest(make_server, tc)
    key = ing.create_key("cam")
    pub = procs.add(h.ffmpeg_publish(clip30, ing.url(key), tmp_path / "pub.log"))

    ing.wait_metric("streamflex_ingest_relay_connects_total", 1, timeout=15)
    h.wait_until(lambda: ladder_listed(origin, "cam"), 25, "both rungs with two segments at the origin")
    check_master(origin, "cam")
    master = f"{origin.origin}/live/cam/master.m3u8"
    streams = h.probe_streams(master)
    assert streams["video"]["codec_name"] == "h264"
    assert streams["audio"]["codec_name"] == "aac"
    got = h.run(["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-xerror", "-t", "5", "-i",
                 f"{origin.origin}/live/cam/360p/index.m3u8", "-f", "null", "-"], timeout=40)
    assert got.returncode == 0, got.stderr

    m = tc.metrics()
    assert m.get("streamflex_transcode_push_objects_total", stream="cam") > 10
    assert m.get("streamflex_transcode_push_bytes_total") > 100000
    assert m.has("streamflex_transcode_speed", stream="cam")
    assert m.get("streamflex_transcode_rung_declared_bps", stream="cam", rung="360p") == 660000
    assert m.get("streamflex_transcode_push_failures_total") == 0
    assert h.http_get(tc.admin_url("/healthz"))[0] == 200
    assert h.http_get(tc.admin_url("/readyz"))[0] == 200
    # The transcoder took the relay under the stream's name; the secret is not in its log.
    assert tc.stream("cam") is not None
    assert RELAY_SECRET not in tc.log_text()

    # The origin dies and comes back on the same port: the transcoder retries and pushes again.
    assert origin.stop(signal.SIGKILL) != 0
    h.wait_until(lambda: tc.metric("streamflex_transcode_push_failures_total") >= 1, 10,
                 "failed pushes while the origin is down")
    assert pub.alive(), "the publisher must not notice the origin leaving"
    origin.start()
    h.wait_until(lambda: ladder_listed(origin, "cam"), 25, "both rungs at the restarted origin")
    check_master(origin, "cam")
    got = h.run(["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-xerror", "-t", "2", "-i",
                 f"{origin.origin}/live/cam/160p/index.m3u8", "-f", "null", "-"], timeout=40)
    assert got.returncode == 0, got.stderr
    tc.wait_log("origin accepts again", timeout=5)

    # The publish ends: the transcoder ends the stream at the origin (no wait for ingest_idle).
    assert pub.wait(40) == 0, pub.tail()
    origin.wait_log("pushed stream ended by its pusher", timeout=15, stream="cam")
    tc.wait_log("stream ended at the origin", timeout=5, stream="cam")


BURST_MS = 8000


def test_program_date_time_is_the_sources_arrival_across_the_push(make_server, clip30, tmp_path):
    """The origin's PROGRAM-DATE-TIME is when the media reached the platform, carried across the push
    in a prft box before each chunk, not when the pushed chunks reached the origin. The publisher
    sends its first 8 s at once (an encoder's backlog), then in real time: the transcoder works
    through the burst at its own speed, so the chunks of that media reach the origin later than the
    media reached the platform, and an origin that anchored on its own arrivals would put the
    segments that much later (by seconds: it settles its anchor at its first part)."""
    origin = start_origin(make_server)
    tc = start_transcoder(make_server, origin)
    ing = start_ingest(make_server, tc)
    key = ing.create_key("cam")
    tags = [t for t in h.flv_tags(clip30) if t[1] <= BURST_MS + 4000]
    first_video = min(ts for ttype, ts, _ in tags if ttype == 9)
    burst = [t for t in tags if t[1] <= BURST_MS]
    pub = h.TagPublisher(ing.rtmp_port, key)
    try:
        # The relay connects at the publish; what is sent before it is up never reaches the transcoder.
        ing.wait_metric("streamflex_ingest_relay_connects_total", 1, timeout=15)
        pub.send(burst)
        sent_ms = time.time() * 1000
        # Sent at once: the burst's last tag implies the earliest start, and the tags after it,
        # sent in real time from there, imply the same.
        implied_start = sent_ms - burst[-1][1]
        for i, tag in enumerate(tags[len(burst):]):
            delay = (implied_start + tag[1]) / 1000 - time.time()
            if delay > 0:
                time.sleep(min(delay, 1.0))
            pub.send([tag])
    finally:
        pub.close()
    status, body, _ = h.http_get(f"{origin.origin}/live/cam/160p/index.m3u8")
    assert status == 200, status
    pl = h.MediaPlaylist(body)
    seg0 = next((s for s in pl.segments if s["msn"] == 0), None)
    assert seg0 and seg0["pdt"], body
    pdt_ms = datetime.datetime.fromisoformat(seg0["pdt"].replace("Z", "+00:00")).timestamp() * 1000
    # Segment 0 starts at the first picture; its time on the wall clock is where the source's
    # arrival puts it (within a B-frame delay and the relay hop).
    expected = implied_start + first_video
    print(f"segment 0 PDT - (source arrival + media time): {pdt_ms - expected:+.0f} ms")
    assert abs(pdt_ms - expected) < 250, (pdt_ms - expected, seg0)
    origin.wait_log("program date time anchored", timeout=5, stream="cam", **{"from": "ingest"})


def test_dropped_rung_ends_its_representation_and_comes_back_across_the_push(make_server, clip30, tmp_path):
    """The publisher sends 3 s in real time, 5 s at once, then real time: the transcoder drops 360p
    (max_lag 1 s), ends its representation at the origin (DELETE .../Streams(360p)), and brings it
    back after restore_hold; the origin lists it again, numbered from where it resumed."""
    origin = start_origin(make_server)
    tc = start_transcoder(make_server, origin, extra=["--transcode.max_lag=1s", "--transcode.restore_hold=4s"])
    ing = start_ingest(make_server, tc)
    key = ing.create_key("cam")
    lead, burst = 3000, 5000
    tags = [t for t in h.flv_tags(clip30) if t[1] <= 20000]
    pub = h.TagPublisher(ing.rtmp_port, key)
    try:
        ing.wait_metric("streamflex_ingest_relay_connects_total", 1, timeout=15)
        t0 = time.monotonic()
        for tag in tags:
            due = tag[1] if tag[1] < lead else max(lead, tag[1] - burst)
            delay = t0 + due / 1000 - time.monotonic()
            if delay > 0:
                time.sleep(min(delay, 1.0))
            pub.send([tag])
        m = tc.metrics()
        variants = [uri for uri, _ in master_variants(origin, "cam")]
        status, body, _ = h.http_get(f"{origin.origin}/live/cam/360p/index.m3u8")
    finally:
        pub.close()
    assert m.get("streamflex_transcode_dropped_rungs_total", stream="cam") == 1
    assert m.get("streamflex_transcode_restored_rungs_total", stream="cam") == 1
    origin.wait_log("pushed representation stopped by its pusher", timeout=5, stream="cam", representation="360p")
    assert variants == ["360p/index.m3u8", "160p/index.m3u8"], variants
    assert status == 200
    msns = [seg["msn"] for seg in h.MediaPlaylist(body).segments]
    assert len(msns) >= 2 and msns == list(range(msns[0], msns[0] + len(msns))), msns


def test_relay_with_wrong_secret_is_refused(make_server, procs, clip10, tmp_path):
    origin = start_origin(make_server)
    tc = start_transcoder(make_server, origin)
    ing = start_ingest(make_server, tc, relay_secret="not-the-secret")
    key = ing.create_key("cam")
    procs.add(h.ffmpeg_publish(clip10, ing.url(key), tmp_path / "pub.log"))
    ing.wait_live("cam")
    ing.wait_metric("streamflex_ingest_relay_connect_failures_total", 2, timeout=15)
    assert ing.metric("streamflex_ingest_relay_connects_total") == 0
    tc.wait_metric("streamflex_ingest_publish_total", 2, timeout=5, result="rejected_key")
    m = tc.metrics()
    assert m.get("streamflex_transcode_push_objects_total") == 0
    assert not m.has("streamflex_transcode_speed", stream="cam")
    assert h.http_get(f"{origin.origin}/live/cam/master.m3u8")[0] == 404
    assert "not-the-secret" not in tc.log_text()


def test_transcode_role_needs_an_origin(make_server, tmp_path):
    p = h.run([h.BIN, "transcode", f"--admin.listen={HOST}:{h.free_port()}",
               f"--transcode.listen={HOST}:{h.free_port()}"], timeout=15, cwd=tmp_path)
    assert p.returncode != 0
    assert "transcode.origin_url" in p.stderr


def test_all_serves_the_same_multivariant_playlist(make_server, procs, clip12, tmp_path):
    """The reference: `streamflex all` with the same ladder passes the same checks (names, order,
    RESOLUTION, declared BANDWIDTH, btrt in the init segments) as the three-process chain."""
    srv = h.start_origin(make_server, args=LADDER)
    key = srv.create_key("cam")
    procs.add(h.ffmpeg_publish(clip12, srv.url(key), tmp_path / "pub.log"))
    h.wait_until(lambda: ladder_listed(srv, "cam"), 25, "both rungs with two segments in all")
    check_master(srv, "cam")


def segment0_pdt_ms(origin, stream, rung):
    """Segment 0's EXT-X-PROGRAM-DATE-TIME in ms since the epoch, None while not listed."""
    status, body, _ = h.http_get(f"{origin.origin}/live/{stream}/{rung}/index.m3u8")
    if status != 200:
        return None
    seg0 = next((s for s in h.MediaPlaylist(body).segments if s["msn"] == 0), None)
    if not seg0 or not seg0["pdt"]:
        return None
    return datetime.datetime.fromisoformat(seg0["pdt"].replace("Z", "+00:00")).timestamp() * 1000


HOP_DELAY = 1.5


@pytest.mark.parametrize("clock", [True, False], ids=["ingest-clock", "no-clock"])
def test_program_date_time_is_the_arrival_at_the_ingest_node_not_one_hop_later(make_server, clip30, clock):
    """The relay from ingest to transcode goes through a proxy that delays every byte by 1.5 s (a long
    hop). With the ingest node's arrival clock (the relay's @streamflex message, ingest.relay_clock)
    segment 0's PROGRAM-DATE-TIME at the origin is the source's arrival at the INGEST node; an
    old-style relay without it (ingest.relay_clock=false) anchors at the transcode node, 1.5 s later."""
    origin = start_origin(make_server)
    # Each command of the relay's connection crosses the delay: give it time to publish.
    tc = start_transcoder(make_server, origin, extra=["--ingest.handshake_timeout=20s"])
    proxy = DelayProxy(tc.rtmp_port, HOP_DELAY)
    try:
        ing = start_ingest(make_server, tc, port=proxy.port,
                           extra=["--ingest.relay_timeout=20s", f"--ingest.relay_clock={str(clock).lower()}"])
        key = ing.create_key("cam")
        tags = [t for t in h.flv_tags(clip30) if t[1] <= 7000]
        first_video = min(ts for ttype, ts, _ in tags if ttype == 9)
        pub = h.TagPublisher(ing.rtmp_port, key)
        try:
            ing.wait_metric("streamflex_ingest_relay_connects_total", 1, timeout=25)
            # In real time; the source's arrival at the ingest node implies the start the earliest tag gives.
            t0 = time.monotonic()
            implied_start = None
            for tag in tags:
                delay = t0 + tag[1] / 1000 - time.monotonic()
                if delay > 0:
                    time.sleep(min(delay, 1.0))
                pub.send([tag])
                start = time.time() * 1000 - tag[1]
                implied_start = start if implied_start is None else min(implied_start, start)
            h.wait_until(lambda: segment0_pdt_ms(origin, "cam", "160p") is not None, 15, "segment 0 at the origin")
            pdt_ms = segment0_pdt_ms(origin, "cam", "160p")
        finally:
            pub.close()
    finally:
        proxy.close()
    late = pdt_ms - (implied_start + first_video)
    print(f"relay_clock={clock}: segment 0 PDT - (arrival at the ingest node + media time): {late:+.0f} ms")
    if clock:
        assert abs(late) < 150, late
        tc.wait_log("program date time from the ingest node's arrival clock", timeout=5, stream="cam")
    else:
        assert HOP_DELAY * 1000 - 250 < late < HOP_DELAY * 1000 + 250, late
        assert not tc.logs("program date time from the ingest node's arrival clock")


SOLO = "solo=240p:426x240@30:400k:440k:ultrafast"


def test_stream_settings_from_the_ingest_nodes_api_reach_transcoder_and_origin(make_server, procs, clip30, tmp_path):
    """A stream created on the ingest node's API with profile "solo" (not the transcode node's
    default), 1 s segments and 300 ms parts: the relay carries the settings in the publish name's
    query, the transcode node encodes solo's rung with keyframes every second, and the pushed CMAF
    carries the latency settings to the origin (StreamFlex-* headers), whose playlist says
    TARGETDURATION 1 and PART-TARGET 0.3 (a stream without settings keeps the transcode node's default
    profile and the origin's targets: test_ingest_transcode_origin_on_three_processes)."""
    origin = start_origin(make_server)
    tc = start_transcoder(make_server, origin, extra=[f"{LADDER[0]};{SOLO}"])
    api_srv = make_server(role="api")
    api = sfapi.Api(api_srv)
    ingest_key = api.api_key("relaying-ingest", "ingest")
    ing = make_server(role="ingest", record=False,
                      args=[f"--ingest.api_url={api_srv.api_url()}",
                            f"--ingest.relay=rtmp://{HOST}:{tc.rtmp_port}/relay/{{stream}}",
                            f"--ingest.relay_secret={RELAY_SECRET}", "--ingest.relay_max_backoff=1s"],
                      env={"STREAMFLEX_INGEST_API_KEY": ingest_key})
    key = api.create_stream("tiny", profile="solo", latency="ll-hls", part_target_ms=300,
                            segment_target_ms=1000)["key"]["key"]
    pub = procs.add(h.ffmpeg_publish(clip30, ing.url(key), tmp_path / "pub.log"))

    def listed():
        return [uri for uri, _ in master_variants(origin, "tiny")] == ["240p/index.m3u8"] and segments(
            origin, "tiny", "240p") >= 4
    h.wait_until(listed, 30, "solo's rung with four segments at the origin")
    status, body, _ = h.http_get(f"{origin.origin}/live/tiny/240p/index.m3u8")
    assert status == 200
    assert "#EXT-X-TARGETDURATION:1\n" in body, body
    assert "#EXT-X-PART-INF:PART-TARGET=0.3\n" in body, body
    durations = [float(x) for x in re.findall(r"#EXTINF:([0-9.]+)", body)]
    assert durations and max(durations) <= 1.05, durations
    tc.wait_log("relayed stream settings", timeout=5, stream="tiny", profile="solo", segment_target_ms=1000)
    origin.wait_log("pushed stream started", timeout=5, stream="tiny", part_target_ms=300, segment_target_ms=1000)
    assert pub.alive()
    assert RELAY_SECRET not in tc.log_text() and RELAY_SECRET not in ing.log_text()


JUMP_AT_MS = 8000  # media time of the first tag the publisher sends with jumped timestamps
JUMP_MS = 30000
JUMP_READ_SECONDS = 14  # ffmpeg -xerror reads the live HLS this long, from before the jump to after it


def test_a_timestamp_jump_at_the_ingest_node_is_a_discontinuity_in_every_rendition_at_the_origin(
        make_server, clip30, tmp_path):
    """The publisher's FLV timestamps jump 30 s forward at 8 s of media. The ingest node keeps the
    relayed times continuous and tells the transcode node of the jump (@streamflex {epoch}) right
    before the first frame after it; the transcode node (an authenticated relay: it applies it) starts
    the discontinuity in every rung and in the audio, re-encoded here (transcode.audio=aac), and the
    origin behind it lists an EXT-X-DISCONTINUITY with a new init at the same segment in every
    rendition. ffmpeg -xerror reads across it."""
    origin = start_origin(make_server)
    tc = start_transcoder(make_server, origin, extra=["--transcode.audio=aac"])
    ing = start_ingest(make_server, tc)
    key = ing.create_key("jmp")
    tags = [t for t in h.flv_tags(clip30) if t[0] in (8, 9)]
    pub = h.TagPublisher(ing.rtmp_port, key)
    pub.client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    ing.wait_metric("streamflex_ingest_relay_connects_total", 1, timeout=15)
    done, state = threading.Event(), {"jumped_at": None, "errors": []}

    def send():  # in real time, paced by the tags' own times
        try:
            t0 = time.monotonic()
            for ttype, ts, body in tags:
                if done.is_set():
                    break
                wait = t0 + ts / 1000 - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                if ts >= JUMP_AT_MS:
                    state["jumped_at"] = state["jumped_at"] or time.time()
                    ts += JUMP_MS
                pub.send([(ttype, ts, body)])
        except Exception as e:  # reported below
            state["errors"].append(repr(e))
        finally:
            pub.close()

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        h.wait_until(lambda: segments(origin, "jmp", "360p") >= 1, 30, "a 360p segment at the origin")
        status, master, _ = h.http_get(f"{origin.origin}/live/jmp/master.m3u8")
        audio = re.search(r'#EXT-X-MEDIA:TYPE=AUDIO[^\n]*URI="([^"]+)"', master)
        assert audio, master
        renditions = {"360p": "360p/index.m3u8", "160p": "160p/index.m3u8", "audio": audio.group(1)}
        out = {}

        def read():
            out["read"] = h.run(["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-xerror", "-i",
                                 f"{origin.origin}/live/jmp/master.m3u8", "-t", str(JUMP_READ_SECONDS), "-f",
                                 "null", "-progress", "pipe:1", "-"], timeout=JUMP_READ_SECONDS + 60)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        seen = {n: [] for n in renditions}
        deadline = time.monotonic() + JUMP_READ_SECONDS + 40
        for _ in range(2000):
            if time.monotonic() > deadline or not reader.is_alive():
                break
            for n, uri in renditions.items():
                status, body, _ = h.http_get(f"{origin.origin}/live/jmp/{uri}")
                if status == 200:
                    seen[n].append(body)
            time.sleep(0.2)
        reader.join(JUMP_READ_SECONDS + 60)
    finally:
        done.set()
        sender.join(10)
    assert not state["errors"], state["errors"]
    assert state["jumped_at"], "the publisher never reached the jump"
    # The ingest node took the jump as a discontinuity; the transcode node saw continuous times and
    # took the relayed epoch instead, once.
    assert len(ing.logs("timestamp jump: discontinuity")) == 1, ing.log_tail()
    relayed = tc.logs("relayed timestamp jump: discontinuity", stream="jmp")
    assert [r.get("relayed_epoch") for r in relayed] == [1], tc.log_tail()
    assert not tc.logs("timestamp jump: discontinuity") and not tc.logs("timestamp jump rebased"), tc.log_tail()
    at = {}
    for name, bodies in seen.items():
        found = None
        for body in reversed(bodies):
            pl = h.MediaPlaylist(body)
            i = next((i for i, s in enumerate(pl.segments) if s["discontinuity"]), None)
            if i is not None:
                found = (pl, i)
                break
        assert found, f"no EXT-X-DISCONTINUITY in any {name} playlist:\n{bodies[-1:]}"
        pl, i = found
        assert i > 0 and sum(s["discontinuity"] for s in pl.segments) == 1, pl.text
        before, after = pl.segments[i - 1], pl.segments[i]
        # Numbering goes on, a new init, the media goes on where it was (program date time).
        assert after["msn"] == before["msn"] + 1 and after["map"] != before["map"], pl.text
        assert abs(datetime.datetime.fromisoformat(before["pdt"].replace("Z", "+00:00")).timestamp() +
                   before["duration"] -
                   datetime.datetime.fromisoformat(after["pdt"].replace("Z", "+00:00")).timestamp()) < 0.1, pl.text
        at[name] = after["msn"]
    print(f"\n[transcode-role] relayed timestamp jump: discontinuity at segment {at}")
    assert len(set(at.values())) == 1, at
    p = out.get("read")
    assert p is not None, "ffmpeg did not finish"
    assert p.returncode == 0, p.stderr[-2000:]
    frames = [int(l.split("=")[1]) for l in p.stdout.splitlines() if l.startswith("frame=")]
    print(f"ffmpeg -xerror across the relayed jump: {frames[-1:]} frames in {JUMP_READ_SECONDS} s")
    assert frames and frames[-1] >= (JUMP_READ_SECONDS - 0.5) * 30, (frames[-1:], p.stderr[-500:])
