"""Edge failover between two origins fed the same source.

Two `all` servers (ingest + origin each); one ffmpeg sends the same FLV to both with the tee
muxer (onfail=ignore: losing one server does not stop the other); an edge has upstreams A, B;
`streamflex loadgen` viewers play LL-HLS through the edge; server A is SIGKILLed mid-play.
Seamless only if both origins number segments and parts identically for identical input, which
the first test checks at the origins themselves.
"""
import datetime
import hashlib
import json
import os
import signal

import pytest

import sfharness as h

VIEWERS = int(os.environ.get("SF_EDGE_FAILOVER_VIEWERS", "200"))
DURATION = 20      # seconds of loadgen
KILL_AFTER = 4     # segments of media (2 s each) after the viewers started
PT = 0.5           # part target
STREAM = "match"


@pytest.fixture(scope="module")
def failover(module_servers, module_procs, clip30, tmp_path_factory):
    if not h.loadgen_available():
        pytest.fail("streamflex loadgen is not available in this build")
    work = tmp_path_factory.mktemp("failover")
    a = h.start_all(module_servers)
    b = h.start_all(module_servers)
    tee = "|".join(f"[f=flv:onfail=ignore]{s.url(s.create_key(STREAM))}" for s in (a, b))
    module_procs.add(h.Proc(["ffmpeg", "-hide_banner", "-nostdin", "-re", "-stream_loop", "-1", "-i", clip30,
                             "-c", "copy", "-map", "0", "-f", "tee", tee], work / "ffmpeg.log"))
    for s in (a, b):
        s.wait_live(STREAM, 10)

    def listed(s):
        status, body, _ = h.http_get(f"{s.origin}/live/{STREAM}/video/index.m3u8")
        return h.MediaPlaylist(body) if status == 200 else None

    h.wait_until(lambda: all(listed(s) and len(listed(s).segments) >= 2 for s in (a, b)), 15,
                 "two complete segments on both origins")
    # Same media time on both: the newest segment complete on both, by number.
    pa, pb = listed(a), listed(b)
    common = min(pa.segments[-1]["msn"], pb.segments[-1]["msn"])
    same = {}
    for msn in (common - 1, common):
        bodies = [h.http_request(f"{s.origin}/live/{STREAM}/video/s{msn}.p0.m4s")[2] for s in (a, b)]
        same[msn] = [hashlib.sha256(x).hexdigest()[:12] for x in bodies]
    numbering = {"a": [(x["msn"], x["pdt"], len(x["parts"])) for x in pa.segments],
                 "b": [(x["msn"], x["pdt"], len(x["parts"])) for x in pb.segments], "parts": same}

    edge = h.start_edge(module_servers, [f"{h.HOST}:{a.origin_port}", f"{h.HOST}:{b.origin_port}"], edge_id="edge")
    out = work / "loadgen.json"
    viewers = h.start_loadgen(f"{edge.edge}/live/{STREAM}/master.m3u8", VIEWERS, f"{DURATION}s", out,
                              work / "loadgen.log")
    start_msn = listed(b).open_msn
    h.wait_until(lambda: listed(b).open_msn >= start_msn + KILL_AFTER, KILL_AFTER * 2 + 10,
                 f"{KILL_AFTER} more segments at B")
    before = edge.metrics()
    a.stop(signal.SIGKILL)
    summary = h.loadgen_summary(viewers, out, DURATION + 30)
    yield {"a": a, "b": b, "edge": edge, "numbering": numbering, "summary": summary, "before": before,
           "after": edge.metrics(), "a_name": f"{h.HOST}:{a.origin_port}",
           "b_name": f"{h.HOST}:{b.origin_port}"}


def pdt_seconds(pdt):
    return datetime.datetime.fromisoformat(pdt.replace("Z", "+00:00")).timestamp()


def test_two_origins_number_identical_input_identically(failover):
    n = failover["numbering"]
    print(f"A: {n['a']}\nB: {n['b']}\nfirst part of the two newest segments (sha256 A, B): {n['parts']}")
    common = {msn for msn, _, _ in n["a"]} & {msn for msn, _, _ in n["b"]}
    assert len(common) >= 2, n
    a = {msn: (pdt_seconds(pdt), parts) for msn, pdt, parts in n["a"] if msn in common}
    b = {msn: (pdt_seconds(pdt), parts) for msn, pdt, parts in n["b"] if msn in common}
    # Each origin stamps PROGRAM-DATE-TIME from its own clock at arrival: the same msn may differ by
    # the few milliseconds between the two RTMP connections, not by a part.
    for msn in sorted(common):
        assert a[msn][1] == b[msn][1], f"s{msn}: {a[msn][1]} parts at A, {b[msn][1]} at B"
        assert abs(a[msn][0] - b[msn][0]) < PT / 5, f"s{msn}: PDT {a[msn][0]} at A, {b[msn][0]} at B"
    for msn, (ha, hb) in n["parts"].items():
        assert ha == hb, f"s{msn}.p0.m4s differs between the origins"


def test_edge_failed_over_to_b_when_a_was_killed(failover):
    before, after = failover["before"], failover["after"]
    up = "streamflex_edge_upstream_requests_total"
    a_ok = before.get(up, upstream=failover["a_name"], result="ok")
    a_failed = after.get(up, upstream=failover["a_name"], result="failed")
    b_ok_after = after.get(up, upstream=failover["b_name"], result="ok") - before.get(up, upstream=failover["b_name"],
                                                                                       result="ok")
    print(f"edge -> A before the kill: {a_ok:.0f} ok; after: {a_failed:.0f} failed; "
          f"edge -> B after the kill: {b_ok_after:.0f} ok")
    assert a_ok > 0, "the edge was not using A before the kill"
    assert a_failed >= 1
    assert b_ok_after > 0


def test_viewers_play_through_the_kill_without_error_or_stall(failover):
    s = failover["summary"]
    print(json.dumps({k: s[k] for k in ("viewers", "requests", "downloads", "stalls", "errors", "part_age")}))
    assert s["_exit"] == 0
    assert s["viewers"]["started"] == VIEWERS and s["viewers"]["failed"] == 0, s["viewers"]
    assert s["error_count"] == 0, s["errors"]
    # loadgen reports stall totals: no stall at all, or at most one part's worth per stalled viewer.
    stalls = s["stalls"]
    assert stalls["count"] == 0 or stalls["seconds"] <= PT * stalls["viewers"], stalls
