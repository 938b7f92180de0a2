"""A publisher that drops and comes back (same key) continues the stream at the origin.

ffmpeg publishes a 10 s clip (-re -c copy) and exits; 3 s later a second ffmpeg publishes a 30 s
clip with the same key. hls.js (the origin's player page in headless Chromium) starts before
the drop and plays through it; the test reloads the video playlist every 200 ms meanwhile. The
playlist must carry on (media sequence numbers keep growing, EXT-X-DISCONTINUITY before the first
segment of the new publish, the same init unless the codec configuration changed) and the player
must carry on after the discontinuity without a fatal error.

dash.js (tests/browser/play.mjs, dash mode) plays the MPD the same way across a republish with the
same configuration (after AWAY_SECONDS) and with a new resolution (at once): the MPD gets a new
Period, and dash.js must switch to it and keep playing at the new size.

A publish whose timestamps jump forward and back (by more than ingest.max_timestamp_jump) goes on
from where it was and, by default, starts a discontinuity as a republish does: EXT-X-DISCONTINUITY
with a new init segment and a new DASH Period; hls.js and dash.js play on across it and ffmpeg
-xerror decodes every frame, also through a transcoded ladder (every rung at the same segment).
With --ingest.timestamp_jump=rebase the media goes on and nothing is signalled (one Period).
"""
import datetime
import json
import re
import socket
import threading
import time
import types
import xml.etree.ElementTree as ET

import pytest

import sfapi
import sfharness as h

PLAY_SECONDS = 24
AWAY_SECONDS = 3  # between the first publisher leaving and the second connecting (an encoder restart)


@pytest.fixture(scope="module")
def reconnect(module_servers, module_procs, clip10, clip30, browser_deps, tmp_path_factory):
    srv = h.start_origin(module_servers)
    key = srv.create_key("rc")
    work = tmp_path_factory.mktemp("reconnect")
    art = h.artifact_dir("origin-reconnect")
    print(f"\nreconnect artifacts (screenshot, browser log): {art}")
    r = types.SimpleNamespace(srv=srv, versions=[], errors=[], play=None, dropped_at=None, back_at=None,
                              first_part_after=None, inits={})
    base = f"{srv.origin}/live/rc/video/"

    first = module_procs.add(h.ffmpeg_publish(clip10, srv.url(key), work / "first.log"))

    def has_segment():
        status, body, _ = h.http_get(base + "index.m3u8")
        return status == 200 and "#EXTINF" in body

    h.wait_until(has_segment, 15, "a complete segment from the first publish")

    player_out = {}

    def play():
        player_out["result"] = h.run_node_json("play.mjs", ["hls", f"{srv.origin}/?stream=rc", PLAY_SECONDS, art],
                                               timeout=PLAY_SECONDS + 60, artifacts=art)

    player = threading.Thread(target=play, daemon=True)
    player.start()

    second = None
    deadline = time.monotonic() + PLAY_SECONDS + 30
    for _ in range(10000):
        if time.monotonic() > deadline or not player.is_alive():
            break
        status, body, _ = h.http_get(base + "index.m3u8")
        now = time.time()
        if status == 200 and (not r.versions or r.versions[-1][1] != body):
            r.versions.append((now, body))
        if r.dropped_at is None and not first.alive():
            r.dropped_at = now
        if second is None and r.dropped_at and now >= r.dropped_at + AWAY_SECONDS:
            second = module_procs.add(h.ffmpeg_publish(clip30, srv.url(key), work / "second.log"))
            r.back_at = time.time()
        if second is not None and r.first_part_after is None and "#EXT-X-DISCONTINUITY" in body:
            r.first_part_after = now
        time.sleep(0.2)
    player.join(PLAY_SECONDS + 60)
    r.play = player_out.get("result")
    pl = h.MediaPlaylist(r.versions[-1][1]) if r.versions else None
    for s in (pl.segments if pl else []):
        if s["map"] and s["map"] not in r.inits:
            r.inits[s["map"]] = h.http_request(base + s["map"])[2]
    r.first_rc = first.proc.returncode
    if second is not None:
        second.stop()
    return r


def playlists(r):
    assert r.versions, "no playlist seen"
    assert r.dropped_at, "the first publisher never finished"
    return [(t, h.MediaPlaylist(body)) for t, body in r.versions]


def test_first_publisher_finished_and_second_started(reconnect):
    assert reconnect.first_rc == 0
    assert reconnect.dropped_at and reconnect.back_at
    assert AWAY_SECONDS <= reconnect.back_at - reconnect.dropped_at < AWAY_SECONDS + 1.0


def test_playlist_continues_with_discontinuity(reconnect):
    seen = playlists(reconnect)
    with_disc = [(t, pl) for t, pl in seen if any(s["discontinuity"] for s in pl.segments)]
    assert with_disc, "no EXT-X-DISCONTINUITY in any playlist version after the reconnect"
    _, pl = with_disc[-1]
    i = next(i for i, s in enumerate(pl.segments) if s["discontinuity"])
    assert i > 0, "the discontinuity segment should follow segments of the first publish"
    before, after = pl.segments[i - 1], pl.segments[i]
    print(f"\ndiscontinuity: {before['uri']} ({before['map']}) -> {after['uri']} ({after['map']}), listed "
          f"{with_disc[0][0] - reconnect.back_at:.1f} s after the second publisher started")
    assert after["msn"] == before["msn"] + 1
    # The new publish keeps growing the same sequence.
    last = seen[-1][1]
    assert last.segments[-1]["msn"] > after["msn"], "the stream did not grow after the reconnect"


def test_media_sequence_never_decreases_across_reconnect(reconnect):
    seen = playlists(reconnect)
    seqs = [pl.media_sequence for _, pl in seen]
    lasts = [pl.segments[-1]["msn"] if pl.segments else -1 for _, pl in seen]
    assert h.is_non_decreasing(seqs), seqs
    assert h.is_non_decreasing(lasts), lasts


def test_program_date_time_moves_forward_across_reconnect(reconnect):
    seen = playlists(reconnect)
    _, pl = seen[-1]
    pdts = [s["pdt"] for s in pl.segments]
    assert all(pdts) and pdts == sorted(pdts), pdts


def test_init_after_reconnect_is_new_only_if_configuration_changed(reconnect):
    seen = playlists(reconnect)
    _, pl = seen[-1]
    maps = [s["map"] for s in pl.segments]
    assert all(maps), pl.text
    for a, b in zip(pl.segments, pl.segments[1:]):
        if b["map"] != a["map"]:
            assert b["discontinuity"], f"{b['uri']}: new EXT-X-MAP without EXT-X-DISCONTINUITY"
            assert reconnect.inits.get(a["map"]) != reconnect.inits.get(b["map"]), \
                f"{b['map']} announced but identical to {a['map']}"


def test_hls_js_plays_through_the_reconnect(reconnect, capsys):
    res = reconnect.play
    assert res and not res.get("error"), res and res.get("error")
    samples = res["samples"]
    final = samples[-1]
    with capsys.disabled():
        print(f"\n[origin-reconnect] hls.js across the reconnect: frames {final['framesDecoded']}, "
              f"stalls {final['stalls']}, latency {final['latency']}, errors {final['errors'][-5:]}, "
              f"screenshot {res.get('screenshot')}")
    assert not final["fatalErrors"], final["fatalErrors"]
    assert not res["pageErrors"], res["pageErrors"]
    back = reconnect.back_at * 1000
    after = [s for s in samples if s["t"] > back + 6000]
    at_back = [s for s in samples if s["t"] <= back]
    assert at_back and after, "the player did not run across the reconnect"
    # More than 5 s of frames decoded after the new publish started, and still advancing.
    assert after[-1]["framesDecoded"] - at_back[-1]["framesDecoded"] >= 150, \
        [(s["t"] - back, s["framesDecoded"], s["currentTime"]) for s in samples]
    assert after[-1]["currentTime"] > at_back[-1]["currentTime"] + 5, \
        [(s["t"] - back, s["currentTime"]) for s in samples]


def test_player_does_not_hammer_the_origin_while_the_publisher_is_away(reconnect):
    res = reconnect.play
    assert res, "no player result"
    times = res["requests"].get("playlist", {}).get("times", [])
    lo, hi = reconnect.dropped_at * 1000 - 500, (reconnect.first_part_after or reconnect.back_at) * 1000
    gap = [t for t in times if lo <= t <= hi]
    rate = len(gap) / max(0.5, (hi - lo) / 1000)
    print(f"\nplaylist requests while the publisher was away: {len(gap)} in {(hi - lo) / 1000:.1f} s")
    # Blocking reloads hold; a player reloading a stalled live playlist needs a few per second at most.
    assert rate <= 10, f"{len(gap)} playlist requests in {(hi - lo) / 1000:.1f} s"


@pytest.fixture(scope="module")
def resized(module_servers, module_procs, clip8, tmp_path_factory):
    """The publisher comes back at 640x360 (a new H.264 configuration): playlist versions seen."""
    small = h.encode_clip_variant(8)
    srv = h.start_origin(module_servers)
    key = srv.create_key("rs")
    work = tmp_path_factory.mktemp("resized")
    base = f"{srv.origin}/live/rs/"
    first = module_procs.add(h.ffmpeg_publish(clip8, srv.url(key), work / "first.log"))
    first.wait(30)
    second = module_procs.add(h.ffmpeg_publish(small, srv.url(key), work / "second.log"))

    def new_media_listed():
        status, body, _ = h.http_get(base + "video/index.m3u8")
        pl = h.MediaPlaylist(body) if status == 200 else None
        if not pl:
            return None
        disc = [i for i, s in enumerate(pl.segments) if s["discontinuity"]]
        return pl if disc and len(pl.segments) > disc[-1] + 1 else None

    pl = h.wait_until(new_media_listed, 20, "two segments of the second publish listed")
    r = types.SimpleNamespace(pl=pl, inits={}, master=h.http_get(base + "master.m3u8")[1], work=work)
    for s in pl.segments:
        if s["map"] not in r.inits:
            r.inits[s["map"]] = h.http_request(base + "video/" + s["map"])[2]
    disc = next(s for s in pl.segments if s["discontinuity"])
    r.first_after = h.http_request(base + "video/" + disc["uri"])[2]
    second.stop()
    return r


def test_new_codec_configuration_after_reconnect_gets_new_init(resized):
    segs = resized.pl.segments
    i = next(i for i, s in enumerate(segs) if s["discontinuity"])
    before, after = segs[i - 1], segs[i]
    assert before["map"] != after["map"], f"same EXT-X-MAP across a resolution change:\n{resized.pl.text}"
    assert resized.inits[before["map"]] != resized.inits[after["map"]]
    # The new init with the first new segment decodes at the new size.
    path = resized.work / "after.mp4"
    path.write_bytes(resized.inits[after["map"]] + resized.first_after)
    v = h.probe_streams(path)["video"]
    assert (v["width"], v["height"]) == (640, 360), v


# ---- dash.js across a new Period ---------------------------------------------------------------

DASH_PLAY_SECONDS = 30
NS = {"d": "urn:mpeg:dash:schema:mpd:2011"}


def timeline_end(tpl):
    """Seconds from its Period's start to the end of a SegmentTemplate element's last segment;
    None without a timeline or when it goes on (@r="-1")."""
    timeline = tpl.find("d:SegmentTimeline", NS) if tpl is not None else None
    if timeline is None:
        return None
    t = 0
    for s in timeline.findall("d:S", NS):
        t = int(s.get("t", t))
        r = int(s.get("r", 0))
        if r < 0:
            return None
        t += int(s.get("d")) * (r + 1)
    return (t - int(tpl.get("presentationTimeOffset", 0))) / int(tpl.get("timescale"))


def parse_mpd(text):
    """The MPD's root attributes and, per Period, its id, start (s) and the video Representations'
    (id, width, height) with the SegmentTemplate that applies to them and where its timeline ends
    (s after the Period's start; None while it goes on)."""
    root = ET.fromstring(text)

    def seconds(v):
        m = re.fullmatch(r"PT(?:(\d+)H)?(?:(\d+)M)?(?:([\d.]+)S)?", v or "")
        assert m, f"not a duration: {v!r}"
        return int(m[1] or 0) * 3600 + int(m[2] or 0) * 60 + float(m[3] or 0)

    periods = []
    for p in root.findall("d:Period", NS):
        video = []
        for a in p.findall("d:AdaptationSet", NS):
            if a.get("contentType") != "video":
                continue
            for rep in a.findall("d:Representation", NS):
                tpl = rep.find("d:SegmentTemplate", NS)
                tpl = tpl if tpl is not None else a.find("d:SegmentTemplate", NS)
                video.append({"id": rep.get("id"), "width": int(rep.get("width", 0)),
                              "height": int(rep.get("height", 0)), "template": dict(tpl.attrib) if tpl is not None
                              else None, "end": timeline_end(tpl)})
        periods.append({"id": p.get("id"), "start": seconds(p.get("start")), "video": video})
    return {"ast": root.get("availabilityStartTime"), "publishTime": root.get("publishTime"), "periods": periods}


def start_dash_js(mpd_url, art, seconds=DASH_PLAY_SECONDS, defaults=False):
    """play.mjs in dash mode for `seconds` on a thread (tuned for low latency, or with dash.js's
    own settings); its report lands in out["result"]."""
    out = {}

    def play():
        out["result"] = h.run_node_json("play.mjs", ["dash", mpd_url, seconds, art], timeout=seconds + 60,
                                        artifacts=art, env={"SF_DASH_DEFAULTS": "1"} if defaults else None)

    player = threading.Thread(target=play, daemon=True)
    player.start()
    return player, out


def keep(art, r):
    """The player's report and every MPD version seen, for a person to read after the run."""
    (art / "play.json").write_text(json.dumps(r.play, indent=1))
    (art / "mpds.txt").write_text("".join(f"---- {t:.3f}\n{body}" for t, body in r.versions))


def republish_under_dash_js(srv, procs, first_clip, second_clip, stream, away, work, art, key=None,
                            dash_defaults=False):
    """Publishes first_clip, starts dash.js on the MPD, and once the first publisher has finished
    and `away` seconds passed publishes second_clip with the same key. The MPD is fetched every
    200 ms meanwhile; returns the player's report, the MPD versions and the times of the drop and
    the return. The second publisher is left running, its clip looped, for the module's later tests."""
    key = key or srv.create_key(stream)
    mpd_url = f"{srv.origin}/live/{stream}/manifest.mpd"
    r = types.SimpleNamespace(versions=[], play=None, dropped_at=None, back_at=None, second=None, mpd_url=mpd_url)
    first = procs.add(h.ffmpeg_publish(first_clip, srv.url(key), work / f"{stream}-first.log"))

    def has_segment():
        status, body, _ = h.http_get(f"{srv.origin}/live/{stream}/video/index.m3u8")
        return status == 200 and "#EXTINF" in body

    h.wait_until(has_segment, 15, f"{stream}: a complete segment from the first publish")
    player, out = start_dash_js(mpd_url, art, defaults=dash_defaults)
    deadline = time.monotonic() + DASH_PLAY_SECONDS + 30
    for _ in range(10000):
        if time.monotonic() > deadline or not player.is_alive():
            break
        status, body, _ = h.http_get(mpd_url)
        now = time.time()
        if status == 200 and (not r.versions or r.versions[-1][1] != body):
            r.versions.append((now, body))
        if r.dropped_at is None and not first.alive():
            r.dropped_at = now
        if r.second is None and r.dropped_at and now >= r.dropped_at + away:
            r.second = procs.add(h.ffmpeg_publish_looped(second_clip, srv.url(key), work / f"{stream}-second.log"))
            r.back_at = time.time()
        time.sleep(0.2)
    player.join(DASH_PLAY_SECONDS + 60)
    r.play = out.get("result")
    keep(art, r)
    return r


@pytest.fixture(scope="module")
def dash_reconnect(module_servers, module_procs, clip10, clip30, browser_deps, tmp_path_factory):
    """dash.js on the MPD while the publisher drops and comes back AWAY_SECONDS later with the same
    configuration (a new Period, the same init)."""
    srv = h.start_origin(module_servers)
    art = h.artifact_dir("origin-reconnect-dash")
    print(f"\ndash.js reconnect artifacts: {art}")
    r = republish_under_dash_js(srv, module_procs, clip10, clip30, "drc", AWAY_SECONDS,
                                tmp_path_factory.mktemp("dash-reconnect"), art)
    r.width = 1280
    r.away = AWAY_SECONDS
    return r


@pytest.fixture(scope="module")
def dash_resized(module_servers, module_procs, clip10, browser_deps, tmp_path_factory):
    """dash.js on the MPD while the publisher (1280x720) comes back at once at 640x360: a new
    Period with a new init segment."""
    small = h.encode_clip_variant(30)
    srv = h.start_origin(module_servers)
    art = h.artifact_dir("origin-resized-dash")
    print(f"\ndash.js resized artifacts: {art}")
    r = republish_under_dash_js(srv, module_procs, clip10, small, "drs", 0, tmp_path_factory.mktemp("dash-resized"),
                                art)
    r.width = 640
    r.away = 0
    return r


@pytest.fixture(scope="module")
def dash_resized_standard(module_servers, module_procs, clip10, browser_deps, tmp_path_factory):
    """As dash_resized, on a standard-latency stream (latency "hls": an MPD without
    availabilityTimeOffset, so a gap between the Periods cannot be closed)."""
    small = h.encode_clip_variant(30)
    srv = h.start_origin(module_servers)
    created = sfapi.Api(srv).create_stream("dst", latency="hls", profile="passthrough")
    art = h.artifact_dir("origin-resized-dash-standard")
    print(f"\ndash.js resized (standard latency) artifacts: {art}")
    r = republish_under_dash_js(srv, module_procs, clip10, small, "dst", 0,
                                tmp_path_factory.mktemp("dash-resized-standard"), art, key=created["key"]["key"], dash_defaults=True)
    r.width = 640
    r.away = 0
    r.low_latency = False
    return r


DASH_RUNS = {"same configuration": "dash_reconnect", "new resolution": "dash_resized",
             "standard latency, new resolution": "dash_resized_standard"}


@pytest.fixture(params=list(DASH_RUNS))
def dash_run(request):
    r = request.getfixturevalue(DASH_RUNS[request.param])
    r.low_latency = getattr(r, "low_latency", True)
    return r


def test_mpd_starts_a_new_period_at_the_republish(dash_run):
    r = dash_run
    assert r.back_at, "the second publisher never started"
    mpds = [(t, parse_mpd(body)) for t, body in r.versions]
    assert len({m["ast"] for _, m in mpds}) == 1, "availabilityStartTime changed while the stream ran"
    assert h.is_non_decreasing([m["publishTime"] for _, m in mpds])
    two = [m for t, m in mpds if len(m["periods"]) >= 2]
    assert two, f"no MPD with two Periods after the republish; last:\n{r.versions[-1][1]}"
    old, new = two[-1]["periods"][-2:]
    assert old["id"] != new["id"]
    # The new Period starts after the old one's media (and, after a pause, after the pause).
    assert new["start"] > old["start"], (old, new)
    assert old["video"] and new["video"], two[-1]
    assert [v["width"] for v in new["video"]] == [r.width], new
    assert old["video"][0]["template"] and new["video"][0]["template"]
    if r.width != old["video"][0]["width"]:
        assert new["video"][0]["template"]["initialization"] != old["video"][0]["template"]["initialization"]
    # Segment numbers carry on: the new Period's first is after the old Period's.
    assert int(new["video"][0]["template"]["startNumber"]) > int(old["video"][0]["template"]["startNumber"])


def check_plays_past(res, since_ms, width, what):
    """dash.js ran without a fatal error, played several seconds past `since_ms` (wall clock), is
    still advancing at the end, and shows pictures `width` wide; returns the samples as a trace."""
    samples = res["samples"]
    final = samples[-1]
    before = [s for s in samples if s["t"] <= since_ms]
    after = [s for s in samples if s["t"] > since_ms]
    trace = [(round((s["t"] - since_ms) / 1000, 1), s["currentTime"], s["framesDecoded"], s["videoWidth"])
             for s in samples]
    assert not final["fatalErrors"], (final["fatalErrors"], res["failed"][:10])
    assert not res["pageErrors"], res["pageErrors"]
    assert before and len(after) >= 5, f"the player did not run for 5 s after {what}: {trace}"
    # Several seconds played after it, and still advancing at the end.
    assert after[-1]["currentTime"] > before[-1]["currentTime"] + 4, trace
    assert after[-1]["framesDecoded"] - before[-1]["framesDecoded"] >= 120, trace
    recent = samples[-4:]
    assert recent[-1]["framesDecoded"] - recent[0]["framesDecoded"] >= 45, trace
    assert after[-1]["videoWidth"] == width, trace


def period_gap(r):
    """Seconds between the end of the old Period's video and the start of the new Period on the
    MPD's timeline, in the last MPD that lists both (the old one complete), and the old Period's
    availabilityTimeOffset; (None, None) if there was none."""
    for _, body in reversed(r.versions):
        periods = parse_mpd(body)["periods"]
        if len(periods) >= 2 and periods[-2]["video"] and periods[-2]["video"][0]["end"] is not None:
            old, new = periods[-2:]
            ato = float(old["video"][0]["template"].get("availabilityTimeOffset", 0))
            return new["start"] - (old["start"] + old["video"][0]["end"]), ato
    return None, None


def longest_freeze(res, since_s):
    """The longest span (s) in which dash.js's video did not advance while playing, of those that
    began after `since_s` (wall clock; play.mjs polls every 50 ms), and where it began."""
    freezes = [f for f in res["samples"][-1].get("freezes", []) if f["t"] >= since_s * 1000]
    if not freezes:
        return 0.0, None
    worst = max(freezes, key=lambda f: f["ms"])
    return worst["ms"] / 1000, worst["currentTime"]


def report(capsys, res, what, since_s):
    final = res["samples"][-1]
    playing = [s for s in res["samples"] if s["playing"] and s["latency"] is not None]
    latencies = sorted(s["latency"] for s in playing[-10:])
    with capsys.disabled():
        print(f"\n[origin-reconnect] dash.js {what}: period switches "
              f"{[(round(s['t'] / 1000 - since_s, 1), s['to']) for s in final['periodSwitches']]} "
              f"(s after it), frames {final['framesDecoded']}, stalls {final['stalls']}, "
              f"latency (median of the last 10 samples) {latencies[len(latencies) // 2] if latencies else None} s, "
              f"size {final['videoWidth']}x{final['videoHeight']}, errors {final['errors'][-5:]}, "
              f"failed requests {res['failed'][:5]}, screenshot {res.get('screenshot')}")


def test_dash_js_plays_into_the_new_period(dash_run, capsys):
    r = dash_run
    res = r.play
    assert res and not res.get("error"), res and (res.get("error"), res.get("_stderr"))
    assert res["samples"], res
    report(capsys, res, f"across a republish (to {r.width} wide)", r.back_at)
    switches = res["samples"][-1]["periodSwitches"]
    assert switches, f"dash.js never switched Period: {[(s['t'], s['currentTime']) for s in res['samples']]}"
    check_plays_past(res, switches[-1]["t"], r.width, "the Period switch")


# A publisher that reconnects at once leaves a gap of a few hundred ms between the Periods' media;
# dash.js waited it out as a stall of 1.6-1.9 s (its gap controller's stall detection; the old
# Period's video, its Representation rewritten with the new size, never finished buffering). The
# origin now starts a Period whose gap is shorter than availabilityTimeOffset where the old one's
# video ends, so there is nothing to wait for: half a second (one part) is the bound. A longer gap
# (a publisher away for seconds, or one slow to come back) stays and the player waits it out,
# keeping its latency: the bound is the gap and one MPD refresh (dash.js learns of the new Period
# at its next refresh of the MPD, minimumUpdatePeriod 2 s, and goes on from the live edge once its
# latency passes the ServiceDescription's maximum).
MAX_FREEZE_CLOSED = 0.5
MPD_REFRESH = 2.0


def test_dash_js_does_not_stall_at_the_period_boundary(dash_run, capsys):
    r = dash_run
    res = r.play
    assert res and not res.get("error") and res["samples"], res and (res.get("error"), res.get("_stderr"))
    assert r.dropped_at, "the first publisher never finished"
    gap, ato = period_gap(r)
    assert gap is not None, f"no MPD listed the old Period complete beside the new one; last:\n{r.versions[-1][1]}"
    freeze, at = longest_freeze(res, r.dropped_at - 1)
    with capsys.disabled():
        print(f"\n[origin-reconnect] dash.js across a republish after {r.away} s away (to {r.width} wide): "
              f"longest freeze {freeze:.3f} s at {at}, gap between the Periods on the MPD timeline {gap:.3f} s, "
              f"stalls {res['samples'][-1]['stalls']}")
    if r.low_latency:
        assert ato > 0, "a low-latency stream's MPD without availabilityTimeOffset"
    else:
        assert ato == 0, "a standard-latency stream's MPD with availabilityTimeOffset"
    if r.away > 0:
        assert gap >= r.away - 0.2, f"a publisher away {r.away} s left a gap of {gap:.3f} s on the MPD timeline"
    if abs(gap) < 0.002:  # closed: the new Period starts where the old one's video ends
        # Standard latency lists the new Period's first segment only once it is complete: dash.js
        # learns of it at an MPD refresh (1.8-2.1 s freezes seen; with the gap left open, dash.js
        # stopped for good at the old Period's last segment in 2 of 8 runs).
        bound = MAX_FREEZE_CLOSED if r.low_latency else MPD_REFRESH + MAX_FREEZE_CLOSED
        assert freeze <= bound, (freeze, at, res["samples"][-1]["freezes"])
    else:
        if r.low_latency:
            assert gap >= ato, f"a gap of {gap:.3f} s, shorter than availabilityTimeOffset {ato} s, was not closed"
        assert freeze <= gap + MPD_REFRESH, (freeze, at, gap, res["samples"][-1]["freezes"])
    # It plays on after the boundary, at the new size.
    check_plays_past(res, (r.dropped_at + r.away + 4) * 1000, r.width, "the Period boundary")


def test_old_period_leaves_the_mpd_with_the_window(dash_run):
    r = dash_run

    def one_period():
        status, body, _ = h.http_get(r.mpd_url)
        return status == 200 and len(parse_mpd(body)["periods"]) == 1 and body

    body = h.wait_until(one_period, 20, "the first publish's Period out of the window")
    assert [v["width"] for v in parse_mpd(body)["periods"][0]["video"]] == [r.width]


# ---- a timestamp jump within one publish ------------------------------------------------------

JUMP_AT_MS = 8000  # media time of the first tag sent with jumped timestamps
# The 30 s clip is sent once: the player stops a few seconds before its end, so "still advancing
# at the end" is about the player, not the clip running out.
JUMP_PLAY_SECONDS = 22
JUMP_READ_SECONDS = 14  # ffmpeg -xerror reads the live HLS this long, from before the jump to after it


def send_with_jump(srv, stream, clip, jump, r):
    """Sends the clip's FLV tags as `stream` in real time (paced by their own timestamps), each tag
    from JUMP_AT_MS on shifted by `jump` ms, until the clip ends or r.done is set; r.jumped_at is
    the wall clock of the first shifted tag, r.errors what went wrong. Returns the thread."""
    key = srv.create_key(stream)
    tags = [t for t in h.flv_tags(clip) if t[0] in (8, 9)]
    pub = h.TagPublisher(srv.rtmp_port, key)
    pub.client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send():
        try:
            t0 = time.monotonic()
            for ttype, ts, body in tags:
                if r.done.is_set():
                    break
                wait = t0 + ts / 1000 - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                if ts >= JUMP_AT_MS:
                    if r.jumped_at is None:
                        r.jumped_at = time.time()
                    ts += jump
                pub.send([(ttype, ts, body)])
        except Exception as e:  # reported by the tests
            r.errors.append(repr(e))
        finally:
            pub.close()

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    return sender


def read_hls(url, seconds, out):
    """ffmpeg -xerror reads `seconds` of the live playlist at `url` on a thread; its
    CompletedProcess lands in out["read"]."""
    def read():
        out["read"] = h.run(["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-xerror", "-i", url, "-t",
                             str(seconds), "-f", "null", "-progress", "pipe:1", "-"], timeout=seconds + 60)

    t = threading.Thread(target=read, daemon=True)
    t.start()
    return t


def jump_run(srv, stream, clip, jump, art, renditions=("video",), players=True, watch_seconds=JUMP_PLAY_SECONDS):
    """Publishes `clip` with a timestamp jump of `jump` ms while ffmpeg -xerror reads the HLS (and,
    with `players`, hls.js and dash.js play); the MPD and the media playlists of `renditions` are
    fetched every 200 ms meanwhile. Yields nothing: returns the namespace, the sender still
    running (set r.done and join r.sender when finished)."""
    base = f"{srv.origin}/live/{stream}/"
    r = types.SimpleNamespace(versions=[], playlists={n: [] for n in renditions}, play=None, hls_play=None,
                              read=None, jumped_at=None, errors=[], done=threading.Event(), jump=jump,
                              mpd_url=base + "manifest.mpd", srv=srv, stream=stream, base=base)
    r.sender = send_with_jump(srv, stream, clip, jump, r)

    def has_segment():
        status, body, _ = h.http_get(f"{base}{renditions[0]}/index.m3u8")
        return status == 200 and "#EXTINF" in body

    h.wait_until(has_segment, 20, f"{stream}: a complete segment")
    out = {}
    threads = [read_hls(base + "master.m3u8", JUMP_READ_SECONDS, out)]
    if players:
        dash, dash_out = start_dash_js(r.mpd_url, art / "dash", JUMP_PLAY_SECONDS)
        hls_out = {}

        def play_hls():
            hls_out["result"] = h.run_node_json("play.mjs", ["hls", f"{srv.origin}/?stream={stream}", JUMP_PLAY_SECONDS,
                                                             art / "hls"], timeout=JUMP_PLAY_SECONDS + 60,
                                                artifacts=art / "hls")

        hls = threading.Thread(target=play_hls, daemon=True)
        hls.start()
        threads += [dash, hls]
    deadline = time.monotonic() + watch_seconds + 30
    for _ in range(10000):
        if time.monotonic() > deadline or not any(t.is_alive() for t in threads):
            break
        status, body, _ = h.http_get(r.mpd_url)
        if status == 200 and (not r.versions or r.versions[-1][1] != body):
            r.versions.append((time.time(), body))
        for n in renditions:
            status, body, _ = h.http_get(f"{base}{n}/index.m3u8")
            if status == 200:
                r.playlists[n].append(body)
        time.sleep(0.2)
    for t in threads:
        t.join(JUMP_PLAY_SECONDS + 60)
    r.read = out.get("read")
    if players:
        r.play = dash_out.get("result")
        r.hls_play = hls_out.get("result")
    keep(art, r)
    return r


@pytest.fixture(scope="module", params=[30000, -8000], ids=["forward 30 s", "back 8 s"])
def jumped(request, module_servers, module_procs, clip30, browser_deps, tmp_path_factory):
    """One publish whose FLV timestamps jump by the param (ms) at JUMP_AT_MS of media, sent in real
    time, while dash.js and hls.js play and ffmpeg reads the HLS (default: a discontinuity)."""
    srv = h.start_origin(module_servers)
    stream = "djf" if request.param > 0 else "djb"
    art = h.artifact_dir(f"origin-jump-{stream}")
    print(f"\ntimestamp jump artifacts: {art}")
    (art / "dash").mkdir(parents=True, exist_ok=True)
    (art / "hls").mkdir(parents=True, exist_ok=True)
    r = jump_run(srv, stream, clip30, request.param, art, renditions=("video", "audio"))
    yield r
    r.done.set()
    r.sender.join(10)


def pdt_seconds(pdt):
    return datetime.datetime.fromisoformat(pdt.replace("Z", "+00:00")).timestamp()


def discontinuity_at(r, rendition):
    """The last playlist version of `rendition` listing a discontinuity, and the index of that
    segment in it."""
    for body in reversed(r.playlists[rendition]):
        pl = h.MediaPlaylist(body)
        for i, s in enumerate(pl.segments):
            if s["discontinuity"]:
                return pl, i
    return None, None


def test_ingest_signals_the_jump_once(jumped):
    r = jumped
    assert not r.errors, r.errors
    assert r.jumped_at, "the publisher never reached the jump"
    lines = r.srv.logs("timestamp jump: discontinuity")
    assert len(lines) == 1, lines or r.srv.log_tail()
    assert not r.srv.logs("timestamp jump rebased")
    assert r.srv.metric("streamflex_ingest_timestamp_jumps_total", handling="discontinuity") == 1
    assert r.srv.metric("streamflex_ingest_stream_timestamp_jumps_total", stream=r.stream) == 1


def test_playlists_take_a_discontinuity_with_a_new_init_at_the_jump(jumped):
    r = jumped
    at = {}
    for name in ("video", "audio"):
        pl, i = discontinuity_at(r, name)
        assert pl, f"no EXT-X-DISCONTINUITY in any {name} playlist:\n{r.playlists[name][-1]}"
        assert i > 0, pl.text
        before, after = pl.segments[i - 1], pl.segments[i]
        assert sum(s["discontinuity"] for s in pl.segments) == 1, pl.text
        # Numbering goes on; a new init; the media goes on where it was (program date time).
        assert after["msn"] == before["msn"] + 1, pl.text
        assert after["map"] != before["map"], pl.text
        assert abs(pdt_seconds(before["pdt"]) + before["duration"] - pdt_seconds(after["pdt"])) < 0.1, pl.text
        at[name] = after["msn"]
    assert at["video"] == at["audio"], at
    # The segment before the discontinuity began before the jump reached the origin.
    print(f"\n[origin-reconnect] jump of {r.jump / 1000:+.0f} s: discontinuity at segment {at['video']}")


def period_end(period_xml):
    """Where the Period's video media ends, in seconds of the MPD timeline (its start plus its
    SegmentTimeline's end, less presentationTimeOffset)."""
    m = re.fullmatch(r"PT(?:(\d+)H)?(?:(\d+)M)?(?:([\d.]+)S)?", period_xml.get("start") or "")
    assert m, period_xml.get("start")
    start = int(m[1] or 0) * 3600 + int(m[2] or 0) * 60 + float(m[3] or 0)
    for a in period_xml.findall("d:AdaptationSet", NS):
        if a.get("contentType") != "video":
            continue
        tpl = a.find("d:SegmentTemplate", NS)
        if tpl is None:
            tpl = a.find("d:Representation", NS).find("d:SegmentTemplate", NS)
        scale, pto, end = int(tpl.get("timescale", 1)), int(tpl.get("presentationTimeOffset", 0)), None
        for s in tpl.iter(f"{{{NS['d']}}}S"):
            t = int(s.get("t")) if s.get("t") is not None else end
            end = t + int(s.get("d")) * (1 + max(0, int(s.get("r", 0))))
        return start + (end - pto) / scale
    return None


def test_mpd_starts_a_new_period_at_the_jump(jumped):
    r = jumped
    assert r.versions, "no MPD seen"
    assert len({parse_mpd(body)["ast"] for _, body in r.versions}) == 1
    two = [body for _, body in r.versions if len(parse_mpd(body)["periods"]) == 2]
    assert two, f"no MPD with two Periods after the jump; last:\n{r.versions[-1][1]}"
    body = two[-1]
    old, new = parse_mpd(body)["periods"]
    assert old["id"] != new["id"]
    assert old["video"][0]["template"]["initialization"] != new["video"][0]["template"]["initialization"]
    assert int(new["video"][0]["template"]["startNumber"]) > int(old["video"][0]["template"]["startNumber"])
    # The new Period starts where the old one's media ends: the media went on across the jump.
    end = period_end(ET.fromstring(body).findall("d:Period", NS)[0])
    assert abs(new["start"] - end) < 0.1, (old["start"], end, new["start"], body)


def test_dash_js_plays_through_the_timestamp_jump(jumped, capsys):
    r = jumped
    res = r.play
    assert res and not res.get("error"), res and (res.get("error"), res.get("_stderr"))
    assert res["samples"], res
    report(capsys, res, f"across a timestamp jump of {r.jump / 1000:+.0f} s", r.jumped_at)
    assert res["samples"][-1]["periodSwitches"], "dash.js never switched to the Period after the jump"
    check_plays_past(res, r.jumped_at * 1000, 1280, "the jump")


def test_hls_js_plays_through_the_timestamp_jump(jumped, capsys):
    r = jumped
    res = r.hls_play
    assert res and not res.get("error"), res and (res.get("error"), res.get("_stderr"))
    samples = res["samples"]
    final = samples[-1]
    with capsys.disabled():
        print(f"\n[origin-reconnect] hls.js across a timestamp jump of {r.jump / 1000:+.0f} s: frames "
              f"{final['framesDecoded']}, stalls {final['stalls']}, latency {final['latency']}, "
              f"errors {final['errors'][-5:]}")
    assert not final["fatalErrors"], final["fatalErrors"]
    assert not res["pageErrors"], res["pageErrors"]
    since = r.jumped_at * 1000
    before = [s for s in samples if s["t"] <= since]
    after = [s for s in samples if s["t"] > since + 6000]
    trace = [(round((s["t"] - since) / 1000, 1), s["currentTime"], s["framesDecoded"]) for s in samples]
    assert before and after, f"the player did not run across the jump: {trace}"
    assert after[-1]["currentTime"] > before[-1]["currentTime"] + 5, trace
    assert after[-1]["framesDecoded"] - before[-1]["framesDecoded"] >= 150, trace
    recent = samples[-4:]
    assert recent[-1]["framesDecoded"] - recent[0]["framesDecoded"] >= 45, trace


def check_read(r, fps=30):
    """ffmpeg -xerror read JUMP_READ_SECONDS across the jump without an error and decoded every
    frame of it."""
    p = r.read
    assert p is not None, "ffmpeg did not finish"
    assert p.returncode == 0, p.stderr[-2000:]
    frames = [int(l.split("=")[1]) for l in p.stdout.splitlines() if l.startswith("frame=")]
    assert frames and frames[-1] >= (JUMP_READ_SECONDS - 0.5) * fps, (frames[-1:], p.stderr[-500:])
    return frames[-1]


def test_ffmpeg_decodes_every_frame_across_the_jump(jumped):
    frames = check_read(jumped)
    print(f"\nffmpeg -xerror across the jump: {frames} frames in {JUMP_READ_SECONDS} s")


# ---- the same jump with ingest.timestamp_jump=rebase --------------------------------------------

@pytest.fixture(scope="module")
def rebased(module_servers, module_procs, clip30, tmp_path_factory):
    srv = h.start_origin(module_servers, args=["--ingest.timestamp_jump=rebase"])
    art = h.artifact_dir("origin-jump-rebase")
    r = jump_run(srv, "drb", clip30, 30000, art, players=False, watch_seconds=JUMP_READ_SECONDS)
    yield r
    r.done.set()
    r.sender.join(10)


def test_rebase_keeps_one_timeline_without_a_discontinuity(rebased):
    r = rebased
    assert not r.errors, r.errors
    assert r.jumped_at, "the publisher never reached the jump"
    assert len(r.srv.logs("timestamp jump rebased")) == 1, r.srv.log_tail()
    assert r.srv.metric("streamflex_ingest_timestamp_jumps_total", handling="rebase") == 1
    assert r.versions, "no MPD seen"
    for _, body in r.versions:
        assert [p["id"] for p in parse_mpd(body)["periods"]] == ["p0"], body
    root = ET.fromstring(r.versions[-1][1])
    for tpl in root.iter(f"{{{NS['d']}}}SegmentTemplate"):
        end = None
        for s in tpl.iter(f"{{{NS['d']}}}S"):
            if end is not None and s.get("t") is not None:
                assert int(s.get("t")) == end, r.versions[-1][1]
            end = (int(s.get("t")) if s.get("t") is not None else end) + int(s.get("d"))
    assert r.playlists["video"] and not any("#EXT-X-DISCONTINUITY\n" in pl for pl in r.playlists["video"])
    # The playlists seen span the jump.
    last = h.MediaPlaylist(r.playlists["video"][-1])
    assert pdt_seconds(last.segments[-1]["pdt"]) > r.jumped_at, last.text
    check_read(r)


# ---- the jump through a transcoded ladder ---------------------------------------------------------

LADDERS = {
    # Two rungs on the transcoder's grid.
    "jt": ("jt=360p:640x360@30:800k:880k:ultrafast,180p:320x180@30:300k:330k:ultrafast", ("360p", "180p")),
    # The source passed through beside a rung: the rung's discontinuity waits for a source keyframe.
    "jts": ("jts=source,360p:640x360@30:800k:880k:ultrafast", ("source", "360p")),
}


@pytest.fixture(scope="module", params=sorted(LADDERS), ids=["two rungs", "source and a rung"])
def ladder_jumped(request, module_servers, module_procs, clip30, tmp_path_factory):
    profiles, rungs = LADDERS[request.param]
    srv = h.start_origin(module_servers, args=[f"--transcode.profile={request.param}",
                                               f"--transcode.profiles={profiles}"])
    stream = f"dj{request.param}"
    art = h.artifact_dir(f"origin-jump-{stream}")
    r = jump_run(srv, stream, clip30, 30000, art, renditions=(*rungs, "audio"), players=False,
                 watch_seconds=JUMP_READ_SECONDS)
    r.rungs = rungs
    yield r
    r.done.set()
    r.sender.join(10)


def test_every_rung_takes_the_discontinuity_at_the_same_segment(ladder_jumped):
    r = ladder_jumped
    assert not r.errors, r.errors
    assert len(r.srv.logs("timestamp jump: discontinuity")) == 1, r.srv.log_tail()
    at = {}
    for name in (*r.rungs, "audio"):
        pl, i = discontinuity_at(r, name)
        assert pl, f"no EXT-X-DISCONTINUITY in any {name} playlist:\n{r.playlists[name][-1:]}"
        before, after = pl.segments[i - 1], pl.segments[i]
        assert after["msn"] == before["msn"] + 1 and after["map"] != before["map"], pl.text
        assert abs(pdt_seconds(before["pdt"]) + before["duration"] - pdt_seconds(after["pdt"])) < 0.1, pl.text
        at[name] = after["msn"]
    print(f"\n[origin-reconnect] ladder {r.stream}: discontinuity at segment {at}")
    assert len(set(at.values())) == 1, at
    # Each rung's segment after the jump starts with a keyframe: an independent first part.
    for name in r.rungs:
        pl, i = discontinuity_at(r, name)
        parts = pl.segments[i]["parts"]
        assert not parts or parts[0]["independent"], pl.text


def test_ffmpeg_decodes_every_frame_of_the_ladder_across_the_jump(ladder_jumped):
    frames = check_read(ladder_jumped)
    print(f"\nffmpeg -xerror across the jump (ladder): {frames} frames in {JUMP_READ_SECONDS} s")
