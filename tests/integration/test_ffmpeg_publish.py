"""ffmpeg publishes 10 s of 1280x720@30 H.264 + AAC; ingest reports it live and records it intact.

One publish per module (the scenario fixture); each test checks one behaviour of that publish.
"""
import re
import types

import pytest

import sfharness as h

STREAM = "cam1"


@pytest.fixture(scope="module")
def source(clip10):
    return types.SimpleNamespace(path=clip10, streams=h.probe_streams(clip10), video=h.video_packets(clip10),
                                 audio=h.audio_packets(clip10), keyframes=h.keyframe_pts(clip10))


@pytest.fixture(scope="module")
def publish(module_servers, module_procs, clip10, tmp_path_factory):
    """Runs the publish once; records what each step saw, or the error that stopped it."""
    r = types.SimpleNamespace(errors=[], snap=None, metrics_live=None, metrics_after=None, rc=None, stopped=None,
                              recording=None)
    srv = module_servers()
    r.srv = srv
    key = srv.create_key(STREAM)
    r.key = key
    work = tmp_path_factory.mktemp("ffmpeg")
    pub = module_procs.add(h.ffmpeg_publish(clip10, srv.url(key), work / "ffmpeg.log"))
    r.ffmpeg = pub
    try:
        srv.wait_live(STREAM, timeout=10)

        # Sample once ~5 s of media arrived, so the per-second rates have settled.
        def settled():
            s = srv.stream(STREAM)
            return s if s and s["stats"]["video_frames"] >= 150 else None

        r.snap = h.wait_until(settled, 15, "150 video frames in /ingest/streams")
        r.metrics_live = srv.metrics()
    except Exception as e:  # the checks that need this data fail with the reason
        r.errors.append(f"while live: {e!r}")
    try:
        r.rc = pub.wait(30)
        r.stopped = srv.wait_log("publish stopped", 10, stream=STREAM)
        r.metrics_after = srv.metrics()
        r.recording = srv.wait_recording_closed(STREAM, timeout=10)[0]
    except Exception as e:
        r.errors.append(f"after publish: {e!r}")
    return r


def need(r, attr):
    v = getattr(r, attr)
    assert v is not None, f"{attr} missing: {r.errors}\nserver log:\n{r.srv.log_tail()}\nffmpeg:\n{r.ffmpeg.tail()}"
    return v


def test_ffmpeg_publish_completes_with_exit_0(publish):
    assert need(publish, "rc") == 0, publish.ffmpeg.tail()


def test_streams_reports_h264_video_matching_source(publish, source):
    v = need(publish, "snap")["video"]
    src = source.streams["video"]
    assert v["codec"] == "h264"
    assert (v["width"], v["height"]) == (1280, 720) == (src["width"], src["height"])
    assert v["profile"] == h.H264_PROFILES[src["profile"]]
    assert v["level"] == src["level"]
    assert re.fullmatch(r"avc1\.%02x[0-9a-f]{2}%02x" % (v["profile"], v["level"]), v["codec_string"].lower()), v


def test_streams_reports_aac_48k_stereo(publish, source):
    a = need(publish, "snap")["audio"]
    assert a["codec"] == "aac"
    assert a["codec_string"] == "mp4a.40.2"
    assert a["sample_rate"] == 48000 == int(source.streams["audio"]["sample_rate"])
    assert a["channels"] == 2 == source.streams["audio"]["channels"]


def test_streams_reports_30_fps_and_1s_keyframe_interval(publish):
    st = need(publish, "snap")["stats"]
    assert 27 <= st["fps"] <= 33, st
    assert 0.95 <= st["keyframe_interval_s"] <= 1.05, st
    assert st["keyframes"] >= 4, st
    assert st["bitrate_bps"] > 500_000, st
    assert st["dropped_frames"] == 0 and st["late_frames"] == 0 and st["timestamp_jumps"] == 0, st


def test_streams_reports_publisher_without_the_key(publish):
    s = need(publish, "snap")
    assert s["stream"] == STREAM and s["app"] == "live"
    assert s["remote"].startswith("127.0.0.1:")
    assert s["encoder"].startswith("Lavf"), s["encoder"]
    assert s["key_id"] and publish.key not in str(s)


def test_metrics_export_live_stream(publish):
    m = need(publish, "metrics_live")
    assert not m.bad_lines, m.bad_lines
    assert m.get("streamflex_ingest_publishers_active") == 1
    assert m.get("streamflex_ingest_streams_live") == 1
    assert m.get("streamflex_ingest_publish_total", result="accepted") == 1
    assert m.get("streamflex_ingest_connections_active") >= 1
    assert m.get("streamflex_ingest_connections_total") >= 1
    assert m.get("streamflex_ingest_handshakes_total", mode="plain") + \
        m.get("streamflex_ingest_handshakes_total", mode="digest") >= 1
    assert 27 <= m.get("streamflex_ingest_stream_fps", stream=STREAM) <= 33
    assert 0.95 <= m.get("streamflex_ingest_stream_keyframe_interval_seconds", stream=STREAM) <= 1.05
    assert m.get("streamflex_ingest_stream_video_frames_total", stream=STREAM) >= 150
    assert m.get("streamflex_ingest_stream_audio_frames_total", stream=STREAM) > 0
    assert m.get("streamflex_ingest_stream_bytes_total", stream=STREAM) > 0
    assert m.get("streamflex_ingest_stream_bitrate_bps", stream=STREAM) > 0
    for name in ("dropped_frames_total", "late_frames_total", "timestamp_jumps_total"):
        assert m.has(f"streamflex_ingest_stream_{name}", stream=STREAM), name


def test_ffmpeg_handshake_counted_as_digest(publish):
    # FFmpeg signs C1 (the Flash Player 9 scheme); the server must answer in kind and count it so.
    m = need(publish, "metrics_live")
    assert m.get("streamflex_ingest_handshakes_total", mode="digest") == 1, m.text
    assert m.get("streamflex_ingest_handshakes_total", mode="plain") == 0, m.text


def test_metrics_drop_stream_after_publish(publish):
    m = need(publish, "metrics_after")
    assert m.get("streamflex_ingest_publishers_active") == 0
    assert m.get("streamflex_ingest_streams_live") == 0
    assert not m.has("streamflex_ingest_stream_fps", stream=STREAM)


def test_publish_stopped_logged_with_reason_and_counts(publish, source):
    stopped = need(publish, "stopped")
    assert stopped["reason"] in ("unpublished", "disconnected"), stopped
    assert abs(stopped["video_frames"] - len(source.video)) <= 0.02 * len(source.video), stopped
    assert abs(stopped["audio_frames"] - len(source.audio)) <= 0.02 * len(source.audio), stopped


def test_track_configured_logged_for_both_tracks(publish):
    need(publish, "snap")
    tracks = publish.srv.logs("track configured", stream=STREAM)
    video = [t for t in tracks if t.get("codec") == "h264"]
    audio = [t for t in tracks if t.get("codec") == "aac"]
    assert video and video[0]["width"] == 1280 and video[0]["height"] == 720, video
    # "level" is the log line's own severity field, so the H.264 values are *_idc here.
    assert video[0]["profile_idc"] == 100 and video[0]["level_idc"] == 31, video
    assert video[0]["codec_string"].lower() == "avc1.64001f", video
    assert audio and audio[0]["sample_rate"] == 48000 and audio[0]["channels"] == 2


def test_recording_has_source_codecs_and_resolution(publish, source):
    rec = h.probe_streams(need(publish, "recording"))
    v, a = rec["video"], rec["audio"]
    assert v["codec_name"] == "h264" and (v["width"], v["height"]) == (1280, 720)
    assert v["profile"] == source.streams["video"]["profile"] and v["level"] == source.streams["video"]["level"]
    assert a["codec_name"] == "aac" and int(a["sample_rate"]) == 48000 and a["channels"] == 2


def test_recording_video_frame_count_within_2_percent(publish, source):
    got = len(h.video_packets(need(publish, "recording")))
    want = len(source.video)
    assert abs(got - want) <= 0.02 * want, (got, want)


def test_recording_dts_monotonic(publish):
    path = need(publish, "recording")
    vd = [p["dts"] for p in h.video_packets(path)]
    ad = [p["dts"] for p in h.audio_packets(path)]
    assert h.is_non_decreasing(vd), [(i, a, b) for i, (a, b) in enumerate(zip(vd, vd[1:])) if b < a][:5]
    assert h.is_non_decreasing(ad), [(i, a, b) for i, (a, b) in enumerate(zip(ad, ad[1:])) if b < a][:5]


def test_recording_keyframes_at_source_times(publish, source):
    rec = h.video_packets(need(publish, "recording"))
    src = source.video
    # Timelines may start at a different origin: compare times from each file's first video dts.
    rel = lambda pk: [p["pts"] - pk[0]["dts"] for p in pk if p["key"]]
    got, want = rel(rec), rel(src)
    assert len(got) == len(want), (got, want)
    assert all(abs(g - w) <= 2 for g, w in zip(got, want)), (got, want)


def test_recording_decoded_keyframes_at_source_times(publish, source):
    path = need(publish, "recording")
    got = h.keyframe_pts(path)
    want = source.keyframes
    got0 = h.video_packets(path)[0]["dts"]
    want0 = source.video[0]["dts"]
    got = [t - got0 for t in got]
    want = [t - want0 for t in want]
    assert len(got) == len(want) and all(abs(g - w) <= 2 for g, w in zip(got, want)), (got, want)


def test_recording_decodes_without_errors(publish):
    rc, problems = h.decode_problems(need(publish, "recording"))
    assert rc == 0 and not problems, problems
