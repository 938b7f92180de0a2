"""The source as a rung of the ladder, end to end: ffmpeg publishes 1280x720@30 with a keyframe every
60 frames (2 s) and B-frames over RTMP to `streamflex all`; the stream's record (through the API) asks
for profile "src" = source + 360p + 160p. Every rung is read back over LL-HLS: the source rung has
the source's codec string and size, every rung has its keyframes at the same presentation times
(one per segment), and ffmpeg -xerror decodes every rung.
"""
import hashlib
import json
import os
import pathlib
import tempfile
import time
import types

import pytest

import sfapi
import sfharness as h
from test_transcode import fetch_rendition, master_variants

RUNGS = {"source": (1280, 720), "360p": (640, 360), "160p": (284, 160)}
ARGS = ["--transcode.profiles=src=source,360p:640x360@30:800k:880k:ultrafast,160p:284x160@30:200k:220k:ultrafast",
        "--transcode.max_lag=10s", "--transcode.max_queue_frames=400", "--origin.window_segments=20"]


def gop60_clip(seconds):
    """1280x720@30 H.264 (keyframe every 60 frames, B-frames) + AAC, cached like the harness's clips."""
    args = [a for a in h.CLIP_CMD]
    args[args.index("-g") + 1] = "60"
    args[args.index("-keyint_min") + 1] = "60"
    args += ["-t", str(seconds)]
    digest = hashlib.sha256(json.dumps(args).encode()).hexdigest()[:12]
    cache = pathlib.Path(os.environ.get("SF_CLIP_CACHE", pathlib.Path(tempfile.gettempdir()) / "streamflex-it-clips"))
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"clip-{seconds}s-gop60-{digest}.flv"
    if not (path.exists() and path.stat().st_size > 0):
        tmp = cache / f".{path.name}.{os.getpid()}.tmp"
        h.run(["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-y", *args, "-f", "flv", str(tmp)], timeout=120,
              check=True)
        os.replace(tmp, path)
    return path


@pytest.fixture(scope="module")
def ladder(module_servers, module_procs, tmp_path_factory):
    clip = gop60_clip(12)
    srv = h.start_origin(module_servers, args=ARGS)
    api = sfapi.Api(srv)
    key = api.ok("POST", "/api/streams", {"name": "src", "profile": "src"}, expect=201)["key"]["key"]
    time.sleep(1.5)  # the profiles are reread every auth.visibility_refresh (1 s)
    work = tmp_path_factory.mktemp("source")
    base = f"{srv.origin}/live/src/"
    pub = module_procs.add(h.ffmpeg_publish(clip, srv.url(key), work / "pub.log"))

    def all_rungs_listed():
        status, body, _ = h.http_get(base + "master.m3u8")
        return body if status == 200 and all(f"{n}/index.m3u8" in body for n in RUNGS) else None

    h.wait_until(all_rungs_listed, 30, "every rung in the multivariant playlist")
    time.sleep(5)  # a few segments measured
    r = types.SimpleNamespace(clip=clip, master=h.http_get(base + "master.m3u8")[1], metrics=srv.metrics())
    pub.wait(30)
    lists = {n: h.MediaPlaylist(h.http_get(f"{base}{n}/index.m3u8")[1]) for n in RUNGS}
    common = set.intersection(*[{s["msn"] for s in pl.segments if s.get("uri")} for pl in lists.values()])
    r.msns = common
    r.files, r.segments = {}, {}
    for n in RUNGS:
        data, segs = fetch_rendition(base, n, common)
        path = work / f"{n}.mp4"
        path.write_bytes(data)
        r.files[n], r.segments[n] = path, segs
    return r


def test_master_lists_the_source_rung_once_with_the_others(ladder):
    variants = {v["uri"].split("/")[0]: v for v in master_variants(ladder.master)}
    assert set(variants) == set(RUNGS), ladder.master  # no 720p rung beside the 720p source
    for n, (w, hgt) in RUNGS.items():
        assert variants[n]["RESOLUTION"] == f"{w}x{hgt}", variants[n]
    # Highest first: the source (2.5 Mbit/s, measured) above the transcoded rungs (declared).
    order = [v["uri"].split("/")[0] for v in master_variants(ladder.master)]
    assert order == ["source", "360p", "160p"], ladder.master
    assert int(variants["source"]["BANDWIDTH"]) > int(variants["360p"]["BANDWIDTH"]) > 880000


def test_source_rung_is_the_source(ladder):
    src = h.probe_streams(ladder.clip)["video"]
    out = h.probe_streams(ladder.files["source"])["video"]
    for k in ("codec_name", "profile", "level", "width", "height", "pix_fmt"):
        assert out[k] == src[k], (k, out[k], src[k])
    variant = next(v for v in master_variants(ladder.master) if v["uri"].startswith("source/"))
    avc = variant["CODECS"].split(",")[0]
    assert int(avc[5:7], 16) == h.H264_PROFILES[src["profile"]] and int(avc[9:11], 16) == int(src["level"]), avc
    packets = h.video_packets(ladder.files["source"])
    assert any(p["dts"] < p["pts"] for p in packets), "the source's B-frames went through"


def test_keyframes_at_the_same_times_in_every_rung(ladder):
    keys = {n: h.keyframe_pts(ladder.files[n]) for n in RUNGS}
    reference = keys["160p"]
    assert len(ladder.msns) >= 3, ladder.msns
    # One keyframe per segment, at its start, on the source's 2 s keyframes.
    assert len(reference) == len(ladder.segments["160p"]), (reference, ladder.segments["160p"])
    for n, k in keys.items():
        assert k == reference, f"{n} keyframes {k} differ from 160p {reference}"
    steps = {b - a for a, b in zip(reference, reference[1:])}
    assert steps and all(abs(s - 2000) <= 1 for s in steps), reference
    for n in RUNGS:
        assert [m for m, _, _ in ladder.segments[n]] == sorted(ladder.msns), (n, ladder.segments[n])


@pytest.mark.parametrize("name", list(RUNGS))
def test_rung_decodes_without_error(ladder, name):
    rc, problems = h.decode_problems(ladder.files[name])
    assert rc == 0 and not problems, problems


def test_source_rung_metrics(ladder):
    m = ladder.metrics
    assert m.get("streamflex_transcode_rung_active", stream="src", rung="source") == 1
    assert m.get("streamflex_transcode_rung_frames_total", stream="src", rung="source") > 60
    assert 1.5e6 < m.get("streamflex_transcode_rung_bitrate_bps", stream="src", rung="source") < 4e6
