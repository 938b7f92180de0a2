"""Publishers ingest must refuse: wrong or revoked keys, a second publisher, unsupported codecs;
and takeover streams, where the second publisher wins."""
import pytest

import rtmp_client
import sfharness as h

CLOSED = "streamflex_ingest_connections_closed_total"
PUBLISH = "streamflex_ingest_publish_total"


def raw_publish(srv, key):
    """Publishes `key` with the minimal client; returns (status info, client)."""
    c = rtmp_client.RtmpClient(srv.rtmp_port)
    try:
        return c.publish(key), c
    except Exception:
        c.close()
        raise


def assert_refused_and_closed(srv, key, code):
    info, c = raw_publish(srv, key)
    with c:
        assert info.get("level") == "error" and info.get("code") == code, info
        c.read_until_closed(5)


def test_wrong_key_refused_for_ffmpeg(server, procs, clip8, tmp_path):
    server.create_key("cam")
    pub = procs.add(h.ffmpeg_publish(clip8, server.url("not-a-valid-key"), tmp_path / "ffmpeg.log"))
    rc = pub.wait(15)
    assert rc != 0, pub.tail()
    server.wait_metric(CLOSED, 1, reason="unauthorized")
    m = server.metrics()
    assert m.get(CLOSED, reason="unauthorized") == 1
    assert m.get(PUBLISH, result="rejected_key") == 1
    assert m.get(PUBLISH, result="accepted") == 0
    assert server.logs("publish refused: stream key not accepted")
    assert not server.logs("publish started") and server.streams() == []


def test_wrong_key_gets_unauthorized_status_then_close(server):
    server.create_key("cam")
    assert_refused_and_closed(server, "not-a-valid-key", "NetStream.Publish.Unauthorized")
    server.wait_metric(CLOSED, 1, reason="unauthorized")


def test_valid_key_gets_publish_start(server):
    key = server.create_key("cam")
    info, c = raw_publish(server, key)
    with c:
        assert info.get("code") == "NetStream.Publish.Start", info
        assert server.wait_live("cam", tracks=False)["stream"] == "cam"


def test_revoked_key_refused(server, procs, clip8, tmp_path):
    key = server.create_key("cam")
    info, c = raw_publish(server, key)
    with c:
        assert info.get("code") == "NetStream.Publish.Start", info
    server.wait_log("publish stopped", stream="cam")
    server.revoke("cam")
    pub = procs.add(h.ffmpeg_publish(clip8, server.url(key), tmp_path / "ffmpeg.log"))
    assert pub.wait(15) != 0, pub.tail()
    server.wait_metric(CLOSED, 1, reason="unauthorized")
    assert server.metric(PUBLISH, result="rejected_key") == 1
    assert_refused_and_closed(server, key, "NetStream.Publish.Unauthorized")


def test_key_revoked_by_id_refused(server):
    key = server.create_key("cam")
    listing = server.keys("list").stdout.splitlines()
    rows = [l.split() for l in listing[1:] if l.split() and l.split()[1] == "cam"]
    assert len(rows) == 1 and rows[0][-1] == "active", listing
    server.revoke(rows[0][0])
    assert_refused_and_closed(server, key, "NetStream.Publish.Unauthorized")
    rows = [l.split() for l in server.keys("list").stdout.splitlines()[1:] if l.split() and l.split()[1] == "cam"]
    assert rows[0][-1] == "revoked", rows


def test_second_ffmpeg_publisher_refused_while_first_keeps_going(server, procs, clip8, tmp_path):
    key = server.create_key("cam")
    first = procs.add(h.ffmpeg_publish(clip8, server.url(key), tmp_path / "first.log"))
    live = server.wait_live("cam")
    second = procs.add(h.ffmpeg_publish(clip8, server.url(key), tmp_path / "second.log"))
    assert second.wait(15) != 0, second.tail()
    server.wait_metric(CLOSED, 1, reason="conflict")
    assert server.metric(PUBLISH, result="rejected_busy") == 1
    assert server.logs("publish refused: stream is already live", stream="cam")
    assert first.alive(), first.tail()
    # The first publisher still owns the stream and its frames keep arriving.
    frames = server.stream("cam")["stats"]["video_frames"]
    h.wait_until(lambda: server.stream("cam")["stats"]["video_frames"] >= frames + 30, 5, "first publisher frames")
    assert server.stream("cam")["remote"] == live["remote"]
    assert first.wait(30) == 0, first.tail()
    recs = server.wait_recording_closed("cam")
    assert len(recs) == 1, recs
    n = len(h.video_packets(recs[0]))
    assert abs(n - 240) <= 0.02 * 240, n


def test_second_publisher_gets_badname_status_then_close(server):
    key = server.create_key("cam")
    info, first = raw_publish(server, key)
    with first:
        assert info.get("code") == "NetStream.Publish.Start", info
        assert_refused_and_closed(server, key, "NetStream.Publish.BadName")
        server.wait_metric(CLOSED, 1, reason="conflict")
        assert server.stream("cam") is not None


def test_takeover_stream_replaces_first_publisher(server, procs, clip8, tmp_path):
    key = server.create_key("cam", takeover=True)
    first = procs.add(h.ffmpeg_publish(clip8, server.url(key), tmp_path / "first.log"))
    live = server.wait_live("cam")
    second = procs.add(h.ffmpeg_publish(clip8, server.url(key), tmp_path / "second.log"))
    stopped = server.wait_log("publish stopped", 10, stream="cam")
    assert stopped["reason"] == "taken_over", stopped
    first.wait(10)  # the first encoder loses its connection
    server.wait_metric(CLOSED, 1, reason="taken_over")
    now = h.wait_until(lambda: (s := server.stream("cam")) and s["remote"] != live["remote"] and s, 5,
                       "second publisher owns the stream")
    assert now["stream"] == "cam"
    assert server.metric(PUBLISH, result="accepted") == 2
    assert server.metric(PUBLISH, result="rejected_busy") == 0
    assert second.wait(30) == 0, second.tail()
    assert len(server.wait_recording_closed("cam", count=2)) == 2


@pytest.fixture(scope="module")
def h263_clip(tmp_path_factory):
    """Sorenson H.263 (FLV codec id 2): valid FLV video that ingest does not take."""
    path = tmp_path_factory.mktemp("h263") / "h263.flv"
    h.run(["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-f", "lavfi", "-i",
           "testsrc2=size=320x240:rate=30", "-t", "5", "-c:v", "flv1", "-an", "-f", "flv", str(path)],
          timeout=60, check=True)
    return path


def test_unsupported_codec_refused_for_ffmpeg(server, procs, h263_clip, tmp_path):
    key = server.create_key("cam")
    pub = procs.add(h.ffmpeg_publish(h263_clip, server.url(key), tmp_path / "ffmpeg.log"))
    assert pub.wait(15) != 0, pub.tail()
    server.wait_metric(CLOSED, 1, reason="unsupported_codec")
    assert server.metric(PUBLISH, result="rejected_codec") == 1
    refused = server.logs("publish refused: unsupported codec", stream="cam")
    assert refused and "codec id 2" in refused[0].get("codec", ""), server.log_tail()
    stopped = server.wait_log("publish stopped", stream="cam")
    assert stopped["reason"] == "unsupported_codec", stopped
    assert server.streams() == []


def test_unsupported_codec_gets_publish_failed_status_then_close(server):
    key = server.create_key("cam")
    info, c = raw_publish(server, key)
    with c:
        assert info.get("code") == "NetStream.Publish.Start", info
        # FLV video tag body: frame type 1 (key) | codec id 2 (Sorenson H.263), then payload.
        c.send_message(6, rtmp_client.VIDEO, 1, bytes([0x12]) + bytes(64))
        status = c.wait_command(("onStatus",), 5)
        assert status[3].get("level") == "error" and status[3].get("code") == "NetStream.Publish.Failed", status
        c.read_until_closed(5)
    server.wait_metric(CLOSED, 1, reason="unsupported_codec")
