"""Enhanced RTMP audio (Opus, AC-3, E-AC-3, FLAC) into the ladder, with packets real encoders made.

ffmpeg 5.1 cannot write E-RTMP audio, so the test publishes with the project's RTMP client: H.264
video tags from an FLV ffmpeg made, and audio packets ffmpeg encoded (libopus and flac into Ogg,
split into packets; ac3 and eac3 as raw sync frames, split by their headers), wrapped as E-RTMP
audio tags (SoundFormat 9, FourCC) and sent at the pace of their timestamps. The origin's audio
rendition must be AAC-LC, 48 kHz, stereo, as long as what was published (within two AAC frames),
start with the video, and decode with ffmpeg -xerror; with a source rung in the ladder too. A
stream with the passthrough profile gets the same AAC audio (Opus, AC-3, and legacy MP3 from
ffmpeg's FLV) beside its video, which stays as published (codec string, size, every frame). The relay carries Opus to a transcode role on its own, and the connect answer lists the
audio FourCCs.
"""
import socket
import struct
import threading
import time

import pytest

import sfharness as h

SECONDS = 10
SMALL = ["--transcode.profiles=small=180p:320x180@30:300k:330k:ultrafast", "--transcode.profile=small",
         "--transcode.max_lag=10s", "--origin.window_segments=30"]
AAC_FRAME_MS = 1024 * 1000 / 48000

AC3_KBPS = [32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 448, 512, 576, 640]
AUDIO_SEQUENCE_START, AUDIO_CODED_FRAMES = 0, 1


def ex_audio_tag(packet_type, fourcc, payload):
    """An E-RTMP audio tag body: SoundFormat 9 (ExHeader) | AudioPacketType, FourCC, payload."""
    return bytes([0x90 | packet_type]) + fourcc + payload


def ogg_packets(data):
    """The packets of a single-stream Ogg file (RFC 3533: pages, lacing values of 255 continue)."""
    packets, cur, pos = [], b"", 0
    for _ in range(1000000):
        if pos >= len(data):
            break
        assert data[pos:pos + 4] == b"OggS", pos
        nseg = data[pos + 26]
        table = data[pos + 27:pos + 27 + nseg]
        body = pos + 27 + nseg
        for lace in table:
            cur += data[body:body + lace]
            body += lace
            if lace < 255:
                packets.append(cur)
                cur = b""
        pos = body
    return packets


def opus_samples(packet):
    """Samples at 48 kHz in an Opus packet, from its TOC byte (RFC 6716 3.1)."""
    config, code = packet[0] >> 3, packet[0] & 3
    if config < 12:
        frame = (480, 960, 1920, 2880)[config % 4]
    elif config < 16:
        frame = (480, 960)[config % 2]
    else:
        frame = (120, 240, 480, 960)[config % 4]
    count = 1 if code == 0 else 2 if code in (1, 2) else packet[1] & 0x3F
    return frame * count


def ac3_frames(data):
    """[(sync frame, samples)] of a raw AC-3 or E-AC-3 stream (A/52 5.4.1, E.1.2.2)."""
    frames, pos = [], 0
    for _ in range(1000000):
        if pos + 7 > len(data):
            break
        assert data[pos:pos + 2] == b"\x0b\x77", pos
        if data[pos + 5] >> 3 <= 10:
            assert data[pos + 4] >> 6 == 0, "48 kHz only"
            size, samples = 4 * AC3_KBPS[(data[pos + 4] & 0x3F) >> 1], 1536
        else:
            size = ((((data[pos + 2] & 7) << 8) | data[pos + 3]) + 1) * 2
            fscod, code = data[pos + 4] >> 6, (data[pos + 4] >> 4) & 3
            samples = 256 * (6 if fscod == 3 else (1, 2, 3, 6)[code])
        frames.append((data[pos:pos + size], samples))
        pos += size
    assert pos == len(data), (pos, len(data))
    return frames


def encode(tmp_path, name, args, fmt):
    """SECONDS of a 440 Hz tone encoded by ffmpeg; the output file's bytes."""
    out = tmp_path / f"{name}.{fmt}"
    h.run(["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
           f"sine=frequency=440:sample_rate=48000:duration={SECONDS}", *args, "-f", fmt, str(out)],
          timeout=60, check=True)
    return out.read_bytes()


def audio_source(tmp_path, codec):
    """(FourCC, sequence header tags [(ts, body)], coded frame tags, published duration in ms)."""
    def timed(packets, rate):
        tags, at = [], 0
        for payload, samples in packets:
            tags.append((round(at * 1000 / rate), ex_audio_tag(AUDIO_CODED_FRAMES, fourcc, payload)))
            at += samples
        return tags, at * 1000 / rate

    if codec == "opus":
        fourcc = b"Opus"
        pk = ogg_packets(encode(tmp_path, codec, ["-ac", "2", "-c:a", "libopus", "-b:a", "96k"], "ogg"))
        assert pk[0].startswith(b"OpusHead") and pk[1].startswith(b"OpusTags"), pk[:2]
        # E-RTMP v2: SequenceStart carries the ID header or the comment header; send both.
        headers = [ex_audio_tag(AUDIO_SEQUENCE_START, fourcc, pk[0]), ex_audio_tag(AUDIO_SEQUENCE_START, fourcc, pk[1])]
        tags, ms = timed([(p, opus_samples(p)) for p in pk[2:]], 48000)
    elif codec in ("ac3", "eac3"):
        fourcc = b"ac-3" if codec == "ac3" else b"ec-3"
        args = ["-ac", "2", "-c:a", "ac3", "-b:a", "192k"] if codec == "ac3" else \
            ["-af", "pan=5.1|c0=c0|c1=c0|c2=c0|c3=c0|c4=c0|c5=c0", "-c:a", "eac3", "-b:a", "256k"]
        headers = []  # AC-3 and E-AC-3 need none: every sync frame says its configuration
        tags, ms = timed(ac3_frames(encode(tmp_path, codec, args, codec)), 48000)
    elif codec == "flac":
        fourcc = b"fLaC"
        pk = ogg_packets(encode(tmp_path, codec, ["-ar", "44100", "-ac", "2", "-c:a", "flac"], "ogg"))
        # Ogg FLAC mapping: 0x7F "FLAC", version, header count, then "fLaC" and the STREAMINFO block.
        assert pk[0][:5] == b"\x7fFLAC" and pk[0][9:13] == b"fLaC", pk[0][:16]
        streaminfo = pk[0][17:17 + 34]
        block, max_block = struct.unpack(">HH", streaminfo[:4])
        assert block == max_block, "fixed block size"
        frames = [p for p in pk[1:] if p[:2] in (b"\xff\xf8", b"\xff\xf9")]
        headers = [ex_audio_tag(AUDIO_SEQUENCE_START, fourcc, pk[0][9:])]
        tags, _ = timed([(p, block) for p in frames], 44100)
        ms = SECONDS * 1000.0  # the last frame is short: the tone's length is what was published
    else:
        raise AssertionError(codec)
    return headers, tags, ms


def publish_paced(port, key, video, audio_headers, audio, lead_ms=0, timeout=SECONDS + 30):
    """Sends the tags in timestamp order, each no earlier than its timestamp minus `lead_ms` after the
    start (an encoder's pace); the audio sequence headers go first with the first video tag."""
    tags = sorted([(ts, 9, body) for ts, body in video] + [(ts, 8, body) for ts, body in audio],
                  key=lambda t: (t[0], t[1]))
    pub = h.TagPublisher(port, key)
    try:
        pub.send([(8, 0, body) for body in audio_headers])
        start = time.monotonic()
        i = 0
        for _ in range(100000):
            if i >= len(tags):
                break
            elapsed = (time.monotonic() - start) * 1000
            assert elapsed < timeout * 1000, "publishing took too long"
            batch = []
            while i < len(tags) and tags[i][0] <= elapsed + lead_ms:
                ts, ttype, body = tags[i]
                batch.append((ttype, ts, body))
                i += 1
            if batch:
                pub.send(batch)
            time.sleep(0.02)
        assert i == len(tags), "not every tag was sent"
        # An orderly end: closing with the server's messages unread would reset the connection and
        # could lose the last tags still in the server's receive buffer.
        pub.client.sock.shutdown(socket.SHUT_WR)
        pub.client.read_until_closed(10)
    finally:
        pub.close()


def video_tags(clip):
    return [(ts, body) for ttype, ts, body in h.flv_tags(clip) if ttype == 9]


def fetch_all(base, name, path):
    """Init + every segment of an ended rendition, written to `path`."""
    status, body, _ = h.http_get(f"{base}{name}/index.m3u8")
    assert status == 200, (name, status)
    pl = h.MediaPlaylist(body)
    data, init = bytearray(), None
    for s in pl.segments:
        if not s.get("uri"):
            continue
        if init is None:
            init = s["map"]
            st, _, b = h.http_request(f"{base}{name}/{init}")
            assert st == 200, (name, init, st)
            data += b
        st, _, b = h.http_request(f"{base}{name}/{s['uri']}", timeout=10)
        assert st == 200, (name, s["uri"], st)
        data += b
    assert init is not None, f"no segments in {name}: {body}"
    path.write_bytes(bytes(data))
    return path


# With a source rung (default-source's kind of ladder) the video is passed through beside the
# transcoded rungs; the audio is transcoded all the same.
WITH_SOURCE = ["--transcode.profiles=small=source,180p:320x180@30:300k:330k:ultrafast", *SMALL[1:]]


@pytest.mark.parametrize("codec,channels,args", [
    ("opus", 2, SMALL), ("ac3", 2, SMALL), ("eac3", 6, SMALL), ("flac", 2, SMALL), ("ac3", 2, WITH_SOURCE),
], ids=["opus", "ac3", "eac3-5.1", "flac-44k", "ac3-source-rung"])
def test_eRTMP_audio_becomes_aac_lc_48k_stereo(make_server, clip12, tmp_path, codec, channels, args):
    headers, audio, published_ms = audio_source(tmp_path, codec)
    video = [(ts, body) for ts, body in video_tags(clip12) if ts < published_ms]
    srv = h.start_origin(make_server, args=args)
    key = srv.create_key("ea")
    base = f"{srv.origin}/live/ea/"

    seen = {}

    def watch_ingest():
        # What ingest says about the live stream, read while it is live.
        for _ in range(int((SECONDS + 30) / 0.2)):
            try:
                s = srv.stream("ea")
            except (AssertionError, OSError):
                s = None
            if s and "audio" in s:
                seen.update(s)
                return
            time.sleep(0.2)

    watcher = threading.Thread(target=watch_ingest, daemon=True)
    watcher.start()
    publish_paced(srv.rtmp_port, key, video, headers, audio)
    watcher.join(timeout=5)
    assert seen.get("audio", {}).get("codec") == codec, seen
    assert seen["audio"].get("channels") == channels, seen

    def ended(name):
        # The publish over, the packager closes its last segment and stops announcing a next part.
        status, body, _ = h.http_get(f"{base}{name}/index.m3u8")
        return status == 200 and "#EXTINF" in body and "#EXT-X-PRELOAD-HINT" not in body
    h.wait_until(lambda: ended("audio") and ended("180p"), 30, "audio and video renditions closed")
    master = h.http_get(base + "master.m3u8")[1]
    assert "#EXT-X-MEDIA:TYPE=AUDIO" in master, master
    assert "mp4a.40.2" in master, master
    if args is WITH_SOURCE:
        assert "source/index.m3u8" in master and "180p/index.m3u8" in master, master

    a_path = fetch_all(base, "audio", tmp_path / "audio.mp4")
    v_path = fetch_all(base, "180p", tmp_path / "video.mp4")
    a = h.probe_streams(a_path)["audio"]
    assert (a["codec_name"], a["profile"], int(a["sample_rate"]), a["channels"]) == ("aac", "LC", 48000, 2), a
    rc, problems = h.decode_problems(a_path)
    assert rc == 0 and not problems, problems

    apk = h.audio_packets(a_path)
    assert len(apk) > 0.9 * published_ms / AAC_FRAME_MS, f"audio missing: {len(apk)} AAC frames"
    a0, a1 = min(p["pts"] for p in apk), max(p["pts"] for p in apk)
    duration = a1 - a0 + AAC_FRAME_MS
    vpk = h.video_packets(v_path)
    v0, v1 = min(p["pts"] for p in vpk), max(p["pts"] for p in vpk)
    print(f"{codec}: published {published_ms:.1f} ms, audio rendition {duration:.1f} ms from {a0} ms "
          f"({len(apk)} AAC frames), video from {v0} to {v1} ms, last audio tag {audio[-1][0]} ms")
    assert abs(a0 - v0) <= 100, (a0, v0)
    assert abs(duration - (published_ms - a0)) <= 2 * AAC_FRAME_MS, (duration, published_ms, a0)
    steps = {b["pts"] - a["pts"] for a, b in zip(apk, apk[1:])}
    assert steps <= {21, 22}, steps  # 1024 samples at 48 kHz in whole ms: no gaps, no overlaps
    assert srv.logs("audio re-encoded to AAC-LC 48 kHz stereo", component="transcode", codec=codec)


PASSTHROUGH = ["--transcode.profile=passthrough", "--origin.window_segments=30"]


def avc1_of(video):
    """The codec string of the source's AVCDecoderConfigurationRecord (its FLV sequence header)."""
    body = next(b for _, b in video if b[1] == 0)
    return "avc1." + body[6:9].hex()


def video_sizes(video):
    """Sizes of the coded frames (length-prefixed NAL units) of FLV AVC tags."""
    return [len(b) - 5 for _, b in video if b[1] == 1]


def check_passthrough(srv, base, tmp_path, clip, video, published_ms, codec):
    """Audio rendition AAC-LC 48 kHz stereo for the published duration; video as published."""
    def ended(name):
        status, body, _ = h.http_get(f"{base}{name}/index.m3u8")
        return status == 200 and "#EXTINF" in body and "#EXT-X-PRELOAD-HINT" not in body
    h.wait_until(lambda: ended("audio") and ended("video"), 30, "audio and video renditions closed")
    master = h.http_get(base + "master.m3u8")[1]
    assert "#EXT-X-MEDIA:TYPE=AUDIO" in master and "mp4a.40.2" in master, master
    assert "video/index.m3u8" in master and avc1_of(video) in master, master
    a_path = fetch_all(base, "audio", tmp_path / "audio.mp4")
    v_path = fetch_all(base, "video", tmp_path / "video.mp4")
    a = h.probe_streams(a_path)["audio"]
    assert (a["codec_name"], a["profile"], int(a["sample_rate"]), a["channels"]) == ("aac", "LC", 48000, 2), a
    rc, problems = h.decode_problems(a_path)
    assert rc == 0 and not problems, problems
    # The video untouched: the source's codec, size and every coded frame, byte count for byte count.
    v, src = h.probe_streams(v_path)["video"], h.probe_streams(clip)["video"]
    for k in ("codec_name", "profile", "width", "height"):
        assert v[k] == src[k], (k, v[k], src[k])
    sizes = [int(p["size"]) for p in h.ffprobe(v_path, "-select_streams", "v:0", "-show_entries", "packet=size",
                                               "-show_packets")["packets"]]
    assert sizes == video_sizes(video), (len(sizes), len(video_sizes(video)))
    apk = h.audio_packets(a_path)
    a0, a1 = min(p["pts"] for p in apk), max(p["pts"] for p in apk)
    duration = a1 - a0 + AAC_FRAME_MS
    vpk = h.video_packets(v_path)
    v0 = min(p["pts"] for p in vpk)
    print(f"passthrough {codec}: published {published_ms:.1f} ms, audio rendition {duration:.1f} ms from {a0} ms "
          f"({len(apk)} AAC frames), video from {v0} ms, {len(sizes)} frames as published")
    assert abs(a0 - v0) <= 100, (a0, v0)
    assert abs(duration - (published_ms - a0)) <= 2 * AAC_FRAME_MS, (duration, published_ms, a0)
    steps = {b["pts"] - a["pts"] for a, b in zip(apk, apk[1:])}
    assert steps <= {21, 22}, steps  # 1024 samples at 48 kHz in whole ms: no gaps, no overlaps
    assert srv.logs("audio re-encoded to AAC-LC 48 kHz stereo", component="transcode", codec=codec,
                    profile="passthrough")
    assert not srv.logs("track not packaged", component="origin")


@pytest.mark.parametrize("codec", ["opus", "ac3"])
def test_passthrough_eRTMP_audio_becomes_aac_and_the_video_is_untouched(make_server, clip12, tmp_path, codec):
    headers, audio, published_ms = audio_source(tmp_path, codec)
    video = [(ts, body) for ts, body in video_tags(clip12) if ts < published_ms]
    srv = h.start_origin(make_server, args=PASSTHROUGH)
    key = srv.create_key("pt")
    publish_paced(srv.rtmp_port, key, video, headers, audio)
    check_passthrough(srv, f"{srv.origin}/live/pt/", tmp_path, clip12, video, published_ms, codec)


def test_passthrough_legacy_mp3_becomes_aac_and_the_video_is_untouched(make_server, clip12, tmp_path):
    # Legacy FLV MP3 (SoundFormat 2) from ffmpeg, the video copied from the same clip: the FLV
    # ffmpeg writes is published with the project's client at its timestamps' pace.
    flv = tmp_path / "mp3.flv"
    h.run(["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-y", "-i", str(clip12), "-f", "lavfi", "-i",
           f"sine=frequency=440:sample_rate=44100:duration={SECONDS}", "-map", "0:v", "-map", "1:a", "-c:v", "copy",
           "-c:a", "libmp3lame", "-b:a", "128k", "-t", str(SECONDS), "-f", "flv", str(flv)], timeout=60, check=True)
    tags = h.flv_tags(flv)
    audio = [(ts, body) for ttype, ts, body in tags if ttype == 8]
    assert audio and audio[0][1][0] >> 4 == 2, "MP3 audio tags"
    video = [(ts, body) for ttype, ts, body in tags if ttype == 9]
    published_ms = audio[-1][0] + 1152 * 1000 / 44100
    srv = h.start_origin(make_server, args=PASSTHROUGH)
    key = srv.create_key("pt")
    publish_paced(srv.rtmp_port, key, video, [], audio)
    check_passthrough(srv, f"{srv.origin}/live/pt/", tmp_path, clip12, video, published_ms, "mp3")


def test_relayed_opus_reaches_the_transcode_role_and_the_origin(make_server, clip12, tmp_path):
    # ingest -> (RTMP relay: the FLV writer carries the E-RTMP audio on) -> transcode -> origin.
    import test_transcode_role as role
    headers, audio, _ = audio_source(tmp_path, "opus")
    video = [(ts, body) for ts, body in video_tags(clip12) if ts < 6000]
    audio = [(ts, body) for ts, body in audio if ts < 6000]
    origin = role.start_origin(make_server)
    tc = role.start_transcoder(make_server, origin)
    ing = role.start_ingest(make_server, tc)
    key = ing.create_key("relayed")
    publish_paced(ing.rtmp_port, key, video, headers, audio)
    tc.wait_log("audio re-encoded to AAC-LC 48 kHz stereo", timeout=10, component="transcode", codec="opus")
    base = f"{origin.origin}/live/relayed/"
    master = h.wait_until(lambda: (lambda b: b if "TYPE=AUDIO" in b else None)(h.http_get(base + "master.m3u8")[1]),
                          10, "an audio rendition at the origin")
    assert "mp4a.40.2" in master, master
    a_path = fetch_all(base, "audio", tmp_path / "relayed-audio.mp4")
    a = h.probe_streams(a_path)["audio"]
    assert (a["codec_name"], a["profile"], int(a["sample_rate"]), a["channels"]) == ("aac", "LC", 48000, 2), a
    rc, problems = h.decode_problems(a_path)
    assert rc == 0 and not problems, problems
    assert len(h.audio_packets(a_path)) > 3000 / AAC_FRAME_MS, "audio missing"


def test_connect_result_announces_the_audio_fourccs(server):
    # E-RTMP v2 "Enhancing NetConnection connect": a client that lists its FourCCs learns which
    # ones the server takes (CanForward 0x04) in the _result's information object.
    import rtmp_client
    with rtmp_client.RtmpClient(server.rtmp_port) as c:
        c.handshake()
        c.command("connect", 1, {"app": "live", "type": "nonprivate", "tcUrl": f"rtmp://{h.HOST}/live",
                                 "audioFourCcInfoMap": {"Opus": 1, "fLaC": 1}})
        res = c.wait_command(("_result", "_error"))
    assert res[0] == "_result", res
    audio_map = res[3].get("audioFourCcInfoMap") or {}
    for fourcc in ("mp4a", ".mp3", "Opus", "ac-3", "ec-3", "fLaC"):
        assert int(audio_map.get(fourcc, 0)) & 0x04, (fourcc, res[3])
