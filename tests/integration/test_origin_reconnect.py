"""A publisher that drops and comes back (same key) continues the stream at the origin.

ffmpeg publishes a 10 s clip (-re -c copy) and exits; 3 s later a second ffmpeg publishes a 30 s
clip with the same key. hls.js (the origin's player page in headless Chromium) starts before
the drop and plays through it; the test reloads the video playlist every 200 ms meanwhile. The
playlist must carry on (media sequence numbers keep growing, EXT-X-DISCONTINUITY before the first
segment of the new publish, the same init unless the codec configuration changed) and the player
must carry on after the discontinuity without a fatal error.
"""
import threading
import time
import types

import pytest

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
