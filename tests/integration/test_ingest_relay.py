"""Ingest relays (pushes) each publish to other RTMP servers (ingest.relay), as nginx-rtmp's push.

An `ingest` process takes ffmpeg's publish and relays it to a second process (`all`, passthrough)
under that process's stream key; the second one's origin must serve it as HLS that ffprobe and
ffmpeg -xerror read. The receiving process is stopped and started again while the publisher goes
on: the relay reconnects and the stream comes back there; the publisher never notices. A relay to a
dead port leaves `streamflex all`'s own publish and HLS untouched; a relay whose key the peer
refuses is counted as a failure and never logs the key; a peer that accepts TCP and then never
answers costs one ingest.relay_timeout per attempt. nginx-rtmp, relayed to with the arrival clock
(the @streamflex data message) on, ignores that message and records the stream whole.
"""
import os
import shutil
import socket
import subprocess
import threading
import time

import pytest

import sfharness as h

HOST = h.HOST


def has_segment(origin, stream):
    status, body, _ = h.http_get(f"{origin}/live/{stream}/video/index.m3u8")
    return status == 200 and "#EXTINF" in body


def segment_count(origin, stream):
    status, body, _ = h.http_get(f"{origin}/live/{stream}/video/index.m3u8")
    return body.count("#EXTINF") if status == 200 else 0


def test_relay_reaches_peer_and_survives_its_restart(make_server, procs, clip30, tmp_path):
    peer = h.start_origin(make_server)
    peer_key = peer.create_key("relayed")
    src = make_server(role="ingest", record=False,
                      args=[f"--ingest.relay=rtmp://{HOST}:{peer.rtmp_port}/live/{peer_key}",
                            "--ingest.relay_max_backoff=1s", "--ingest.relay_timeout=2s"])
    key = src.create_key("cam")
    pub = procs.add(h.ffmpeg_publish(clip30, src.url(key), tmp_path / "pub.log"))

    src.wait_metric("streamflex_ingest_relay_connects_total", 1, timeout=15)
    h.wait_until(lambda: has_segment(peer.origin, "relayed"), 15, "a segment of the relayed stream at the peer")
    master = f"{peer.origin}/live/relayed/master.m3u8"
    streams = h.probe_streams(master)
    assert streams["video"]["codec_name"] == "h264"
    assert (streams["video"]["width"], streams["video"]["height"]) == (1280, 720)
    assert streams["audio"]["codec_name"] == "aac"
    got = h.run(["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-xerror", "-t", "3", "-i",
                 f"{peer.origin}/live/relayed/video/index.m3u8", "-f", "null", "-"], timeout=30)
    assert got.returncode == 0, got.stderr

    # The peer goes away and comes back on the same ports (a transcode node restarted).
    assert peer.stop() == 0
    h.wait_until(lambda: src.metric("streamflex_ingest_relay_connect_failures_total") >= 1, 10,
                 "a failed reconnection while the peer is down")
    assert pub.alive(), "the publisher must not notice its relay's peer leaving"
    peer.start()
    src.wait_metric("streamflex_ingest_relay_connects_total", 2, timeout=15)
    h.wait_until(lambda: segment_count(peer.origin, "relayed") >= 2, 15, "segments after the reconnection")
    assert src.metric("streamflex_ingest_relay_reconnects_total") >= 1
    assert pub.alive()
    live = src.stream("cam")
    assert live is not None and live["stats"]["dropped_frames"] == 0, live
    # Each connection started at the group of pictures in progress: nothing waited for a keyframe.
    assert src.metric("streamflex_ingest_relay_dropped_frames_total") == 0
    # The publish name carried the peer's stream key: never in the relaying process's log.
    assert peer_key not in src.log_text()


def test_relay_to_dead_port_leaves_all_untouched(make_server, procs, clip10, tmp_path):
    dead = h.free_port()
    srv = h.start_origin(make_server, args=[f"--ingest.relay=rtmp://{HOST}:{dead}/live",
                                            "--ingest.relay_max_backoff=500ms"])
    key = srv.create_key("own")
    started = time.monotonic()
    pub = procs.add(h.ffmpeg_publish(clip10, srv.url(key), tmp_path / "pub.log"))
    h.wait_until(lambda: has_segment(srv.origin, "own"), 15, "the stream's own HLS")
    assert pub.wait(40) == 0, pub.tail()
    # -re: the publish took its media time, not longer (the relay never held the publisher back).
    assert time.monotonic() - started < 10 + 8
    assert srv.metric("streamflex_ingest_relay_connect_failures_total") >= 2
    assert srv.metric("streamflex_ingest_relay_reconnects_total") >= 1
    assert srv.metric("streamflex_ingest_relay_connects_total") == 0
    assert srv.metric("streamflex_ingest_relay_links_up") == 0
    assert segment_count(srv.origin, "own") >= 3


def test_relay_refused_by_peer_is_counted_not_logged(make_server, procs, clip10, tmp_path):
    peer = make_server(role="ingest", record=False)
    peer.create_key("other")
    wrong = "not-a-key-0123456789"
    src = make_server(role="ingest", record=False,
                      args=[f"--ingest.relay=rtmp://{HOST}:{peer.rtmp_port}/live/{wrong}",
                            "--ingest.relay_max_backoff=500ms"])
    key = src.create_key("cam")
    procs.add(h.ffmpeg_publish(clip10, src.url(key), tmp_path / "pub.log"))
    src.wait_live("cam")
    src.wait_metric("streamflex_ingest_relay_connect_failures_total", 2, timeout=10)
    assert src.metric("streamflex_ingest_relay_connects_total") == 0
    peer.wait_metric("streamflex_ingest_publish_total", 2, timeout=5, result="rejected_key")
    assert src.logs("relay connection failed", step="publish")
    assert wrong not in src.log_text()
    assert src.stream("cam")["stats"]["dropped_frames"] == 0


def test_relay_peer_that_never_answers_times_out(make_server, procs, clip10, tmp_path):
    """A peer that accepts TCP and then says nothing (hostile or hung): each attempt ends at
    ingest.relay_timeout, is counted, and the publisher is never held up."""
    hole = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    hole.bind((HOST, 0))
    hole.listen(16)
    held = []

    def accept():
        while True:
            try:
                conn, _ = hole.accept()
            except OSError:
                return
            held.append(conn)  # kept open, never read

    threading.Thread(target=accept, daemon=True).start()
    try:
        src = make_server(role="ingest", record=False,
                          args=[f"--ingest.relay=rtmp://{HOST}:{hole.getsockname()[1]}/live",
                                "--ingest.relay_timeout=500ms", "--ingest.relay_max_backoff=500ms"])
        key = src.create_key("cam")
        started = time.monotonic()
        pub = procs.add(h.ffmpeg_publish(clip10, src.url(key), tmp_path / "pub.log"))
        src.wait_metric("streamflex_ingest_relay_connect_failures_total", 2, timeout=10)
        assert src.logs("relay connection failed", step="handshake")
        assert len(held) >= 2, "each attempt is a new connection"
        assert pub.wait(40) == 0, pub.tail()
        assert time.monotonic() - started < 10 + 8
        assert src.metric("streamflex_ingest_relay_connects_total") == 0
    finally:
        hole.close()
        for c in held:
            c.close()


NGINX_RTMP = "/usr/lib/nginx/modules/ngx_rtmp_module.so"


@pytest.mark.skipif(not (shutil.which("nginx") and os.path.exists(NGINX_RTMP)), reason="nginx-rtmp not installed")
def test_nginx_rtmp_takes_a_relay_with_the_arrival_clock(make_server, procs, clip10, tmp_path):
    """An unrelated RTMP server gets the relay's @streamflex data message (ingest.relay_clock, on by
    default) before the media: nginx-rtmp has no handler for it, takes the publish and records every
    frame; its error log says nothing about it."""
    port = h.free_port()
    prefix = tmp_path / "nginx"
    (prefix / "logs").mkdir(parents=True)
    (prefix / "rec").mkdir()
    conf = prefix / "nginx.conf"
    conf.write_text(f"""load_module {NGINX_RTMP};
worker_processes 1;
daemon off;
master_process off;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log info;
events {{ worker_connections 64; }}
rtmp {{
    server {{
        listen {HOST}:{port};
        application live {{
            live on;
            record all;
            record_path {prefix}/rec;
        }}
    }}
}}
""")
    nginx = subprocess.Popen(["nginx", "-p", f"{prefix}/", "-c", str(conf), "-e", f"{prefix}/logs/error.log"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        h.wait_until(lambda: socket.socket().connect_ex((HOST, port)) == 0, 10, "nginx-rtmp listening")
        src = make_server(role="ingest", record=False,
                          args=[f"--ingest.relay=rtmp://{HOST}:{port}/live", "--ingest.relay_max_backoff=1s"])
        key = src.create_key("cam")
        pub = procs.add(h.ffmpeg_publish(clip10, src.url(key), tmp_path / "pub.log"))
        src.wait_metric("streamflex_ingest_relay_connects_total", 1, timeout=15)
        assert pub.wait(40) == 0, pub.tail()
        h.wait_until(lambda: src.metric("streamflex_ingest_relay_links_up") == 0, 10, "the relay link closed")
        rec = prefix / "rec" / "cam.flv"
        h.wait_until(lambda: rec.exists() and rec.stat().st_size > 100000, 10, "nginx-rtmp's recording")
    finally:
        nginx.terminate()
        nginx.wait(timeout=10)
    streams = h.probe_streams(str(rec))
    assert streams["video"]["codec_name"] == "h264"
    assert streams["audio"]["codec_name"] == "aac"
    got, sent = len(h.video_packets(str(rec))), len(h.video_packets(str(clip10)))
    print(f"nginx-rtmp recorded {got} of the {sent} video frames published")
    assert got >= sent - 1, (got, sent)
    assert src.metric("streamflex_ingest_relay_connect_failures_total") == 0
    assert src.metric("streamflex_ingest_relay_dropped_frames_total") == 0
    errors = [line for line in (prefix / "logs" / "error.log").read_text().splitlines()
              if "[error]" in line or "[crit]" in line or "[alert]" in line or "[emerg]" in line]
    assert not errors, errors
