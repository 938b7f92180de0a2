"""GStreamer publishes ~5 s of H.264 + AAC through rtmp2sink (native) and rtmpsink (librtmp).

One publish per sink (module fixture, parametrized); each test checks one behaviour of it.
"""
import shutil
import types

import pytest

import sfharness as h

VIDEO_BUFFERS = 150  # 5 s at 30 fps
AUDIO_BUFFERS = 235  # 5 s of 1024-sample buffers at 48 kHz
GOP = 30


def has_element(name):
    return shutil.which("gst-inspect-1.0") and h.run(["gst-inspect-1.0", name], timeout=30).returncode == 0


def pipeline(sink, url, copy_path):
    """The publisher; a tee also writes exactly what is sent to `copy_path`, the reference."""
    location = f"location={url} live=1" if sink == "rtmpsink" else f"location={url}"
    return ["gst-launch-1.0", "-e",
            "flvmux", "name=mux", "streamable=true", "!", "tee", "name=t",
            "!", "queue", "!", sink, location,
            "t.", "!", "queue", "!", "filesink", f"location={copy_path}",
            "videotestsrc", "is-live=true", f"num-buffers={VIDEO_BUFFERS}", "!",
            "video/x-raw,width=1280,height=720,framerate=30/1", "!",
            "x264enc", "tune=zerolatency", "speed-preset=veryfast", f"key-int-max={GOP}",
            "option-string=scenecut=0", "!",
            "h264parse", "!", "queue", "!", "mux.",
            "audiotestsrc", "is-live=true", f"num-buffers={AUDIO_BUFFERS}", "samplesperbuffer=1024", "!",
            "audio/x-raw,rate=48000,channels=2", "!", "audioconvert", "!", "audioresample", "!",
            "avenc_aac", "!", "aacparse", "!", "queue", "!", "mux."]


@pytest.fixture(scope="module", params=["rtmp2sink", "rtmpsink"])
def publish(request, module_servers, module_procs, tmp_path_factory):
    sink = request.param
    if not has_element(sink):
        pytest.skip(f"GStreamer element {sink} not installed")
    stream = f"gst_{sink}"
    r = types.SimpleNamespace(sink=sink, stream=stream, errors=[], snap=None, rc=None, stopped=None, recording=None)
    srv = module_servers()
    r.srv = srv
    key = srv.create_key(stream)
    work = tmp_path_factory.mktemp(sink)
    r.sent = work / "sent.flv"
    gst = module_procs.add(h.Proc(pipeline(sink, srv.url(key), r.sent), work / "gst.log"))
    r.gst = gst
    try:
        r.snap = srv.wait_live(stream, timeout=20)
    except Exception as e:
        r.errors.append(f"while live: {e!r}")
    try:
        r.rc = gst.wait(60)
        r.stopped = srv.wait_log("publish stopped", 10, stream=stream)
        r.recording = srv.wait_recording_closed(stream, timeout=10)[0]
    except Exception as e:
        r.errors.append(f"after publish: {e!r}")
    return r


def need(r, attr):
    v = getattr(r, attr)
    assert v is not None, f"{r.sink}: {attr} missing: {r.errors}\nserver log:\n{r.srv.log_tail()}\ngst:\n{r.gst.tail()}"
    return v


def test_gstreamer_publish_completes_with_exit_0(publish):
    assert need(publish, "rc") == 0, publish.gst.tail()


def test_streams_reports_h264_720p_and_aac_48k_stereo(publish):
    s = need(publish, "snap")
    assert s["video"]["codec"] == "h264" and (s["video"]["width"], s["video"]["height"]) == (1280, 720), s
    assert s["video"]["codec_string"].lower().startswith("avc1."), s
    assert s["audio"]["codec"] == "aac" and s["audio"]["sample_rate"] == 48000 and s["audio"]["channels"] == 2, s


def test_recording_has_h264_720p_and_aac_48k_stereo(publish):
    rec = h.probe_streams(need(publish, "recording"))
    v, a = rec["video"], rec["audio"]
    assert v["codec_name"] == "h264" and (v["width"], v["height"]) == (1280, 720), v
    assert a["codec_name"] == "aac" and int(a["sample_rate"]) == 48000 and a["channels"] == 2, a


def test_recording_video_frame_count_within_2_percent(publish):
    got = len(h.video_packets(need(publish, "recording")))
    assert abs(got - VIDEO_BUFFERS) <= 0.02 * VIDEO_BUFFERS, got


def test_publish_stopped_counts_all_video_frames(publish):
    stopped = need(publish, "stopped")
    assert abs(stopped["video_frames"] - VIDEO_BUFFERS) <= 0.02 * VIDEO_BUFFERS, stopped
    assert stopped["reason"] in ("unpublished", "disconnected"), stopped


def test_recording_dts_monotonic(publish):
    path = need(publish, "recording")
    for dts in ([p["dts"] for p in h.video_packets(path)], [p["dts"] for p in h.audio_packets(path)]):
        assert h.is_non_decreasing(dts), [(i, a, b) for i, (a, b) in enumerate(zip(dts, dts[1:])) if b < a][:5]


def test_recording_keyframes_every_30_frames(publish):
    pk = h.video_packets(need(publish, "recording"))
    assert pk[0]["key"], "recording must start with a keyframe"
    idx = [i for i, p in enumerate(pk) if p["key"]]
    assert [b - a for a, b in zip(idx, idx[1:])] == [GOP] * (len(idx) - 1), idx
    assert len(idx) == -(-len(pk) // GOP), idx


def test_recording_keyframes_at_sent_times(publish):
    rec = h.video_packets(need(publish, "recording"))
    sent = h.video_packets(publish.sent)  # what the tee wrote: exactly what went to the server
    rel = lambda pk: [p["pts"] - pk[0]["dts"] for p in pk if p["key"]]
    got, want = rel(rec), rel(sent)
    assert len(got) == len(want) and all(abs(g - w) <= 2 for g, w in zip(got, want)), (got, want)


def test_recording_has_every_sent_frame_at_its_time(publish):
    rec = h.video_packets(need(publish, "recording"))
    sent = h.video_packets(publish.sent)
    got = [p["dts"] - rec[0]["dts"] for p in rec]
    want = [p["dts"] - sent[0]["dts"] for p in sent]
    assert len(got) == len(want), (len(got), len(want))
    assert all(abs(g - w) <= 2 for g, w in zip(got, want)), [(i, g, w) for i, (g, w) in enumerate(zip(got, want))
                                                            if abs(g - w) > 2][:10]


def test_recording_decodes_without_errors(publish):
    rc, problems = h.decode_problems(need(publish, "recording"))
    # Live-source timestamps can repeat (the null muxer warns); the sent copy shows what is the client's.
    _, sent_problems = h.decode_problems(publish.sent)
    assert rc == 0 and problems <= sent_problems, (problems - sent_problems)
