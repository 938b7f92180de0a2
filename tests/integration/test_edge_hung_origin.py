"""Edge failover from an origin that hangs rather than dies.

As test_edge_failover, two `all` servers fed the same source (one ffmpeg each), an edge with
upstreams A, B and `streamflex loadgen` viewers playing LL-HLS through it; but A is stopped with
SIGSTOP: its kernel still accepts connections and takes requests, nothing answers (a hung process,
or a path to it that black-holes packets). A killed origin resets its connections and the edge
moves on at once; a hung one would hold every blocking playlist request the edge sent it until
edge.blocking_timeout (13 s), and every viewer behind them. The health probe's own short deadline
(edge.health_timeout) marks A down, and the requests still waiting on it are retried on B then.
"""
import json
import os
import signal
import time

import pytest

import sfharness as h

VIEWERS = int(os.environ.get("SF_EDGE_HUNG_VIEWERS", "100"))
DURATION = 20      # seconds of loadgen
STOP_AFTER = 3     # segments of media (2 s each) after the viewers started
STREAM = "hung"
HEALTH_INTERVAL_MS = 1000
HEALTH_TIMEOUT_MS = 500


@pytest.fixture(scope="module")
def hung(module_servers, module_procs, clip30, tmp_path_factory):
    if not h.loadgen_available():
        pytest.fail("streamflex loadgen is not available in this build")
    work = tmp_path_factory.mktemp("hung")
    a = h.start_all(module_servers)
    b = h.start_all(module_servers)
    # One publisher per origin, started back to back: the same file, so the same timestamps and
    # the same numbering. (One ffmpeg with the tee muxer would stop feeding B too once A's socket
    # buffer is full: a publisher blocked by the hung origin.)
    for name, s in (("a", a), ("b", b)):
        module_procs.add(h.ffmpeg_publish_looped(clip30, s.url(s.create_key(STREAM)), work / f"ffmpeg-{name}.log"))
    for s in (a, b):
        s.wait_live(STREAM, 10)

    def listed(s):
        status, body, _ = h.http_get(f"{s.origin}/live/{STREAM}/video/index.m3u8")
        return h.MediaPlaylist(body) if status == 200 else None

    h.wait_until(lambda: all(listed(s) and len(listed(s).segments) >= 2 for s in (a, b)), 15,
                 "two complete segments on both origins")
    edge = h.start_edge(module_servers, [f"{h.HOST}:{a.origin_port}", f"{h.HOST}:{b.origin_port}"], edge_id="edge",
                        args=[f"--edge.health_interval={HEALTH_INTERVAL_MS}ms",
                              f"--edge.health_timeout={HEALTH_TIMEOUT_MS}ms"])
    out = work / "loadgen.json"
    viewers = h.start_loadgen(f"{edge.edge}/live/{STREAM}/master.m3u8", VIEWERS, f"{DURATION}s", out,
                              work / "loadgen.log")
    start_msn = listed(b).open_msn
    h.wait_until(lambda: listed(b).open_msn >= start_msn + STOP_AFTER, STOP_AFTER * 2 + 10,
                 f"{STOP_AFTER} more segments at B")
    before = edge.metrics()
    a.proc.send_signal(signal.SIGSTOP)
    stopped_at = time.time()
    try:
        summary = h.loadgen_summary(viewers, out, DURATION + 30)
        after = edge.metrics()
    finally:
        a.proc.send_signal(signal.SIGCONT)
    yield {"stopped_at": stopped_at, "summary": summary, "before": before, "after": after, "edge": edge,
           "a_name": f"{h.HOST}:{a.origin_port}", "b_name": f"{h.HOST}:{b.origin_port}"}


def test_edge_moved_to_b_when_a_hung(hung):
    up = "streamflex_edge_upstream_requests_total"
    a_ok = hung["before"].get(up, upstream=hung["a_name"], result="ok")
    a_failed = hung["after"].get(up, upstream=hung["a_name"], result="failed")
    b_ok = (hung["after"].get(up, upstream=hung["b_name"], result="ok") -
            hung["before"].get(up, upstream=hung["b_name"], result="ok"))
    print(f"A stopped at {time.strftime('%H:%M:%S', time.gmtime(hung['stopped_at']))}"
          f".{int(hung['stopped_at'] % 1 * 1000):03d}Z; edge -> A before the stop: {a_ok:.0f} ok; after: "
          f"{a_failed:.0f} failed; edge -> B after: {b_ok:.0f} ok")
    assert a_ok > 0, "the edge was not using A before the stop"
    assert a_failed >= 1, "no request to A ended: the edge never gave up on it"
    assert b_ok > 0


def test_viewers_play_through_the_hang_without_error_and_with_a_short_stall(hung):
    s = hung["summary"]
    print(json.dumps({k: s[k] for k in ("viewers", "requests", "downloads", "stalls", "errors", "part_delivery")}))
    assert s["_exit"] == 0
    assert s["viewers"]["started"] == VIEWERS and s["viewers"]["failed"] == 0, s["viewers"]
    assert s["error_count"] == 0, s["errors"]
    # Noticed within one probe interval plus the probe's deadline (the viewers' buffer covers part
    # of that); B then answers at once. Each viewer may stall once, for no longer than that
    # detection time and half a second of scheduling. (Before the probe's abort, each viewer here
    # stalled 11.3 s and had a timeout and a gap: the blocking reloads held at A ran to 13 s.)
    stalls = s["stalls"]
    bound = (HEALTH_INTERVAL_MS + HEALTH_TIMEOUT_MS) / 1000 + 0.5
    assert stalls["count"] <= stalls["viewers"], stalls
    assert stalls["seconds"] <= bound * max(1, stalls["viewers"]), stalls
