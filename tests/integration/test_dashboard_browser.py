"""The operator dashboard in headless Chromium, as a person uses it.

`streamflex all` serves the dashboard at / of its API listener. tests/browser/dashboard.mjs
(playwright-core driving Debian's chromium) signs in with the admin API key that `all` wrote to
<store dir>/admin-api-key, creates a token-protected stream, publishes to it with ffmpeg using the
RTMP URL and key shown in the page, waits for it to go live, for the charts to fill and for the
preview (hls.js, low latency, with a token the dashboard issued itself) to play, issues a viewer
token, rotates the key, makes the stream public, and saves screenshots. This file then checks the server's side: the key
the page showed after rotation publishes, the old one is in its grace period, the token URL plays.
Screenshots are kept under the build tree (build/test-artifacts/dashboard-browser-*).
"""
import json
import os
import pathlib
import time
import urllib.request

import pytest

import sfharness as h

STREAM = "dashcam"


def artifacts_dir():
    base = os.environ.get("SF_ARTIFACTS")
    root = pathlib.Path(base) if base else pathlib.Path(h.BIN).resolve().parents[1] / "test-artifacts"
    d = root / f"dashboard-browser-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    d.mkdir(parents=True, exist_ok=True)
    return d


def api_get(base, key, path):
    req = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read().decode())


@pytest.fixture(scope="module")
def run(module_servers, module_procs, clip30, browser_deps, tmp_path_factory):
    api_port = h.free_port()
    srv = h.start_all(module_servers, args=[f"--api.listen={h.HOST}:{api_port}",
                                            f"--api.web_root={h.SOURCE_DIR / 'web' / 'dashboard' / 'dist'}"])
    api = f"http://{h.HOST}:{api_port}"
    key_file = srv.workdir / "admin-api-key"
    h.wait_until(lambda: key_file.exists() and key_file.read_text().strip(), 10, "admin-api-key")
    status, page, ctype = h.http_get(api + "/")
    assert status == 200 and "text/html" in ctype and "StreamFlex" in page, (status, ctype, page[:300])
    out = artifacts_dir()
    print(f"\ndashboard browser artifacts (screenshots, browser log): {out}")
    result = h.run_node_json("dashboard.mjs", [api + "/", key_file, STREAM, clip30, out], timeout=180,
                             artifacts=out)
    (out / "result.json").write_text(json.dumps(result, indent=1))
    return {"srv": srv, "api": api, "admin": key_file.read_text().strip(), "result": result, "out": out,
            "work": tmp_path_factory.mktemp("dash")}


def check_ok(result):
    assert not result.get("error"), (f"{result['error']}\nsteps: {result.get('steps')}\nfailed: {result.get('failed')}"
                                     f"\nconsole: {result.get('console')}\n{result.get('_stderr', '')}")


def test_signs_in_and_refuses_a_wrong_key(run):
    r = run["result"]
    check_ok(r)
    assert "not valid" in r["wrongKeyMessage"]
    assert "admin" in r["who"]


def test_created_stream_goes_live_with_the_key_shown_in_the_page(run):
    r = run["result"]
    check_ok(r)
    assert r["listed"]
    assert r["rtmpUrl"].startswith("rtmp://127.0.0.1:") and r["rtmpUrl"].endswith("/live")
    assert [s["name"] for s in r["steps"]][:4] == ["signed in", "created", "live", "preview playing"]


def test_preview_plays_with_low_latency(run, capsys):
    r = run["result"]
    check_ok(r)
    p = r["preview"]
    # The stream is token-protected: the preview plays through a token the dashboard issued.
    assert "token=" in p["url"], p
    assert p["framesAdvanced"] >= 100, p  # ~6 s of 30 fps video
    latencies = [x for x in p["latencies"] if x is not None]
    assert latencies and 0 < latencies[-1] < 8, p
    assert p["shownLatency"].endswith(" s")
    with capsys.disabled():
        print(f"\n[dashboard-browser] preview latency {latencies[-1]:.2f} s (samples {latencies}), "
              f"frames advanced {p['framesAdvanced']} in 6 s")


def test_charts_and_live_figures(run):
    r = run["result"]
    check_ok(r)
    assert r["chartPoints"] >= 3
    shown = r["shown"]
    assert shown["bitrate"].endswith("/s") and shown["bitrate"] != "—", shown
    fps = float(shown["fps"].split()[0])
    assert 25 <= fps <= 35, shown
    gop = float(shown["gop"].split()[0])
    assert 0.5 <= gop <= 1.5, shown  # the clip has a keyframe every 30 frames at 30 fps
    # The preview player is a viewer of the stream at the edge (others may still be in the 10 s window).
    assert shown["viewers"].isdigit() and int(shown["viewers"]) >= 1, shown
    assert "1280×720" in shown["video"], shown


def test_issued_token_url_plays(run):
    r = run["result"]
    check_ok(r)
    url = r["tokenUrl"]
    assert "token=" in url and f"/live/{STREAM}/" in url
    probe = h.run(["ffprobe", "-v", "error", "-of", "json", "-show_streams", url], timeout=60)
    # The publisher stopped with the browser; the stream stays served for origin.unpublish_grace.
    assert probe.returncode == 0, probe.stderr
    assert r["barePlaybackStatus"] == 403 and r["tokenPlaybackStatus"] == 200, r


def test_rotation_keeps_old_key_in_grace_and_new_key_publishes(run, module_procs):
    r = run["result"]
    check_ok(r)
    assert r["rotatedKey"] != r["firstKey"]
    assert sorted(r["keyStates"]) == ["active", "grace"], r["keyStates"]
    keys = api_get(run["api"], run["admin"], f"/api/streams/{STREAM}/keys")["keys"]
    assert sorted(k["state"] for k in keys) == ["active", "grace"], keys
    srv = run["srv"]
    h.wait_until(lambda: srv.stream(STREAM) is None, 15, "the browser's publisher to leave")
    pub = module_procs.add(h.ffmpeg_publish(h.encode_clip(8), srv.url(r["rotatedKey"]), run["work"] / "ffmpeg.log"))
    srv.wait_live(STREAM, 15)
    pub.stop()


def test_made_public_the_preview_plays_without_a_token(run):
    r = run["result"]
    check_ok(r)
    assert "token=" not in r["publicPreviewUrl"] and f"/live/{STREAM}/" in r["publicPreviewUrl"]
    assert r["steps"][-1]["name"] == "made public"


def test_screenshots_are_saved(run):
    r = run["result"]
    assert r.get("screenshot") and pathlib.Path(r["screenshot"]).stat().st_size > 10_000
    check_ok(r)
