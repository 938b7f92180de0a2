"""CMAF ingest at the origin role: ffmpeg pushes CMAF over HTTP, the origin re-packages it as
LL-HLS, and ffmpeg reads it back. Both DASH-IF ingest modes: one request per object (ffmpeg's
dash muxer with -method PUT) and a long-running chunked POST (a fragmented MP4)."""
import subprocess
import urllib.error
import urllib.request

import pytest

import sfharness as h

SECRET = "ingest-secret-7f3a"


def origin_server(make_server):
    port, admin = h.free_port(), h.free_port()
    srv = make_server(role="origin", start=False, defaults=False,
                      args=[f"--admin.listen={h.HOST}:{admin}", f"--origin.listen={h.HOST}:{port}",
                            f"--origin.ingest_secret={SECRET}", "--origin.ingest_idle=3s"])
    srv.admin_port = admin
    srv.origin = f"http://{h.HOST}:{port}"
    srv.start()
    return srv


def encoder(clip, output_args, url, log_path):
    cmd = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-re", "-i", str(clip), "-t", "8",
           "-c", "copy", *output_args, url]
    return h.Proc(cmd, log_path)


def wait_playable(srv, stream, segments=2, timeout=15):
    def ready():
        status, _, body = h.http_request(f"{srv.origin}/live/{stream}/video/index.m3u8")
        return status == 200 and body.decode().count("#EXTINF") >= segments
    h.wait_until(ready, timeout, f"{stream} has {segments} segments")


def read_back(srv, stream):
    p = subprocess.run(["ffmpeg", "-v", "error", "-xerror", "-i", f"{srv.origin}/live/{stream}/master.m3u8",
                        "-t", "3", "-f", "null", "-"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    probe = h.ffprobe(f"{srv.origin}/live/{stream}/master.m3u8", "-show_streams")
    codecs = sorted(s["codec_name"] for s in probe["streams"])
    assert "h264" in codecs and "aac" in codecs, codecs


@pytest.mark.parametrize("mode", ["per_object_put", "long_running_post"])
def test_pushed_cmaf_plays_as_ll_hls(make_server, procs, clip10, tmp_path, mode):
    srv = origin_server(make_server)
    stream = mode.replace("_", "-")
    if mode == "per_object_put":
        # The secret as a path component: ffmpeg's dash muxer cannot add headers.
        out = ["-f", "dash", "-method", "PUT", "-seg_duration", "1", "-use_template", "1", "-use_timeline", "0"]
        url = f"{srv.origin}/ingest/{stream}/{SECRET}/manifest.mpd"
    else:
        out = ["-f", "mp4", "-movflags", "empty_moov+frag_keyframe+default_base_moof", "-frag_duration", "500000",
               "-method", "POST", "-headers", f"Authorization: Bearer {SECRET}\r\n"]
        url = f"{srv.origin}/ingest/{stream}/live.mp4"
    procs.add(encoder(clip10, out, url, tmp_path / "encoder.log"))
    wait_playable(srv, stream)
    read_back(srv, stream)
    playlist = h.http_request(f"{srv.origin}/live/{stream}/video/index.m3u8")[2].decode()
    assert "#EXT-X-PART:" in playlist and "#EXT-X-PRELOAD-HINT" in playlist


def test_wrong_secret_is_refused_before_the_body(make_server):
    srv = origin_server(make_server)
    status, _, _ = h.http_request(f"{srv.origin}/ingest/x/not-the-secret/init.mp4", method="PUT")
    assert status == 403
    status, _, _ = h.http_request(f"{srv.origin}/ingest/x/init.mp4", method="PUT",
                                  headers={"Authorization": "Bearer wrong"})
    assert status == 403
    assert h.http_request(f"{srv.origin}/live/x/master.m3u8")[0] == 404


def test_garbage_body_is_refused_and_the_origin_keeps_serving(make_server, procs, clip10, tmp_path):
    srv = origin_server(make_server)
    out = ["-f", "mp4", "-movflags", "empty_moov+frag_keyframe+default_base_moof", "-frag_duration", "500000",
           "-method", "POST", "-headers", f"Authorization: Bearer {SECRET}\r\n"]
    procs.add(encoder(clip10, out, f"{srv.origin}/ingest/good/live.mp4", tmp_path / "encoder.log"))
    bad = urllib.request.Request(f"{srv.origin}/ingest/bad/x.m4s", method="PUT",
                                 data=b"\x00\x00\x00\x04moof" + b"\xff" * 5000,
                                 headers={"Authorization": f"Bearer {SECRET}"})
    try:
        urllib.request.urlopen(bad, timeout=5)
        status = 200
    except urllib.error.HTTPError as e:
        status = e.code
    assert status == 400
    wait_playable(srv, "good")
    read_back(srv, "good")


def first_pts(url, stream_spec):
    """Presentation time (s) of the first packet of `stream_spec` ("v:0", "a:0") in `url`."""
    probe = h.ffprobe(url, "-select_streams", stream_spec, "-show_packets", "-read_intervals", "%+#20",
                      "-show_entries", "packet=pts_time")
    return min(float(p["pts_time"]) for p in probe["packets"])


def test_edit_lists_keep_audio_and_video_in_sync(make_server, procs, clip10, tmp_path):
    # ffmpeg's dash muxer gives the B-frame video an edit list starting it 2 frames into its media
    # and the AAC one skipping its 1024 priming samples: applied, the origin's audio and video
    # start as far apart as in the source (unapplied, video would be ~40 ms late).
    srv = origin_server(make_server)
    out = ["-f", "dash", "-method", "PUT", "-seg_duration", "1", "-use_template", "1", "-use_timeline", "0"]
    procs.add(encoder(clip10, out, f"{srv.origin}/ingest/sync/{SECRET}/manifest.mpd", tmp_path / "encoder.log"))
    wait_playable(srv, "sync")
    source = first_pts(clip10, "v:0") - first_pts(clip10, "a:0")
    playlists = {"v:0": f"{srv.origin}/live/sync/video/index.m3u8"}
    master = h.http_request(f"{srv.origin}/live/sync/master.m3u8")[2].decode()
    audio_uri = next(line.split('URI="')[1].split('"')[0] for line in master.splitlines()
                     if line.startswith("#EXT-X-MEDIA:TYPE=AUDIO"))
    playlists["a:0"] = f"{srv.origin}/live/sync/{audio_uri}"
    for url in playlists.values():
        assert "#EXT-X-MEDIA-SEQUENCE:0\n" in h.http_request(url)[2].decode()  # still from the first segment
    served = first_pts(playlists["v:0"], "v:0") - first_pts(playlists["a:0"], "a:0")
    assert abs(served - source) < 0.005, f"video - audio start: source {source:.4f} s, served {served:.4f} s"
