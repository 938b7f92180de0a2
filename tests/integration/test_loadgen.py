"""`streamflex loadgen` against a real origin: ffmpeg publishes over RTMP, 200 simulated LL-HLS
viewers follow blocking reloads for 20 s, and the origin's own request counter confirms the parts
the load generator says it downloaded.
"""
import json

import sfharness as h

STREAM = "lg"
VIEWERS = 200


def part_requests(srv):
    """streamflex_origin_requests_total{kind="part"}, summed over status codes."""
    m = srv.metrics()
    return sum(v for (name, labels), v in m.samples.items()
               if name == "streamflex_origin_requests_total" and ("kind", "part") in labels)


def test_loadgen_viewers_follow_ll_hls(make_server, procs, clip30, tmp_path):
    srv = h.start_origin(make_server)
    key = srv.create_key(STREAM)
    # Looped, so the stream outlives the run whatever the machine's pace.
    procs.add(h.Proc(["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-re", "-stream_loop", "-1",
                      "-i", clip30, "-c", "copy", "-f", "flv", srv.url(key)], tmp_path / "ffmpeg.log"))

    def two_segments():
        status, body, _ = h.http_get(f"{srv.origin}/live/{STREAM}/video/index.m3u8")
        return status == 200 and len(h.MediaPlaylist(body).segments) >= 2
    h.wait_until(two_segments, 20, "two complete segments in the video playlist")

    before = part_requests(srv)
    out = tmp_path / "summary.json"
    p = h.run([h.BIN, "loadgen", "--url", f"{srv.origin}/live/{STREAM}/master.m3u8", "--viewers", str(VIEWERS),
               "--duration", "20s", "--ramp", "3s", "--json", str(out)], timeout=90)
    print(p.stdout)
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr[-3000:])
    after = part_requests(srv)
    s = json.loads(out.read_text())

    assert s["viewers"]["total"] == VIEWERS
    assert s["viewers"]["started"] == VIEWERS, s["viewers"]
    assert s["viewers"]["failed"] == 0, s["viewers"]
    assert s["error_count"] == 0, s["errors"]
    assert s["part_delivery"]["count"] > 0
    assert s["part_delivery"]["p99_ms"] < 1000, s["part_delivery"]

    # Every viewer got about two parts a second (PART-TARGET 0.5 s) once it joined.
    parts = s["downloads"]["parts"]
    assert parts >= VIEWERS * 2 * 10, s["downloads"]
    # The origin answered at least every part the load generator counts; at most a request per
    # viewer more (answered while the run was being cut at its deadline).
    grew = after - before
    assert parts <= grew <= parts + VIEWERS, (parts, grew)


def test_loadgen_delta_updates(make_server, procs, clip30, tmp_path):
    """--skip: blocking reloads ask for _HLS_skip=YES; with a window longer than CAN-SKIP-UNTIL the
    origin answers delta updates (EXT-X-SKIP), which the viewers follow without a gap or error."""
    srv = h.start_origin(make_server, args=["--origin.window_segments=12"])
    key = srv.create_key(STREAM)
    procs.add(h.Proc(["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-re", "-stream_loop", "-1",
                      "-i", clip30, "-c", "copy", "-f", "flv", srv.url(key)], tmp_path / "ffmpeg.log"))

    def skippable():
        status, body, _ = h.http_get(f"{srv.origin}/live/{STREAM}/video/index.m3u8?_HLS_skip=YES")
        return status == 200 and "#EXT-X-SKIP:SKIPPED-SEGMENTS=" in body
    h.wait_until(skippable, 40, "a delta update that skips segments")

    out = tmp_path / "summary.json"
    p = h.run([h.BIN, "loadgen", "--url", f"{srv.origin}/live/{STREAM}/master.m3u8", "--viewers", "20",
               "--duration", "8s", "--ramp", "1s", "--skip", "--json", str(out)], timeout=60)
    print(p.stdout)
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr[-3000:])
    s = json.loads(out.read_text())
    assert s["options"]["skip"] is True
    assert s["viewers"]["failed"] == 0, s["viewers"]
    assert s["error_count"] == 0, s["errors"]
    d = s["downloads"]
    # Every blocking reload answer is a delta update; only each viewer's first (plain) load is not.
    assert d["delta_playlists"] >= d["playlists"] - 20 - 2, d
    assert d["parts"] >= 20 * 2 * 5, d
