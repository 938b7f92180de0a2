"""Hostile peers are closed with the right reason while a real publisher streams on, unharmed.

One scenario per module: an ffmpeg publisher streams a 12 s clip; meanwhile four hostile clients
run in parallel. Each test checks one outcome.
"""
import concurrent.futures
import random
import socket
import struct
import types

import pytest

import rtmp_client
import sfharness as h

STREAM = "cam"
CLOSED = "streamflex_ingest_connections_closed_total"
HANDSHAKE_TIMEOUT_S = 2.0


def garbage_client(port):
    """64 KiB of random bytes; the first is not RTMP version 3, so the handshake is refused."""
    rnd = random.Random(1234)
    data = b"\xa5" + rnd.randbytes(64 * 1024 - 1)
    with socket.create_connection((h.HOST, port), timeout=5) as s:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            return 0.0
        return rtmp_client.read_until_closed(s, 5)


def stalled_handshake_client(port):
    """C0 and half of C1, then silence: the server must give up after handshake_timeout."""
    with socket.create_connection((h.HOST, port), timeout=5) as s:
        s.sendall(b"\x03" + bytes(rtmp_client.C1_SIZE // 2))
        return rtmp_client.read_until_closed(s, HANDSHAKE_TIMEOUT_S + 4)


def oversized_message_client(port):
    """After a plain handshake, a fmt-0 chunk announcing the largest length RTMP can express.

    The length field is 24 bits, so 0xFFFFFF (16 MiB - 1) is the most a header can announce; it is
    above the server's 8 MiB max_message_size default.
    """
    with rtmp_client.RtmpClient(port) as c:
        c.handshake()
        header = bytes([0x06]) + b"\x00\x00\x00" + b"\xff\xff\xff" + bytes([rtmp_client.VIDEO]) + \
            struct.pack("<I", 1)
        c.send(header + bytes(128))
        return c.read_until_closed(5)


def huge_chunk_size_client(port):
    """After a plain handshake, Set Chunk Size 0x7FFFFFFF (largest legal value, above the limit)."""
    with rtmp_client.RtmpClient(port) as c:
        c.handshake()
        c.send_message(2, rtmp_client.SET_CHUNK_SIZE, 0, struct.pack(">I", 0x7FFFFFFF))
        return c.read_until_closed(5)


HOSTILE = {
    "garbage": garbage_client,
    "stalled_handshake": stalled_handshake_client,
    "oversized_message": oversized_message_client,
    "huge_chunk_size": huge_chunk_size_client,
}


@pytest.fixture(scope="module")
def scenario(module_servers, module_procs, clip12, tmp_path_factory):
    srv = module_servers(handshake_timeout="2s")
    r = types.SimpleNamespace(srv=srv, results={}, errors=[], recording=None, metrics=None, alive_after=None,
                              publisher_rc=None)
    key = srv.create_key(STREAM)
    work = tmp_path_factory.mktemp("hostile")
    pub = module_procs.add(h.ffmpeg_publish(clip12, srv.url(key), work / "ffmpeg.log"))
    r.publisher = pub
    srv.wait_live(STREAM, timeout=10)
    # Let the stream settle for ~1 s of media before the attack.
    h.wait_until(lambda: srv.stream(STREAM)["stats"]["video_frames"] >= 30, 5, "publisher frames")
    with concurrent.futures.ThreadPoolExecutor(len(HOSTILE)) as ex:
        futures = {name: ex.submit(fn, srv.rtmp_port) for name, fn in HOSTILE.items()}
        for name, f in futures.items():
            try:
                r.results[name] = ("closed", f.result(timeout=15))
            except Exception as e:
                r.results[name] = ("error", repr(e))
    r.alive_after = srv.alive()
    try:
        r.publisher_rc = pub.wait(30)
        srv.wait_log("publish stopped", 10, stream=STREAM)
        r.recording = srv.wait_recording_closed(STREAM, timeout=10)[0]
        r.metrics = srv.metrics()
    except Exception as e:
        r.errors.append(repr(e))
    return r


def closed_in(r, name):
    outcome, value = r.results[name]
    assert outcome == "closed", f"{name}: {value}\nserver log:\n{r.srv.log_tail()}"
    return value


def reason_count(r, reason):
    assert r.srv.alive(), r.srv.log_tail()
    # The counter moves when the session ends, just after the peer saw the close.
    try:
        h.wait_until(lambda: r.srv.metric(CLOSED, reason=reason) >= 1, 5, f"closed_total{{reason={reason}}}")
    except TimeoutError:
        pass
    return r.srv.metric(CLOSED, reason=reason)


def test_garbage_client_closed_as_bad_handshake(scenario):
    closed_in(scenario, "garbage")
    assert reason_count(scenario, "bad_handshake") == 1, scenario.srv.metrics().text


def test_stalled_handshake_closed_after_handshake_timeout(scenario):
    waited = closed_in(scenario, "stalled_handshake")
    assert HANDSHAKE_TIMEOUT_S - 0.2 <= waited <= HANDSHAKE_TIMEOUT_S + 2.5, waited
    assert reason_count(scenario, "handshake_timeout") == 1, scenario.srv.metrics().text


def test_oversized_message_closed_as_message_too_large(scenario):
    closed_in(scenario, "oversized_message")
    assert reason_count(scenario, "message_too_large") == 1, scenario.srv.metrics().text


def test_huge_chunk_size_closed_as_limit_exceeded(scenario):
    closed_in(scenario, "huge_chunk_size")
    assert reason_count(scenario, "limit_exceeded") == 1, scenario.srv.metrics().text


def test_server_survives_hostile_clients(scenario):
    assert scenario.alive_after, scenario.srv.log_tail()
    status, _, _ = h.http_get(scenario.srv.admin_url("/healthz"))
    assert status == 200
    # A fresh, well-behaved client still gets through the handshake.
    with rtmp_client.RtmpClient(scenario.srv.rtmp_port) as c:
        c.handshake()


def test_publisher_unaffected_by_hostile_clients(scenario):
    assert scenario.publisher_rc == 0, f"{scenario.errors}\n{scenario.publisher.tail()}"
    assert scenario.recording is not None, scenario.errors


def test_publisher_recording_has_no_gap(scenario, clip12):
    assert scenario.recording is not None, f"{scenario.errors}\n{scenario.srv.log_tail()}"
    pk = h.video_packets(scenario.recording)
    want = len(h.video_packets(clip12))
    assert abs(len(pk) - want) <= 0.02 * want, (len(pk), want)
    dts = [p["dts"] for p in pk]
    steps = [(i, b - a) for i, (a, b) in enumerate(zip(dts, dts[1:])) if b - a > 100 or b < a]
    assert not steps, steps[:10]


def test_silent_publisher_closed_after_idle_timeout(make_server):
    srv = make_server(args=["--ingest.idle_timeout=1s"])
    key = srv.create_key("quiet")
    with rtmp_client.RtmpClient(srv.rtmp_port) as c:
        info = c.publish(key)
        assert info.get("code") == "NetStream.Publish.Start", info
        waited = c.read_until_closed(5)
    assert 0.8 <= waited <= 3.0, waited
    srv.wait_metric(CLOSED, 1, reason="idle_timeout")
    assert srv.wait_log("publish stopped", stream="quiet")["reason"] == "idle_timeout"
    assert srv.streams() == []


def test_client_leaving_mid_handshake_counted_as_handshake_incomplete(make_server):
    srv = make_server()
    with socket.create_connection((h.HOST, srv.rtmp_port), timeout=5) as s:
        s.sendall(b"\x03" + bytes(100))
    srv.wait_metric(CLOSED, 1, reason="handshake_incomplete")
    assert srv.metric(CLOSED, reason="handshake_timeout") == 0
