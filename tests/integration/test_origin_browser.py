"""Browsers play the origin: hls.js (the origin's own player page) and dash.js, in headless Chromium.

Each test publishes the 30 s clip with ffmpeg -re -c copy on its own stream, plays it for 15 s
through tests/browser/play.mjs (playwright-core driving Debian's /usr/bin/chromium) and checks the
player's own report. Latency figures are printed (pytest -s, or the CTest log on failure); the
screenshots are kept in the artifact directory printed with them.
"""
import json
import statistics
import time

import pytest

import sfharness as h

PLAY_SECONDS = 15


@pytest.fixture(scope="module")
def srv(module_servers):
    return h.start_origin(module_servers)


@pytest.fixture(scope="module")
def artifacts():
    d = h.artifact_dir("origin-browser")
    print(f"\nbrowser artifacts (screenshots, browser logs): {d}")
    return d


def publish(srv, procs, clip, stream, work):
    key = srv.create_key(stream)
    pub = procs.add(h.ffmpeg_publish(clip, srv.url(key), work / f"{stream}-ffmpeg.log"))

    def has_segment():
        status, body, _ = h.http_get(f"{srv.origin}/live/{stream}/video/index.m3u8")
        return status == 200 and "#EXTINF" in body

    h.wait_until(has_segment, 15, f"{stream}: a complete segment")
    return pub


def summarize(result):
    """Medians over the samples taken while playing, and the last sample."""
    playing = [s for s in result["samples"] if s["playing"] and s["latency"] is not None]
    tail = playing[-10:]
    med = lambda key: statistics.median([s[key] for s in tail if s[key] is not None]) if tail else None
    has_g2g = any(s["glassToGlass"] is not None for s in tail)
    return {"latency": med("latency"), "glassToGlass": med("glassToGlass") if has_g2g else None,
            "final": result.get("final"), "samples": len(playing)}


def record(capsys, artifacts, player, summary, line):
    """Shows the figures even when the test passes (outside pytest's capture) and keeps them as JSON."""
    with capsys.disabled():
        print(f"\n[origin-browser] {line}")
    (artifacts / f"{player}-figures.json").write_text(json.dumps(summary, indent=1))


def check_played(result, what):
    assert not result.get("error"), f"{what}: {result['error']}\n{result.get('_stderr', '')}"
    final = result["final"]
    assert final, f"{what}: no sample taken"
    assert not final["fatalErrors"], \
        f"{what}: fatal errors {final['fatalErrors']}; failed requests {result['failed'][:10]}"
    assert not result["pageErrors"], result["pageErrors"]
    assert final["playing"] and final["framesDecoded"] > 0, final
    # Still advancing at the end: frames decoded over the last 5 samples (~5 s).
    recent = result["samples"][-6:]
    assert recent[-1]["framesDecoded"] - recent[0]["framesDecoded"] >= 100, \
        f"{what}: playback not advancing at the end: {[s['framesDecoded'] for s in recent]}"


def test_hls_js_plays_player_page_with_low_latency(srv, module_procs, clip30, browser_deps, artifacts,
                                                   tmp_path_factory, capsys):
    publish(srv, module_procs, clip30, "hlsjs", tmp_path_factory.mktemp("hlsjs"))
    t0 = time.monotonic()
    result = h.run_node_json("play.mjs", ["hls", f"{srv.origin}/?stream=hlsjs", PLAY_SECONDS, artifacts],
                             timeout=PLAY_SECONDS + 60, artifacts=artifacts)
    s = summarize(result)
    f = s["final"] or {}
    record(capsys, artifacts, "hls.js", s,
           f"hls.js: latency {s['latency']} s, glass-to-glass (PDT to screen) {s['glassToGlass']} s, "
           f"target {f.get('targetLatency')} s, stalls {f.get('stalls')}, frames {f.get('framesDecoded')}, "
           f"requests { {k: v['count'] for k, v in result['requests'].items()} }, run {time.monotonic() - t0:.1f} s; "
           f"screenshot {result.get('screenshot')}")
    check_played(result, "hls.js")
    assert s["latency"] is not None and s["latency"] < 6, s
    assert s["glassToGlass"] is not None and 0 < s["glassToGlass"] < 6, s
    assert result["screenshot"]


def test_dash_js_plays_manifest_across_origins(srv, module_procs, clip30, browser_deps, artifacts, tmp_path_factory,
                                              capsys):
    publish(srv, module_procs, clip30, "dashjs", tmp_path_factory.mktemp("dashjs"))
    mpd = f"{srv.origin}/live/dashjs/manifest.mpd"
    status, body, ctype = h.http_get(mpd)
    assert status == 200 and ctype.startswith("application/dash+xml"), (status, ctype)
    assert "<MPD" in body, f"manifest.mpd is empty or not an MPD: {body[:300]!r}"
    result = h.run_node_json("play.mjs", ["dash", mpd, PLAY_SECONDS, artifacts], timeout=PLAY_SECONDS + 60,
                             artifacts=artifacts)
    s = summarize(result)
    f = s["final"] or {}
    record(capsys, artifacts, "dash.js", s,
           f"dash.js: live latency {s['latency']} s, stalls {f.get('stalls')}, frames {f.get('framesDecoded')}, "
           f"requests { {k: (v['count'], v['byStatus']) for k, v in result['requests'].items()} }; "
           f"errors {f.get('errors', [])[:3]}; screenshot {result.get('screenshot')}")
    check_played(result, "dash.js")
    assert s["latency"] is not None and s["latency"] < 8, s
