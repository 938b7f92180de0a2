"""hls.js plays the default ladder in headless Chromium and is forced through every level while it
plays (hls.loadLevel, as its ABR controller switches), with no stall and no error.

An 854x480@30 clip is published in a loop (ffmpeg -stream_loop -1 -re -c copy), so the ladder is
480p, 360p, 160p (a small source keeps the transcoder and Chromium's decoder within a shared
2-core machine); tests/browser/play_levels.mjs drives the origin's player page. With the profile
default-source the 480p level is the source itself, passed through (B-frames and the source's
keyframes), beside the transcoded 360p and 160p.
"""
import json

import pytest

import sfharness as h

SECONDS_PER_LEVEL = 3


@pytest.fixture(scope="module")
def artifacts():
    d = h.artifact_dir("transcode-browser")
    print(f"\nbrowser artifacts (screenshot, browser log): {d}")
    return d


@pytest.mark.parametrize("profile", ["default", "default-source"])
def test_hls_js_switches_through_every_level_without_stall(make_server, procs, browser_deps, artifacts, tmp_path,
                                                          capsys, profile):
    clip = h.encode_clip_variant(40, size="854x480", bitrate="1500k")
    # A shared machine may starve the transcoder for a moment: more lag is tolerated before the top
    # rung is dropped (a dropped rung stalls a player on it, which is what this test looks for).
    srv = h.start_origin(make_server, args=[f"--transcode.profile={profile}", "--transcode.max_lag=6s",
                                            "--transcode.max_queue_frames=300"])
    key = srv.create_key("abr")
    procs.add(h.ffmpeg_publish_looped(clip, srv.url(key), tmp_path / "pub.log"))

    def ladder_listed():
        status, body, _ = h.http_get(f"{srv.origin}/live/abr/160p/index.m3u8")
        return status == 200 and body.count("#EXTINF") >= 2

    h.wait_until(ladder_listed, 30, "two segments of the lowest rung")
    master = h.http_get(f"{srv.origin}/live/abr/master.m3u8")[1]
    top = "source" if profile == "default-source" else "480p"
    assert f"{top}/index.m3u8" in master and ("480p/" in master) == (top == "480p"), master
    result = h.run_node_json("play_levels.mjs", [f"{srv.origin}/?stream=abr", SECONDS_PER_LEVEL, artifacts],
                             timeout=150, artifacts=artifacts)
    (artifacts / "levels.json").write_text(json.dumps(result, indent=1))
    with capsys.disabled():
        print(f"\n[transcode-browser {profile}] " + "; ".join(
            f"{v['height']}p shown after {v['shownAfterMs']} ms, {v['framesOnLevel']} frames"
            for v in result.get("visits", [])) + f"; final {result.get('final')}")
    assert not result.get("error"), f"{result['error']}\n{result.get('_stderr', '')}\nfailed: {result['failed'][:10]}"
    heights = sorted(l["height"] for l in result["levels"])
    assert heights == [160, 360, 480], (result["levels"], master)
    assert len(result["visits"]) == 3
    for v in result["visits"]:
        assert v["shownAfterMs"] is not None, f"hls.js never showed level {v} (master:\n{master})"
        assert v["videoHeight"] == v["height"], v
        # Playing on the level: about 30 fps for SECONDS_PER_LEVEL seconds.
        assert v["framesOnLevel"] >= 20 * SECONDS_PER_LEVEL, v
    final = result["final"]
    assert final["playing"] and not final["fatalErrors"], final
    assert final["stalls"] == 0, final
    assert not final["hlsErrors"], final["hlsErrors"]
    assert not result["pageErrors"], result["pageErrors"]
    # hls.js cancels the blocking reload of the level it leaves: aborted, not failed.
    failed = [f for f in result["failed"] if not (f.startswith("failed net::ERR_ABORTED") and ".m3u8?" in f)]
    assert not failed, failed
