"""The ABR ladder end to end: ffmpeg publishes over RTMP, `streamflex all` transcodes with the default
profile, and every rung is read back over LL-HLS and checked with ffprobe and ffmpeg.

- "ladder": a 1920x1080@30 clip published in real time for 20 s; each rung's segments are fetched
  and probed (size, codec string, frame rate, keyframes at the same times in every rung, bit rate
  against the declared BANDWIDTH);
- "switch": 720p, then 1080p with a new sequence header in the same publish;
- audio-only and video-only publishes.
"""
import re
import time
import types

import pytest

import sfharness as h

RUNGS = {"1080p": (1920, 1080), "720p": (1280, 720), "480p": (854, 480), "360p": (640, 360), "160p": (284, 160)}
# A machine shared with other work may lag for a moment: the ladder test wants every rung, so it
# tolerates more lag than the default before the top rung goes.
LADDER_ARGS = ["--transcode.profile=default", "--transcode.max_lag=10s", "--transcode.max_queue_frames=400",
               "--origin.window_segments=20"]


def master_variants(text):
    """[{attrs..., 'uri': ...}] of a multivariant playlist."""
    out, lines = [], text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("#EXT-X-STREAM-INF:"):
            attrs = dict(re.findall(r'([A-Z-]+)=("[^"]*"|[^,]*)', line.split(":", 1)[1]))
            attrs = {k: v.strip('"') for k, v in attrs.items()}
            attrs["uri"] = lines[i + 1]
            out.append(attrs)
    return out


def fetch_rendition(base, name, msns=None):
    """(init + segments bytes, [(msn, duration, bytes)]) of a rendition's complete listed segments."""
    status, body, _ = h.http_get(f"{base}{name}/index.m3u8")
    assert status == 200, (name, status)
    pl = h.MediaPlaylist(body)
    data, segs, init = bytearray(), [], None
    for s in pl.segments:
        if not s.get("uri") or (msns is not None and s["msn"] not in msns):
            continue
        if init is None:
            init = s["map"]
            st, _, b = h.http_request(f"{base}{name}/{init}")
            assert st == 200
            data += b
        st, _, b = h.http_request(f"{base}{name}/{s['uri']}", timeout=10)
        assert st == 200, (name, s["uri"], st)
        data += b
        segs.append((s["msn"], s["duration"], len(b)))
    return bytes(data), segs


@pytest.fixture(scope="module")
def ladder(module_servers, module_procs, tmp_path_factory):
    clip = h.encode_clip_variant(20, size="1920x1080", bitrate="6000k")
    srv = h.start_origin(module_servers, args=LADDER_ARGS)
    key = srv.create_key("ladder")
    work = tmp_path_factory.mktemp("ladder")
    base = f"{srv.origin}/live/ladder/"
    pub = module_procs.add(h.ffmpeg_publish(clip, srv.url(key), work / "pub.log"))
    r = types.SimpleNamespace(work=work, base=base, srv=srv, master=None)

    def all_rungs_listed():
        status, body, _ = h.http_get(base + "master.m3u8")
        if status == 200 and all(f"{n}/index.m3u8" in body for n in RUNGS):
            return body
        return None

    h.wait_until(all_rungs_listed, 30, "every rung in the multivariant playlist")
    # The master as it stands mid-stream, with measured rates over several segments.
    time.sleep(8)
    r.master = h.http_get(base + "master.m3u8")[1]
    r.metrics = srv.metrics()
    pub.wait(40)
    # The stream stays served (unpublish grace): read every rung's segments.
    lists = {n: h.MediaPlaylist(h.http_get(f"{base}{n}/index.m3u8")[1]) for n in RUNGS}
    common = set.intersection(*[{s["msn"] for s in pl.segments if s.get("uri")} for pl in lists.values()])
    common.discard(min(common))  # the first segment may be short (the publish started mid-grid)
    r.msns = common
    r.files, r.segments = {}, {}
    for n in [*RUNGS, "audio"]:
        data, segs = fetch_rendition(base, n, common)
        path = work / f"{n}.mp4"
        path.write_bytes(data)
        r.files[n], r.segments[n] = path, segs
    return r


def test_master_lists_every_rung_highest_first_with_audio_group(ladder):
    variants = master_variants(ladder.master)
    assert [v["uri"] for v in variants] == [f"{n}/index.m3u8" for n in RUNGS], ladder.master
    for v in variants:
        name = v["uri"].split("/")[0]
        w, hgt = RUNGS[name]
        assert v["RESOLUTION"] == f"{w}x{hgt}", v
        assert v["AUDIO"] == "audio" and v["CODECS"].endswith(",mp4a.40.2"), v
        assert abs(float(v["FRAME-RATE"]) - 30) < 0.5, v
        assert int(v["AVERAGE-BANDWIDTH"]) <= int(v["BANDWIDTH"]), v
    assert '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio"' in ladder.master


@pytest.mark.parametrize("name", list(RUNGS))
def test_rung_has_its_size_codec_and_frame_rate(ladder, name):
    v = h.probe_streams(ladder.files[name])["video"]
    assert (v["codec_name"], v["width"], v["height"]) == ("h264", *RUNGS[name]), v
    variant = next(x for x in master_variants(ladder.master) if x["uri"].startswith(name + "/"))
    avc = variant["CODECS"].split(",")[0]
    # avc1.PPCCLL: profile_idc and level_idc as ffprobe reads them from the SPS
    assert int(avc[5:7], 16) == h.H264_PROFILES[v["profile"]], (avc, v["profile"])
    assert int(avc[9:11], 16) == int(v["level"]), (avc, v["level"])
    packets = h.video_packets(ladder.files[name])
    seconds = sum(d for _, d, _ in ladder.segments[name])
    assert abs(len(packets) / seconds - 30) < 0.5, (len(packets), seconds)
    assert all(p["dts"] == p["pts"] for p in packets), "B-frames in a rung"


def test_keyframes_at_the_same_times_in_every_rung(ladder):
    keys = {n: h.keyframe_pts(ladder.files[n]) for n in RUNGS}
    reference = keys["1080p"]
    # One keyframe per segment, at its start: every segment is independent.
    assert len(reference) == len(ladder.segments["1080p"]), (reference, ladder.segments["1080p"])
    for n, k in keys.items():
        assert k == reference, f"{n} keyframes {k} differ from 1080p {reference}"
    assert h.max_step(reference) <= 2100, reference  # on the 2 s segment grid


def test_measured_bitrate_within_10_percent_of_bandwidth(ladder):
    variants = {v["uri"].split("/")[0]: v for v in master_variants(ladder.master)}
    audio = ladder.segments["audio"]
    audio_bps = sum(b for _, _, b in audio) * 8 / sum(d for _, d, _ in audio)
    report = []
    for n in RUNGS:
        segs = ladder.segments[n]
        video_bps = sum(b for _, _, b in segs) * 8 / sum(d for _, d, _ in segs)
        peak_bps = max(b * 8 / d for _, d, b in segs)
        declared = int(variants[n]["BANDWIDTH"])
        measured = video_bps + audio_bps
        report.append(f"{n}: declared {declared} measured {measured:.0f} ({measured / declared:.3f}) "
                      f"peak segment {peak_bps + audio_bps:.0f}")
    print("\n" + "\n".join(report))
    for n, line in zip(RUNGS, report):
        segs = ladder.segments[n]
        declared = int(variants[n]["BANDWIDTH"])
        measured = sum(b for _, _, b in segs) * 8 / sum(d for _, d, _ in segs) + audio_bps
        assert 0.9 * declared <= measured <= 1.1 * declared, line


@pytest.mark.parametrize("name", list(RUNGS))
def test_rung_decodes_without_error(ladder, name):
    rc, problems = h.decode_problems(ladder.files[name])
    assert rc == 0 and not problems, problems


def test_metrics_per_stream_and_rung(ladder):
    m = ladder.metrics
    # A real-time source: about 1 (more while catching up after a stall on a busy machine).
    assert 0.3 < m.get("streamflex_transcode_speed", stream="ladder") < 5
    assert m.get("streamflex_transcode_cpu_seconds_total", stream="ladder") > 1
    assert m.has("streamflex_transcode_queue_frames", stream="ladder")
    assert m.get("streamflex_transcode_dropped_rungs_total", stream="ladder") == 0
    for n in RUNGS:
        assert m.get("streamflex_transcode_rung_active", stream="ladder", rung=n) == 1
        declared = m.get("streamflex_transcode_rung_declared_bps", stream="ladder", rung=n)
        rate = m.get("streamflex_transcode_rung_bitrate_bps", stream="ladder", rung=n)
        assert 0.5 * declared < rate < 1.5 * declared, (n, rate, declared)


# ---- sources that change or lack a track --------------------------------------------------------

def read_through(url, seconds, timeout=60):
    """ffmpeg -xerror reads `seconds` of the live master playlist; returns the CompletedProcess."""
    return h.run(["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-xerror", "-i", url, "-t", str(seconds),
                  "-f", "null", "-progress", "pipe:1", "-"], timeout=timeout)


def wait_segments(base, rendition, count=2, timeout=30):
    def ready():
        status, body, _ = h.http_get(f"{base}{rendition}/index.m3u8")
        return status == 200 and body.count("#EXTINF") >= count
    h.wait_until(ready, timeout, f"{count} segments of {rendition}")


def frames_out(p):
    frames = [int(l.split("=")[1]) for l in p.stdout.splitlines() if l.startswith("frame=")]
    return frames[-1] if frames else 0


def test_source_switching_720p_to_1080p_plays_through(make_server, procs, tmp_path):
    small = h.encode_clip_variant(6, size="1280x720", bitrate="2500k")
    big = h.encode_clip_variant(14, size="1920x1080", bitrate="6000k")
    srv = h.start_origin(make_server, args=["--transcode.profile=default", "--transcode.max_lag=10s",
                                            "--transcode.max_queue_frames=400"])
    key = srv.create_key("sw")
    base = f"{srv.origin}/live/sw/"
    a, b = h.flv_tags(small), h.flv_tags(big)
    offset = max(ts for _, ts, _ in a) + 34
    tags = a + [(t, ts + offset, body) for t, ts, body in b]
    pub = h.TagPublisher(srv.rtmp_port, key)
    import threading
    stop = threading.Event()

    def send_paced():
        t0 = time.monotonic()
        i = 0
        while i < len(tags) and not stop.is_set():
            due = tags[i][1] / 1000.0
            now = time.monotonic() - t0
            if due > now:
                time.sleep(min(0.05, due - now))
                continue
            j = i
            while j < len(tags) and tags[j][1] / 1000.0 <= now:
                j += 1
            pub.send(tags[i:j])
            i = j

    sender = threading.Thread(target=send_paced, daemon=True)
    sender.start()
    try:
        h.wait_until(lambda: h.http_get(base + "master.m3u8")[0] == 200, 20, "master playlist")
        wait_segments(base, "160p")
        first = h.http_get(base + "master.m3u8")[1]
        assert "1080p/index.m3u8" not in first and "720p/index.m3u8" in first, first
        # Read across the switch (at 6 s) for 10 s with ffmpeg -xerror.
        p = read_through(base + "master.m3u8", 10, timeout=60)
        assert p.returncode == 0, p.stderr[-2000:]
        assert frames_out(p) >= 250, (frames_out(p), p.stderr[-500:])
        after = h.wait_until(lambda: (lambda b: b if "1080p/index.m3u8" in b else None)(
            h.http_get(base + "master.m3u8")[1]), 20, "1080p rung once the source is 1080p")
        assert "RESOLUTION=1920x1080" in after
        data, segs = fetch_rendition(base, "1080p")
        path = tmp_path / "1080p.mp4"
        path.write_bytes(data)
        rc, problems = h.decode_problems(path)
        assert rc == 0 and not problems, problems
        v = h.probe_streams(path)["video"]
        assert (v["width"], v["height"]) == (1920, 1080)
    finally:
        stop.set()
        sender.join(10)
        pub.close()


def publish_one_track(srv, clip, stream, flag, log):
    key = srv.create_key(stream)
    cmd = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "info", "-re", "-i", str(clip), flag, "-c", "copy",
           "-f", "flv", srv.url(key)]
    return h.Proc(cmd, log)


def test_audio_only_source_plays_through(make_server, procs, clip12, tmp_path):
    srv = h.start_origin(make_server, args=["--transcode.profile=default"])
    procs.add(publish_one_track(srv, clip12, "ao", "-vn", tmp_path / "pub.log"))
    base = f"{srv.origin}/live/ao/"
    body = h.wait_until(lambda: (lambda b: b if "#EXT-X-STREAM-INF" in b else None)(
        h.http_get(base + "master.m3u8")[1]), 20, "audio-only master")
    wait_segments(base, "audio")
    variants = master_variants(body)
    assert [v["uri"] for v in variants] == ["audio/index.m3u8"], body
    assert variants[0]["CODECS"] == "mp4a.40.2"
    p = h.run(["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-xerror", "-i", base + "master.m3u8", "-t", "4",
               "-f", "null", "-"], timeout=40)
    assert p.returncode == 0, p.stderr[-2000:]
    probe = h.ffprobe(base + "master.m3u8", "-show_streams", timeout=30)["streams"]
    assert [s["codec_type"] for s in probe] == ["audio"], probe


def test_video_only_source_plays_through(make_server, procs, clip12, tmp_path):
    srv = h.start_origin(make_server, args=["--transcode.profile=default"])
    procs.add(publish_one_track(srv, clip12, "vo", "-an", tmp_path / "pub.log"))
    base = f"{srv.origin}/live/vo/"
    body = h.wait_until(lambda: (lambda b: b if "160p/index.m3u8" in b else None)(
        h.http_get(base + "master.m3u8")[1]), 20, "video-only master")
    wait_segments(base, "160p")
    body = h.http_get(base + "master.m3u8")[1]
    variants = master_variants(body)
    assert [v["uri"] for v in variants] == [f"{n}/index.m3u8" for n in ("720p", "480p", "360p", "160p")], body
    assert all("AUDIO" not in v and "," not in v["CODECS"] for v in variants), body
    p = read_through(base + "master.m3u8", 4, timeout=40)
    assert p.returncode == 0, p.stderr[-2000:]
    assert frames_out(p) >= 100, p.stdout[-500:]


def test_stream_record_profile_chooses_the_ladder(make_server, procs, clip8, tmp_path):
    import sfapi
    # The server's default is passthrough (the harness's); one stream's record asks for a ladder.
    srv = h.start_origin(make_server, args=["--transcode.profiles=small=180p:320x180@30:300k:330k:ultrafast"])
    api = sfapi.Api(srv)
    keys = {"custom": api.ok("POST", "/api/streams", {"name": "custom", "profile": "small"}, expect=201)["key"]["key"],
            "plain": api.ok("POST", "/api/streams", {"name": "plain"}, expect=201)["key"]["key"]}
    time.sleep(1.5)  # the profiles are reread every auth.visibility_refresh (1 s)
    for n, k in keys.items():
        procs.add(h.ffmpeg_publish(clip8, srv.url(k), tmp_path / f"{n}.log"))

    def master(stream, needle):
        body = h.http_get(f"{srv.origin}/live/{stream}/master.m3u8")[1]
        return body if needle in body else None

    custom = h.wait_until(lambda: master("custom", "180p/index.m3u8"), 20, "the small ladder")
    assert "RESOLUTION=320x180" in custom and "video/index.m3u8" not in custom, custom
    plain = h.wait_until(lambda: master("plain", "video/index.m3u8"), 20, "the source passed through")
    assert "RESOLUTION=1280x720" in plain and "180p" not in plain, plain


# ---- audio that is not AAC, or AAC re-encoded on request -----------------------------------------

SMALL = ["--transcode.profiles=small=180p:320x180@30:300k:330k:ultrafast", "--transcode.profile=small",
         "--transcode.max_lag=10s", "--origin.window_segments=20"]


def first_last_pts(packets):
    times = [p["pts"] for p in packets if p["pts"] is not None]
    return min(times), max(times)


@pytest.mark.parametrize("case,server_args,audio_args", [
    ("mp3", [], ["-c:a", "libmp3lame", "-ar", "44100", "-b:a", "128k"]),
    ("aac-mono-44k", ["--transcode.audio=aac"], ["-c:a", "aac", "-ar", "44100", "-ac", "1", "-b:a", "64k"]),
], ids=["mp3-source", "aac-44k-mono-forced"])
def test_audio_reencoded_to_aac_48k_stereo(make_server, procs, clip12, tmp_path, case, server_args, audio_args):
    srv = h.start_origin(make_server, args=[*SMALL, *server_args])
    key = srv.create_key("au")
    base = f"{srv.origin}/live/au/"
    pub = procs.add(h.Proc(["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "info", "-re", "-i", str(clip12),
                            "-c:v", "copy", *audio_args, "-f", "flv", srv.url(key)], tmp_path / "pub.log"))
    body = h.wait_until(lambda: (lambda b: b if "#EXT-X-MEDIA:TYPE=AUDIO" in b else None)(
        h.http_get(base + "master.m3u8")[1]), 20, "an audio rendition in the master playlist")
    variants = master_variants(body)
    assert [v["CODECS"].split(",")[1] for v in variants] == ["mp4a.40.2"], body
    wait_segments(base, "audio", count=3)
    # A real player reads video and audio through the multivariant playlist with no error.
    p = h.run(["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-xerror", "-i", base + "master.m3u8",
               "-map", "0:v", "-map", "0:a", "-t", "4", "-f", "null", "-progress", "pipe:1", "-"], timeout=60)
    assert p.returncode == 0, p.stderr[-2000:]
    assert frames_out(p) >= 100, p.stdout[-500:]
    pub.wait(40)
    lists = {n: h.MediaPlaylist(h.http_get(f"{base}{n}/index.m3u8")[1]) for n in ("180p", "audio")}
    common = set.intersection(*[{s["msn"] for s in pl.segments if s.get("uri")} for pl in lists.values()])
    common.discard(min(common))
    assert len(common) >= 3, lists
    files = {}
    for n in ("180p", "audio"):
        data, _ = fetch_rendition(base, n, common)
        files[n] = tmp_path / f"{n}.mp4"
        files[n].write_bytes(data)
    a = h.probe_streams(files["audio"])["audio"]
    assert (a["codec_name"], a["profile"], int(a["sample_rate"]), a["channels"]) == ("aac", "LC", 48000, 2), a
    rc, problems = h.decode_problems(files["audio"])
    assert rc == 0 and not problems, problems
    # Audio and video cover the same media time: same start (within 100 ms) and, after several
    # segments, the same end (no drift).
    v0, v1 = first_last_pts(h.video_packets(files["180p"]))
    apk = h.audio_packets(files["audio"])
    a0, a1 = first_last_pts(apk)
    assert abs(a0 - v0) <= 100, (a0, v0)
    assert abs(a1 - v1) <= 100, (a1, v1)
    steps = {b["pts"] - a["pts"] for a, b in zip(apk, apk[1:])}
    assert steps <= {21, 22}, steps  # 1024 samples at 48 kHz, in whole ms: no gaps, no overlaps
    assert srv.logs("audio re-encoded to AAC-LC 48 kHz stereo", component="transcode")


# ---- variable frame rate -------------------------------------------------------------------------

def vfr_clip(tmp_path):
    """16 s of 640x360 with noise (hard to compress: the encoder can spend its whole budget), every
    2 s: one second at 30 fps, then one at 10 fps (20 fps on average; the smallest step says 30)."""
    path = tmp_path / "vfr.flv"
    h.run(["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
           "testsrc2=size=640x360:rate=30,noise=alls=24:allf=t+u,"
           "select='lt(mod(n\\,60)\\,30)+not(mod(n\\,3))'", "-t", "16", "-fps_mode", "vfr",
           "-c:v", "libx264", "-preset", "ultrafast", "-b:v", "3000k", "-g", "60", "-an", "-f", "flv", str(path)],
          timeout=120, check=True)
    return path


def test_vfr_source_rung_bitrate_within_10_percent_of_declared(make_server, procs, tmp_path):
    clip = vfr_clip(tmp_path)
    pk = h.video_packets(clip)
    steps = sorted({b["pts"] - a["pts"] for a, b in zip(pk, pk[1:])})
    assert steps[0] <= 34 and steps[-1] >= 99, steps  # the source really is VFR
    srv = h.start_origin(make_server, args=["--transcode.profiles=vfr=360p:640x360@30:600k:660k:veryfast",
                                            "--transcode.profile=vfr", "--transcode.max_lag=10s",
                                            "--origin.window_segments=20"])
    key = srv.create_key("vfr")
    base = f"{srv.origin}/live/vfr/"
    pub = procs.add(h.ffmpeg_publish(clip, srv.url(key), tmp_path / "pub.log"))
    wait_segments(base, "360p", count=1, timeout=30)
    pub.wait(40)
    pl = h.MediaPlaylist(h.http_get(f"{base}360p/index.m3u8")[1])
    msns = sorted(s["msn"] for s in pl.segments if s.get("uri"))
    assert len(msns) >= 6, msns
    data, segs = fetch_rendition(base, "360p", set(msns[1:-1]))  # whole segments (not the first or last)
    declared = int(next(v for v in master_variants(h.http_get(base + "master.m3u8")[1]))["BANDWIDTH"])
    measured = sum(b for _, _, b in segs) * 8 / sum(d for _, d, _ in segs)
    print(f"\nVFR 360p: declared {declared}, measured {measured:.0f} ({measured / declared:.3f})")
    assert 0.9 * declared <= measured <= 1.1 * declared, (measured, declared, segs)
    path = tmp_path / "360p.mp4"
    path.write_bytes(data)
    out = h.video_packets(path)
    out_steps = sorted({b["pts"] - a["pts"] for a, b in zip(out, out[1:])})
    assert out_steps[-1] >= 99, out_steps  # the rung keeps the source's timing (no frames invented)
