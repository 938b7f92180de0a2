"""Edge failover between two origins fed the same source.

Two `all` servers (ingest + origin each); one ffmpeg sends the same FLV to both with the tee
muxer (onfail=ignore: losing one server does not stop the other); an edge has upstreams A, B;
`streamflex loadgen` viewers play LL-HLS through the edge; server A is SIGKILLed mid-play.
Seamless only if both origins number segments and parts identically for identical input, which
the first test checks at the origins themselves.

Before the kill, a second edge reaches A through a proxy that cuts A's answer for a segment off
with a reset in the middle of its body: the edge must finish that body from B, which is only
possible because B's bytes for the same name are A's.

A second module-wide run stops A with SIGSTOP instead (one ffmpeg per origin here): its kernel
still accepts connections and takes requests, nothing answers (a hung process, or a path to it
that black-holes packets). A killed origin resets its connections and the edge moves on at once; a
hung one would hold every blocking playlist request the edge sent it until edge.blocking_timeout
(13 s), and every viewer behind them. The health probe's own short deadline (edge.health_timeout)
marks A down, and the requests still waiting on it are retried on B then.
"""
import datetime
import hashlib
import json
import os
import signal
import socket
import struct
import threading
import time

import pytest

import sfharness as h

VIEWERS = int(os.environ.get("SF_EDGE_FAILOVER_VIEWERS", "200"))
HUNG_VIEWERS = int(os.environ.get("SF_EDGE_HUNG_VIEWERS", "100"))
DURATION = 20      # seconds of loadgen
KILL_AFTER = 4     # segments of media (2 s each) after the viewers started
STOP_AFTER = 3
PT = 0.5           # part target
STREAM = "match"
HUNG_STREAM = "hung"
LOST_STREAM = "lost"
STALLED_STREAM = "stalled"
POLLED_STREAM = "polled"
LOST_VIEWERS = int(os.environ.get("SF_EDGE_LOST_VIEWERS", "100"))
# When a disrupted run looks where the edge gets the stream's playlist: well within A's
# ingest.idle_timeout (10 s), after which A drops its stalled publisher and says so anyway.
PROBE_AFTER = 7
HEALTH_INTERVAL_MS = 1000  # the hung run's probes (defaults: 2000 ms, 1000 ms)
HEALTH_TIMEOUT_MS = 500


class BreakingProxy:
    """A TCP proxy to 127.0.0.1:`port` that relays requests one by one and, for the first answer
    to a GET of `victim`, sends the head and `cut` bytes of the body, then resets the connection."""

    def __init__(self, port, victim, cut):
        self.port, self.victim, self.cut = port, victim, cut
        self.broken = 0
        self.listener = socket.create_server((h.HOST, 0))
        self.address = f"{h.HOST}:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self):
        self.listener.close()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    @staticmethod
    def _read_head(sock, buf):
        while b"\r\n\r\n" not in buf:
            data = sock.recv(65536)
            if not data:
                return None, buf
            buf += data
        end = buf.index(b"\r\n\r\n") + 4
        return buf[:end], buf[end:]

    def _relay(self, client):
        upstream = socket.create_connection((h.HOST, self.port), timeout=10)
        client.settimeout(30)
        inbuf, upbuf = b"", b""
        try:
            while True:
                req, inbuf = self._read_head(client, inbuf)
                if req is None:
                    return
                upstream.sendall(req)  # GETs and HEADs from the edge carry no body
                head, upbuf = self._read_head(upstream, upbuf)
                if head is None:
                    return
                length, chunked = 0, False
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                    chunked = chunked or line.lower() == b"transfer-encoding: chunked"
                victim = self.broken == 0 and req.startswith(f"GET {self.victim} ".encode())
                if chunked:
                    if not victim:
                        return  # only the victim is asked for with an answer of unknown length
                    # The encoded stream as it comes (the segment is still being produced), cut
                    # after `cut` bytes wherever that falls in the chunk framing.
                    while len(upbuf) < self.cut:
                        data = upstream.recv(65536)
                        if not data:
                            return
                        upbuf += data
                    self.broken += 1
                    client.sendall(head + upbuf[:self.cut])
                    time.sleep(0.1)
                    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return
                while len(upbuf) < length:
                    data = upstream.recv(65536)
                    if not data:
                        return
                    upbuf += data
                body, upbuf = upbuf[:length], upbuf[length:]
                if victim:
                    self.broken += 1
                    client.sendall(head + body[:self.cut])
                    time.sleep(0.1)  # the edge hands the head and these bytes to its viewer
                    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return
                client.sendall(head + body)
        except OSError:
            return
        finally:
            client.close()
            upstream.close()


def resume_through_a_break(module_servers, a, b, msn, open_msn):
    """Segment `msn` (complete, so sent with Content-Length), then segment `open_msn` (still being
    produced, so sent chunked as it grows) through an edge whose first upstream (A, behind a
    BreakingProxy) breaks each off mid-body and whose second is B."""
    out = {}
    for kind, n in (("sized", msn), ("chunked", open_msn)):
        target = f"/live/{STREAM}/video/s{n}.m4s"
        cut = len(h.http_request(f"{a.origin}/live/{STREAM}/video/s{msn}.m4s")[2]) // (2 if kind == "sized" else 4)
        proxy = BreakingProxy(a.origin_port, target, cut)
        edge = h.start_edge(module_servers, [proxy.address, f"{h.HOST}:{b.origin_port}"],
                            edge_id=f"edge-resume-{kind}")
        try:
            status, headers, body = h.http_request(f"{edge.edge}{target}", timeout=15)
            m = edge.metrics()
        finally:
            edge.stop()
            proxy.close()
        # Complete by now at both origins (the edge's answer ended with the segment).
        whole = {name: h.http_request(f"{s.origin}{target}")[2] for name, s in (("a", a), ("b", b))}
        out[kind] = {"msn": n, "status": status, "x_cache": headers.get("x-cache"),
                     "encoding": headers.get("transfer-encoding", "length"), "body": body, "whole": whole,
                     "cut": cut, "broken": proxy.broken,
                     "resumes": {r: m.get("streamflex_edge_upstream_resumes_total", result=r)
                                 for r in ("resumed", "differed", "failed")}}
    return out


def listed(s, stream):
    status, body, _ = h.http_get(f"{s.origin}/live/{stream}/video/index.m3u8")
    return h.MediaPlaylist(body) if status == 200 else None


def two_origins(module_servers, module_procs, clip30, work, stream, tee):
    """Two `all` servers live with `stream` from the same clip, each with two complete segments: fed
    by one ffmpeg with the tee muxer, or (tee=False) by one ffmpeg each, started back to back (the
    same file, so the same timestamps and numbering). Returns A, B and the publishers (one, or
    A's and B's)."""
    if not h.loadgen_available():
        pytest.fail("streamflex loadgen is not available in this build")
    a = h.start_all(module_servers)
    b = h.start_all(module_servers)
    if tee:
        outputs = "|".join(f"[f=flv:onfail=ignore]{s.url(s.create_key(stream))}" for s in (a, b))
        publishers = [module_procs.add(h.Proc(["ffmpeg", "-hide_banner", "-nostdin", "-re", "-stream_loop", "-1",
                                               "-i", clip30, "-c", "copy", "-map", "0", "-f", "tee", outputs],
                                              work / "ffmpeg.log"))]
    else:
        publishers = [module_procs.add(h.ffmpeg_publish_looped(clip30, s.url(s.create_key(stream)),
                                                               work / f"ffmpeg-{name}.log"))
                      for name, s in (("a", a), ("b", b))]
    for s in (a, b):
        s.wait_live(stream, 10)
    h.wait_until(lambda: all(listed(s, stream) and len(listed(s, stream).segments) >= 2 for s in (a, b)), 15,
                 "two complete segments on both origins")
    return a, b, publishers


def play_through(module_servers, a, b, stream, work, viewers, after_segments, disrupt, edge_args=(),
                 loadgen_args=(), probe=None):
    """An edge in front of A then B, `viewers` loadgen viewers through it for DURATION s, and
    `disrupt()` once B has `after_segments` more segments. Returns the loadgen summary, the
    edge's metrics before and after, and what `probe(edge)` returned PROBE_AFTER s after the
    disruption."""
    edge = h.start_edge(module_servers, [f"{h.HOST}:{a.origin_port}", f"{h.HOST}:{b.origin_port}"], edge_id="edge",
                        args=list(edge_args))
    out = work / "loadgen.json"
    players = h.start_loadgen(f"{edge.edge}/live/{stream}/master.m3u8", viewers, f"{DURATION}s", out,
                              work / "loadgen.log", loadgen_args)
    start_msn = listed(b, stream).open_msn
    h.wait_until(lambda: listed(b, stream).open_msn >= start_msn + after_segments, after_segments * 2 + 10,
                 f"{after_segments} more segments at B")
    before = edge.metrics()
    disrupt()
    probed = None
    if probe:
        time.sleep(PROBE_AFTER)
        probed = probe(edge)
    summary = h.loadgen_summary(players, out, DURATION + 30)
    return {"summary": summary, "before": before, "after": edge.metrics(), "a_name": f"{h.HOST}:{a.origin_port}",
            "b_name": f"{h.HOST}:{b.origin_port}", "probe": probed}


@pytest.fixture(scope="module")
def failover(module_servers, module_procs, clip30, tmp_path_factory):
    work = tmp_path_factory.mktemp("failover")
    a, b, _ = two_origins(module_servers, module_procs, clip30, work, STREAM, tee=True)
    # Same media time on both: the newest segment complete on both, by number.
    pa, pb = listed(a, STREAM), listed(b, STREAM)
    common = min(pa.segments[-1]["msn"], pb.segments[-1]["msn"])
    same = {}
    for msn in (common - 1, common):
        bodies = [h.http_request(f"{s.origin}/live/{STREAM}/video/s{msn}.p0.m4s")[2] for s in (a, b)]
        same[msn] = [hashlib.sha256(x).hexdigest()[:12] for x in bodies]
    numbering = {"a": [(x["msn"], x["pdt"], len(x["parts"])) for x in pa.segments],
                 "b": [(x["msn"], x["pdt"], len(x["parts"])) for x in pb.segments], "parts": same}
    pl = listed(a, STREAM)
    resume = resume_through_a_break(module_servers, a, b, common, pl.open_msn + 1 if pl.open_parts else pl.open_msn)
    run = play_through(module_servers, a, b, STREAM, work, VIEWERS, KILL_AFTER, lambda: a.stop(signal.SIGKILL))
    yield {"numbering": numbering, "resume": resume, **run}


@pytest.fixture(scope="module")
def hung(module_servers, module_procs, clip30, tmp_path_factory):
    work = tmp_path_factory.mktemp("hung")
    # One ffmpeg per origin: with the tee muxer, the publisher would stop feeding B too once A's
    # socket buffer is full (blocked by the hung origin).
    a, b, _ = two_origins(module_servers, module_procs, clip30, work, HUNG_STREAM, tee=False)
    try:
        yield play_through(module_servers, a, b, HUNG_STREAM, work, HUNG_VIEWERS, STOP_AFTER,
                           lambda: a.proc.send_signal(signal.SIGSTOP),
                           [f"--edge.health_interval={HEALTH_INTERVAL_MS}ms",
                            f"--edge.health_timeout={HEALTH_TIMEOUT_MS}ms"])
    finally:
        a.proc.send_signal(signal.SIGCONT)


def newest_msn(playlist):
    return playlist.segments[-1]["msn"] if playlist and playlist.segments else -1


def ingest_at_a_disrupted(module_servers, module_procs, clip30, work, stream, disrupt, loadgen_args=()):
    """Two origins, one ffmpeg each; `disrupt(A's ffmpeg)` while viewers play through the edge.
    The probe: the newest segment A lists, and the newest a plain reload through the edge lists
    (B's, once the edge moved the stream there)."""
    a, b, (pub_a, _) = two_origins(module_servers, module_procs, clip30, work, stream, tee=False)

    def probe(edge):
        status, body, _ = h.http_get(f"{edge.edge}/live/{stream}/video/index.m3u8")
        return {"a": newest_msn(listed(a, stream)), "edge": newest_msn(h.MediaPlaylist(body) if status == 200 else None)}

    try:
        run = play_through(module_servers, a, b, stream, work, LOST_VIEWERS, STOP_AFTER, lambda: disrupt(pub_a),
                           loadgen_args=loadgen_args, probe=probe)
    finally:
        if pub_a.alive():
            pub_a.proc.send_signal(signal.SIGCONT)
    run["a_healthz"] = h.http_get(f"{a.origin}/healthz")[0]
    return run


@pytest.fixture(scope="module")
def lost(module_servers, module_procs, clip30, tmp_path_factory):
    # A's publisher goes: A answers the stream's blocking reloads at once, marked X-SF-Source: away.
    yield ingest_at_a_disrupted(module_servers, module_procs, clip30, tmp_path_factory.mktemp("lost"), LOST_STREAM,
                                lambda pub: pub.stop(signal.SIGKILL))


@pytest.fixture(scope="module")
def stalled(module_servers, module_procs, clip30, tmp_path_factory):
    # A's publisher stops sending but keeps its connection: the stream is live at A and no part
    # comes, A holds the blocking reloads; the edge asks B too once one is 2 part targets late.
    yield ingest_at_a_disrupted(module_servers, module_procs, clip30, tmp_path_factory.mktemp("stalled"),
                                STALLED_STREAM, lambda pub: pub.proc.send_signal(signal.SIGSTOP))


@pytest.fixture(scope="module")
def polled(module_servers, module_procs, clip30, tmp_path_factory):
    # The same stall with players that poll (no blocking reload to be late). A's plain reloads
    # come back unchanged, then marked X-SF-Source: away once A has had no part for three part
    # targets (1.5 s).
    yield ingest_at_a_disrupted(module_servers, module_procs, clip30, tmp_path_factory.mktemp("polled"),
                                POLLED_STREAM, lambda pub: pub.proc.send_signal(signal.SIGSTOP),
                                ["--mode", "poll"])


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


@pytest.mark.parametrize("kind", ["sized", "chunked"])
def test_body_broken_off_mid_transfer_by_a_is_finished_from_b(failover, kind):
    r = failover["resume"][kind]
    print(f"s{r['msn']} ({r['encoding']}) of {len(r['whole']['a'])} bytes, A's answer cut after {r['cut']} bytes; "
          f"viewer got {len(r['body'])} bytes ({r['x_cache']}); resumes {r['resumes']}")
    assert r["whole"]["a"] == r["whole"]["b"], "A and B package the same segment differently"
    assert len(r["whole"]["a"]) > 32 * 1024, "too small for the edge to stream it to its viewer"
    assert r["broken"] == 1, "the proxy never cut A's answer"
    assert r["status"] == 200 and r["x_cache"] == "MISS"
    assert r["encoding"] == ("chunked" if kind == "chunked" else "length")
    assert r["body"] == r["whole"]["b"], "the viewer's body is not the segment"
    assert r["resumes"] == {"resumed": 1, "differed": 0, "failed": 0}


def moved_to_b(run, what):
    before, after = run["before"], run["after"]
    up = "streamflex_edge_upstream_requests_total"
    a_ok = before.get(up, upstream=run["a_name"], result="ok")
    a_failed = after.get(up, upstream=run["a_name"], result="failed")
    b_ok_after = after.get(up, upstream=run["b_name"], result="ok") - before.get(up, upstream=run["b_name"], result="ok")
    print(f"edge -> A before the {what}: {a_ok:.0f} ok; after: {a_failed:.0f} failed; "
          f"edge -> B after the {what}: {b_ok_after:.0f} ok")
    assert a_ok > 0, f"the edge was not using A before the {what}"
    assert a_failed >= 1, "no request to A ended: the edge never gave up on it"
    assert b_ok_after > 0


def played_on(s, viewers, stall_per_viewer):
    """No viewer failed or saw an error; stalls add up to at most `stall_per_viewer` s per stalled viewer."""
    print(json.dumps({k: s[k] for k in ("viewers", "requests", "downloads", "stalls", "errors", "part_age")}))
    assert s["_exit"] == 0
    assert s["viewers"]["started"] == viewers and s["viewers"]["failed"] == 0, s["viewers"]
    assert s["error_count"] == 0, s["errors"]
    stalls = s["stalls"]
    assert stalls["seconds"] <= stall_per_viewer * stalls["viewers"], stalls


def test_edge_failed_over_to_b_when_a_was_killed(failover):
    moved_to_b(failover, "kill")


def test_viewers_play_through_the_kill_without_error_or_stall(failover):
    # No stall at all, or at most one part's worth per stalled viewer.
    played_on(failover["summary"], VIEWERS, PT)


def test_edge_moved_to_b_when_a_hung(hung):
    moved_to_b(hung, "stop")


def test_viewers_play_through_a_hung_origin_without_error_and_with_at_most_a_short_stall(hung):
    # A hang is noticed within one probe interval plus the probe's deadline (the viewers' buffer
    # covers part of that), and B answers at once: no viewer stalls longer than that detection time
    # and half a second of scheduling. Measured: none at all. Before the probe's
    # abort each viewer stalled 11.3 s and had a timeout and a gap: the blocking reloads held at A
    # ran to 13 s.
    played_on(hung["summary"], HUNG_VIEWERS, (HEALTH_INTERVAL_MS + HEALTH_TIMEOUT_MS) / 1000 + 0.5)


def moved_stream_to_b(run, what):
    before, after = run["before"], run["after"]
    up = "streamflex_edge_upstream_requests_total"
    b_ok_after = after.get(up, upstream=run["b_name"], result="ok") - before.get(up, upstream=run["b_name"], result="ok")
    a_failed = after.get(up, upstream=run["a_name"], result="failed")
    hedged = {by: after.get("streamflex_edge_hedged_requests_total", served_by=by) for by in ("first", "next")}
    print(f"A /healthz after the {what}: {run['a_healthz']}; edge -> B after it: {b_ok_after:.0f} ok; "
          f"edge -> A failed: {a_failed:.0f}; hedged blocking reloads served by {hedged}; "
          f"{PROBE_AFTER} s after it, newest segment at A / through the edge: {run['probe']}")
    assert run["a_healthz"] == 200, "A itself should still be up: only one stream's ingest there was disrupted"
    assert b_ok_after > 0, "the edge never asked B for the stream"
    assert run["probe"]["edge"] > run["probe"]["a"], \
        f"{PROBE_AFTER} s after the {what}, a plain reload through the edge still got A's playlist"
    assert a_failed == 0, "A answered nothing wrong: it should not have been marked down"
    return hedged


def test_edge_moved_the_stream_to_b_when_its_ingest_at_a_was_lost_and_kept_a_up(lost):
    moved_stream_to_b(lost, "loss")


def test_viewers_play_through_the_loss_of_the_ingest_at_a_without_error_or_stall(lost):
    # A is up and answers everything else; only this stream's publisher left there. Its answers
    # say so, and the edge asks B at once.
    played_on(lost["summary"], LOST_VIEWERS, PT)


def test_edge_asked_b_when_blocking_reloads_at_a_were_late_and_kept_a_up(stalled):
    hedged = moved_stream_to_b(stalled, "stall")
    assert hedged["next"] >= 1, "no late blocking reload to A was answered by B"


def test_viewers_play_through_a_stalled_ingest_at_a_with_at_most_a_short_stall(stalled):
    # Nothing tells the edge the stream stalled at A but the lateness of A's answer: 2 part
    # targets (1 s) after a part was due, and the viewers' buffer covers part of that.
    played_on(stalled["summary"], LOST_VIEWERS, 2 * PT + 0.5)


def test_edge_moved_the_stream_to_b_when_its_ingest_at_a_stalled_under_polling_players(polled):
    hedged = moved_stream_to_b(polled, "stall")
    assert hedged == {"first": 0, "next": 0}, "polling players make no blocking reload to hedge"


def test_polling_players_play_through_a_stalled_ingest_at_a_without_error_or_stall(polled):
    # They hold three target durations (6 s); A's playlists are marked away after 1.5 s without a
    # part, and the edge asks B when the one it has (max-age 1 s) runs out. Measured: no stall;
    # 7.8 s of stall per viewer when A's plain reloads were not marked.
    played_on(polled["summary"], LOST_VIEWERS, PT)
