"""Per-stream latency settings, applied by the origin at each publish (`streamflex all`).

Two streams are created through the API with different settings, passed through (no transcoding:
the clip has a keyframe every second): "quick" LL-HLS with 300 ms parts and 1 s segments, "plain"
standard HLS with 3 s segments. ffmpeg publishes both; the test reloads both streams' video and
audio playlists for a while and streams every version to tests/browser/check_playlists.mjs (npm
hls-parser, strict), which checks LL-HLS rules for "quick" and standard-HLS rules for "plain" and
reports the targets each playlist advertised. Then a blocking reload, the MPDs, and a settings
change on a live stream, which takes effect at its next publish.
"""
import json
import re
import subprocess
import time
import types

import pytest

import sfapi
import sfharness as h

STREAMS = {
    "quick": {"latency": "ll-hls", "part_target_ms": 300, "segment_target_ms": 1000},
    "plain": {"latency": "hls", "part_target_ms": 500, "segment_target_ms": 3000},
}
RENDITIONS = ("video", "audio")
POLL_SECONDS = 12
POLL_INTERVAL = 0.25


@pytest.fixture(scope="module")
def observed(module_servers, module_procs, clip30, browser_deps, tmp_path_factory):
    work = tmp_path_factory.mktemp("latency")
    srv = h.start_all(module_servers)
    api = sfapi.Api(srv)
    r = types.SimpleNamespace(srv=srv, api=api, keys={}, errors=[], report=None, last={}, work=work,
                              publishers={}, clip=clip30, procs=module_procs)
    for name, settings in STREAMS.items():
        r.keys[name] = api.create_stream(name, profile="passthrough", **settings)["key"]["key"]
        r.publishers[name] = module_procs.add(h.ffmpeg_publish(clip30, srv.url(r.keys[name]), work / f"{name}.log"))
    for name in STREAMS:
        h.wait_until(lambda: h.http_get(f"{srv.origin}/live/{name}/video/index.m3u8")[0] == 200, 15,
                     f"{name} video playlist served")
    # "plain" lists only complete 3 s segments: wait for the first.
    h.wait_until(lambda: "#EXTINF" in h.http_get(f"{srv.origin}/live/plain/video/index.m3u8")[1], 15,
                 "plain lists a segment")

    checker = subprocess.Popen(["node", str(h.BROWSER_DIR / "check_playlists.mjs")], cwd=h.BROWSER_DIR,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        end = time.monotonic() + POLL_SECONDS
        while time.monotonic() < end:
            tick = time.monotonic()
            for name in STREAMS:
                for rendition in RENDITIONS:
                    t = time.time() * 1000
                    status, body, _ = h.http_get(f"{srv.origin}/live/{name}/{rendition}/index.m3u8")
                    if status != 200:
                        r.errors.append(f"{name}/{rendition} playlist answered {status}")
                        continue
                    r.last[(name, rendition)] = body
                    checker.stdin.write(json.dumps({"rendition": f"{name}/{rendition}", "t": t, "text": body,
                                                    "standard": STREAMS[name]["latency"] == "hls"}) + "\n")
            checker.stdin.flush()
            time.sleep(max(0.0, POLL_INTERVAL - (time.monotonic() - tick)))
        out, err = checker.communicate(timeout=60)
        lines = [l for l in out.splitlines() if l.strip()]
        r.report = json.loads(lines[-1]) if lines else None
        if r.report is None:
            r.errors.append(f"checker printed nothing; stderr:\n{err[-3000:]}")
    finally:
        if checker.poll() is None:
            checker.kill()
            checker.wait(5)
    if r.report:
        print(f"\nversions checked: {r.report['versions']}\ncontrols: {r.report['control']}")
        for rule, msgs in sorted(r.report["violations"].items()):
            print(f"  {rule}: {len(msgs)} e.g. {msgs[0]}")
    return r


def extinfs(text):
    return [float(x) for x in re.findall(r"#EXTINF:([0-9.]+),", text)]


def test_every_version_passes_the_independent_checker(observed):
    assert not observed.errors, observed.errors[:5]
    assert observed.report, observed.errors
    assert all(observed.report["versions"].get(f"{s}/{r}", 0) >= 3 for s in STREAMS for r in RENDITIONS), \
        observed.report["versions"]
    # PDT steps are checked to 40 ms; a loaded machine may stretch one, as in test_origin_playlists.
    v = {k: m for k, m in observed.report["violations"].items() if k not in ("pdt_step", "strict")}
    # hls-parser's strict 85 % floor ignores the spec's exemption of INDEPENDENT parts (every audio
    # part; the checker's own part_min rule applies the spec exactly).
    strict = [m for m in observed.report["violations"].get("strict", []) if "85% of PART-TARGET" not in m]
    assert not v and not strict, (v, strict)


def test_low_latency_stream_advertises_its_own_targets(observed):
    c = observed.report["control"]
    for rendition in RENDITIONS:
        got = c[f"quick/{rendition}"]
        assert got["td"] == 1 and got["canBlockReload"], got
        # PART-TARGET: the 0.3 s grid plus one AAC frame (21.3 ms), rounded up to whole ms.
        assert got["pt"] == pytest.approx(0.322, abs=0.001), got
        assert got["partHoldBack"] == pytest.approx(3 * got["pt"], abs=0.002), got
    durations = extinfs(observed.last[("quick", "video")])
    assert len(durations) >= 5 and all(0.9 <= d <= 1.05 for d in durations), durations


def test_standard_stream_lists_whole_segments_only(observed):
    c = observed.report["control"]
    for rendition in RENDITIONS:
        got = c[f"plain/{rendition}"]
        assert got == {"td": 3, "pt": 0, "holdBack": None, "partHoldBack": None, "canBlockReload": False}, got
    text = observed.last[("plain", "video")]
    for tag in ("#EXT-X-PART", "#EXT-X-PRELOAD-HINT", "#EXT-X-SERVER-CONTROL", "#EXT-X-RENDITION-REPORT"):
        assert tag not in text, text
    durations = extinfs(text)
    assert durations and all(2.9 <= d <= 3.05 for d in durations), durations


def test_standard_stream_answers_blocking_directives_at_once(observed):
    base = f"{observed.srv.origin}/live"
    last = max(int(x) for x in re.findall(r"s(\d+)\.m4s", h.http_get(f"{base}/plain/video/index.m3u8")[1]))
    t0 = time.monotonic()
    status, body, _ = h.http_get(f"{base}/plain/video/index.m3u8?_HLS_msn={last + 1}", timeout=10)
    plain_wait = time.monotonic() - t0
    assert status == 200 and "#EXTINF" in body and plain_wait < 1.0, plain_wait
    # The low-latency stream holds the same kind of request until that segment is complete.
    pl = h.MediaPlaylist(h.http_get(f"{base}/quick/video/index.m3u8")[1])
    want = pl.segments[-1]["msn"] + 2
    status, body, _ = h.http_get(f"{base}/quick/video/index.m3u8?_HLS_msn={want}", timeout=10)
    assert status == 200 and f"s{want}.m4s" in body


def test_mpds_follow_the_latency_mode(observed):
    base = f"{observed.srv.origin}/live"
    quick = h.http_get(f"{base}/quick/manifest.mpd")[1]
    plain = h.http_get(f"{base}/plain/manifest.mpd")[1]
    assert "availabilityTimeOffset" in quick and "<ServiceDescription" in quick
    assert "availabilityTimeOffset" not in plain and "<ServiceDescription" not in plain
    assert 'maxSegmentDuration="PT3S"' in plain or 'maxSegmentDuration="PT3.0S"' in plain, plain[:600]


def test_settings_change_applies_at_the_next_publish(observed):
    srv, api = observed.srv, observed.api
    url = f"{srv.origin}/live/plain/video/index.m3u8"
    changed = api.ok("PATCH", "/api/streams/plain", {"latency": "ll-hls", "segment_target_ms": 2000})
    assert changed["latency"] == "ll-hls"
    time.sleep(1.5)
    assert "#EXT-X-PART-INF" not in h.http_get(url)[1], "a live stream changed mode before its next publish"
    before = max(int(x) for x in re.findall(r"s(\d+)\.m4s", h.http_get(url)[1]))
    observed.publishers["plain"].stop()
    observed.procs.add(h.ffmpeg_publish(observed.clip, srv.url(observed.keys["plain"]),
                                        observed.work / "plain-again.log"))
    h.wait_until(lambda: "#EXT-X-PART-INF" in h.http_get(url)[1], 15, "plain republished as LL-HLS")
    h.wait_until(lambda: "#EXTINF" in h.http_get(url)[1], 10, "a complete segment after the republish")
    text = h.http_get(url)[1]
    assert "#EXT-X-TARGETDURATION:2\n" in text and "CAN-BLOCK-RELOAD=YES" in text, text
    # A fresh window whose numbers went on: no URL names different bytes than before.
    assert min(int(x) for x in re.findall(r"s(\d+)\.m4s", text)) > before, text
