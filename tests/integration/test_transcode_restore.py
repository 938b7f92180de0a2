"""A rung dropped because the stream fell behind real time comes back once it keeps up again.

`streamflex all` transcodes a 640x360 publish to a two-rung ladder (360p, 160p). The publisher
sends 3 s in real time, then 5 s of media at once (an encoder's backlog: the transcoder is
suddenly 5 s behind, more than transcode.max_lag), then real time again. The top rung is dropped
(counted, out of the multivariant playlist); after transcode.restore_hold of keeping up it comes
back at a keyframe on the segment grid (counted, listed again), its playlist numbering its
segments consecutively from the leader's segment where it resumed, and ffmpeg -xerror reads it.
"""
import threading
import time

import sfharness as h

LADDER = ["--transcode.profiles=duo=360p:640x360@30:600k:660k:ultrafast,160p:284x160@15:145k:160k:ultrafast",
          "--transcode.profile=duo", "--transcode.max_lag=1s", "--transcode.restore_hold=4s",
          "--transcode.max_queue_frames=400", "--origin.window_segments=20"]
LEAD_MS, BURST_MS = 3000, 5000


def listed(base):
    status, body, _ = h.http_get(base + "master.m3u8")
    return status == 200 and "360p/index.m3u8" in body, status == 200 and "160p/index.m3u8" in body


def test_dropped_rung_comes_back_once_the_stream_keeps_up(make_server, tmp_path):
    clip = h.encode_clip_variant(24, size="640x360", bitrate="800k")
    srv = h.start_origin(make_server, args=LADDER)
    key = srv.create_key("up")
    base = f"{srv.origin}/live/up/"
    tags = h.flv_tags(clip)
    pub = h.TagPublisher(srv.rtmp_port, key)
    stop = threading.Event()

    def send():
        # Real time, except that the media from LEAD_MS to LEAD_MS + BURST_MS goes at once.
        t0 = time.monotonic()
        for ttype, ts, body in tags:
            if stop.is_set():
                return
            due = ts if ts < LEAD_MS else max(LEAD_MS, ts - BURST_MS)
            wait = t0 + due / 1000 - time.monotonic()
            if wait > 0:
                stop.wait(wait)
            pub.send([(ttype, ts, body)])

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    seen = []  # (seconds since start, 360p listed, 160p listed)
    t0 = time.monotonic()
    try:
        deadline = t0 + 40
        while time.monotonic() < deadline and sender.is_alive():
            top, low = listed(base)
            seen.append((time.monotonic() - t0, top, low))
            time.sleep(0.2)
        m = srv.metrics()
        restored_listing = listed(base)
        pl = h.MediaPlaylist(h.http_get(base + "360p/index.m3u8")[1])
        low_pl = h.MediaPlaylist(h.http_get(base + "160p/index.m3u8")[1])
        got = h.run(["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-xerror", "-i", base + "360p/index.m3u8",
                     "-t", "3", "-f", "null", "-"], timeout=40)
    finally:
        stop.set()
        sender.join(5)
        pub.close()

    assert m.get("streamflex_transcode_dropped_rungs_total", stream="up") == 1, m.get(
        "streamflex_transcode_dropped_rungs_total", stream="up")
    assert m.get("streamflex_transcode_restored_rungs_total", stream="up") == 1
    assert m.get("streamflex_transcode_rung_active", stream="up", rung="360p") == 1
    srv.wait_log("behind real time: top rung dropped", stream="up", rung="360p")
    srv.wait_log("ahead of real time again: rung restored", stream="up", rung="360p")
    # Listed, then gone while dropped, then listed again; the leader all along.
    states = [top for _, top, low in seen if low]
    assert True in states, seen
    first = states.index(True)
    gone = states.index(False, first) if False in states[first:] else None
    assert gone is not None, f"360p never left the multivariant playlist: {seen}"
    assert True in states[gone:], f"360p never came back: {seen}"
    assert restored_listing[0] and restored_listing[1]
    # Its window started over where it resumed: consecutive numbers, each segment the leader's of
    # that number (same program date time), no discontinuity.
    msns = [s["msn"] for s in pl.segments]
    assert len(msns) >= 2 and msns == list(range(msns[0], msns[0] + len(msns))), msns
    assert msns[0] > low_pl.segments[0]["msn"], (msns, low_pl.segments[0]["msn"])
    low_pdt = {s["msn"]: s["pdt"] for s in low_pl.segments}
    for s in pl.segments:
        assert not s["discontinuity"], s
        if s["msn"] in low_pdt:
            assert s["pdt"] == low_pdt[s["msn"]], (s, low_pdt[s["msn"]])
    assert got.returncode == 0, got.stderr[-2000:]
