"""DASH low latency and program-date-time at the origin, against a publisher paced by the test.

The test sends the 30 s clip's FLV tags itself, each at its own time (real time from the first
send), and notes the wall clock of the first one: that is when the stream's first frame arrived
at the platform. Through the `all` server (ingest -> transcoder -> packager):
- a GET for the segment after the open one is answered while that segment is made: chunked
  transfer coding, the CMAF chunks spread over the segment's duration, the body equal to the
  complete segment fetched afterwards, and decodable;
- the MPD ends its timeline with the open segment repeated until the next update, with
  availabilityTimeOffset = segment target - part target;
- EXT-X-PROGRAM-DATE-TIME maps media time onto the wall clock of the arrival (not the later moment
  the transcoder's first output reached the packager), and the PDT at the end of each new part
  is within about a part duration of the moment the part was published.
"""
import datetime
import socket
import threading
import time
import types
import xml.etree.ElementTree as ET

import pytest

import sfharness as h

SEGMENT = 2.0         # origin.segment_target
PT = 0.5              # origin.part_target
PT_ADVERTISED = 0.522  # PART-TARGET: the part target plus one AAC frame, rounded up to ms
NS = {"d": "urn:mpeg:dash:schema:mpd:2011"}


def pdt_seconds(pdt):
    return datetime.datetime.fromisoformat(pdt.replace("Z", "+00:00")).timestamp()


@pytest.fixture(scope="module")
def srv(module_servers):
    return h.start_origin(module_servers)


@pytest.fixture(scope="module")
def ladder_srv(module_servers):
    """Transcoding to one small rung: the packager sees each frame after the transcoder's delay."""
    return h.start_origin(module_servers, args=["--transcode.profiles=small=180p:320x180@30:300k:330k:ultrafast",
                                                "--transcode.profile=small"])


def start_paced(srv, clip, stream, rendition):
    """Publishes the clip on `stream` in real time from a thread; `first_sent` is the wall clock of
    the first media tag's send, `first_ts` its FLV timestamp (s)."""
    key = srv.create_key(stream)
    tags = [t for t in h.flv_tags(clip) if t[0] in (8, 9)]
    pub = h.TagPublisher(srv.rtmp_port, key)
    # Each tag leaves when sent (no Nagle delay waiting for the server's delayed ACK): the send time
    # is the arrival time the origin should stamp.
    pub.client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    r = types.SimpleNamespace(first_sent=None, first_ts=tags[0][1] / 1000, errors=[], done=threading.Event())

    def run():
        try:
            t0 = time.monotonic()
            for ttype, ts, body in tags:
                if r.done.is_set():
                    break
                wait = t0 + ts / 1000 - r.first_ts - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                if r.first_sent is None:
                    r.first_sent = time.time()
                pub.send([(ttype, ts, body)])
        except Exception as e:  # reported by the tests
            r.errors.append(repr(e))
        finally:
            pub.close()

    r.thread = threading.Thread(target=run, daemon=True)
    r.thread.start()
    r.base = f"{srv.origin}/live/{stream}/{rendition}/"

    def playlist():
        status, body, _ = h.http_get(r.base + "index.m3u8")
        return h.MediaPlaylist(body) if status == 200 else None

    r.playlist = playlist
    h.wait_until(lambda: (p := playlist()) and len(p.segments) >= 1, 20, f"{stream}: a complete segment")
    return r


def stop_paced(r):
    r.done.set()
    r.thread.join(10)


@pytest.fixture(scope="module")
def paced(srv, clip30):
    r = start_paced(srv, clip30, "ll", "video")
    yield r
    stop_paced(r)


@pytest.fixture(scope="module")
def paced_ladder(ladder_srv, clip30):
    r = start_paced(ladder_srv, clip30, "lad", "180p")
    yield r
    stop_paced(r)


def get_chunked(port, path, deadline):
    """GET over a raw socket: (head text, [(arrival time, chunk bytes)]) of a chunked answer."""
    s = socket.create_connection((h.HOST, port), timeout=10)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: {h.HOST}:{port}\r\n\r\n".encode())
    buf = bytearray()
    chunks = []

    def fill():
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"answer incomplete at the deadline ({len(chunks)} chunks)")
        s.settimeout(left)
        data = s.recv(65536)
        if not data:
            raise ConnectionError(f"closed after {len(chunks)} chunks")
        buf.extend(data)
        return time.monotonic()

    while b"\r\n\r\n" not in buf:
        fill()
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    buf[:] = rest
    assert head.startswith(b"HTTP/1.1 200"), head
    assert b"transfer-encoding: chunked" in head.lower(), head
    at = time.monotonic()
    for _ in range(10000):
        while b"\r\n" not in buf:
            at = fill()
        line, _, rest = bytes(buf).partition(b"\r\n")
        size = int(line.split(b";")[0], 16)
        while len(rest) < size + 2:
            at = fill()
            line, _, rest = bytes(buf).partition(b"\r\n")
        assert rest[size:size + 2] == b"\r\n", "chunk not followed by CRLF"
        buf[:] = rest[size + 2:]
        if size == 0:
            break
        chunks.append((at, rest[:size]))
    s.close()
    return head.decode(errors="replace"), chunks


def boxes(data):
    """Top-level ISO BMFF box types of `data`, in order."""
    out, pos = [], 0
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos:pos + 4], "big")
        out.append(data[pos + 4:pos + 8].decode(errors="replace"))
        if size < 8:
            break
        pos += size
    return out


def tfdt(segment):
    """baseMediaDecodeTime of the first traf in `segment`."""
    i = segment.index(b"tfdt")
    version = segment[i + 4]
    return int.from_bytes(segment[i + 8:i + 16] if version == 1 else segment[i + 8:i + 12], "big")


def test_next_segment_is_streamed_chunk_by_chunk_while_it_is_made(srv, paced, tmp_path):
    assert not paced.errors, paced.errors
    pl = paced.playlist()
    # The segment after the open one (the open one itself if it has no part yet): held until its
    # first CMAF chunk, then streamed to its end.
    msn = pl.open_msn + 1 if pl.open_parts else pl.open_msn
    asked = time.monotonic()
    head, chunks = get_chunked(srv.origin_port, f"/live/ll/video/s{msn}.m4s", asked + 3 * SEGMENT + 5)
    done = time.monotonic()
    assert "\ncontent-length:" not in head.lower(), head
    spread = chunks[-1][0] - chunks[0][0]
    print(f"\n[dash-ll] s{msn}: {len(chunks)} chunks, first after {chunks[0][0] - asked:.3f} s, "
          f"spread {spread:.3f} s, ended {done - asked:.3f} s after the request")
    # Parts of 0.5 s in a 2 s segment: the body came in at least 3 pieces over at least a second,
    # the first one long before the segment's end.
    assert len(chunks) >= 3, [len(c) for _, c in chunks]
    assert spread >= 1.0, spread
    assert chunks[-1][0] - chunks[0][0] >= 2 * PT, chunks
    # Each chunk carries whole CMAF chunks: styp (first), then moof+mdat pairs.
    for i, (_, c) in enumerate(chunks):
        kinds = boxes(c)
        assert kinds[0] == ("styp" if i == 0 else "moof"), (i, kinds[:4])
        assert kinds.count("moof") == kinds.count("mdat") >= 1, (i, kinds)
    body = b"".join(c for _, c in chunks)
    status, headers, whole = h.http_request(f"{paced.base}s{msn}.m4s")
    assert status == 200 and int(headers["content-length"]) == len(whole), (status, headers)
    assert body == whole, f"streamed {len(body)} bytes, segment {len(whole)} bytes"
    # Decodable: the init segment and the streamed body, read by ffprobe and decoded by ffmpeg.
    seg = pl.segments[-1]
    status, _, init = h.http_request(f"{paced.base}{seg['map']}")
    assert status == 200, status
    path = tmp_path / "open.mp4"
    path.write_bytes(init + body)
    frames = h.video_packets(path)
    assert len(frames) >= SEGMENT * 30 * 0.9, len(frames)
    assert frames[0]["key"], frames[:2]
    p = h.decode_fully(path)
    assert p.returncode == 0, p.stderr


def test_open_segment_asked_for_mid_way_starts_with_the_chunks_already_cut(srv, paced):
    pl = h.wait_until(lambda: (p := paced.playlist()) and len(p.open_parts) >= 1 and p, 5, "an open segment")
    msn = pl.open_msn
    asked = time.monotonic()
    head, chunks = get_chunked(srv.origin_port, f"/live/ll/video/s{msn}.m4s", asked + 3 * SEGMENT + 5)
    assert chunks[0][0] - asked < 0.2, "the parts already cut should go out at once"
    assert boxes(chunks[0][1])[0] == "styp"
    body = b"".join(c for _, c in chunks)
    status, _, whole = h.http_request(f"{paced.base}s{msn}.m4s")
    assert status == 200 and body == whole


def test_served_bytes_count_what_is_written(srv, paced):
    """streamflex_origin_served_bytes_total counts the body bytes that left: all of a streamed open
    segment (its size unknown when it was answered), the slice of a Range request, nothing for
    HEAD."""
    pl = h.wait_until(lambda: (p := paced.playlist()) and any(s["parts"] for s in p.segments) and p, 5,
                      "a complete segment with its parts listed")
    part = next(s["parts"][0]["uri"] for s in reversed(pl.segments) if s["parts"])
    msn = pl.open_msn + 1 if pl.open_parts else pl.open_msn
    name = "streamflex_origin_served_bytes_total"
    before = srv.metric(name)
    asked = time.monotonic()
    _, chunks = get_chunked(srv.origin_port, f"/live/ll/video/s{msn}.m4s", asked + 3 * SEGMENT + 5)
    streamed = sum(len(c) for _, c in chunks)
    assert streamed > 0
    status, _, sliced = h.http_request(paced.base + part, headers={"Range": "bytes=10-109"})
    assert status == 206 and len(sliced) == 100, (status, len(sliced))
    status, headers, empty = h.http_request(paced.base + part, method="HEAD")
    assert status == 200 and int(headers["content-length"]) > 100 and empty == b"", (status, headers)
    expected = before + streamed + 100
    # Counted on the server's I/O thread right after each write: allow it a moment, then exactly.
    h.wait_until(lambda: srv.metric(name) >= expected, 2, f"{name} >= {expected}")
    time.sleep(0.2)
    assert srv.metric(name) - before == streamed + 100, (srv.metric(name) - before, streamed)


def test_mpd_timeline_ends_with_the_open_segment_repeated_until_the_next_update(srv, paced):
    status, body, _ = h.http_get(f"{srv.origin}/live/ll/manifest.mpd")
    pl = paced.playlist()
    assert status == 200, status
    mpd = ET.fromstring(body)
    video = [a for a in mpd.iterfind(".//d:AdaptationSet", NS) if a.get("contentType") == "video"][-1]
    tmpl = video.find(".//d:SegmentTemplate", NS)
    ts = int(tmpl.get("timescale"))
    # DASH-IF low latency: requestable once its first chunk is there.
    assert tmpl.get("availabilityTimeComplete") == "false"
    assert abs(float(tmpl.get("availabilityTimeOffset")) - (SEGMENT - PT_ADVERTISED)) < 1e-6, tmpl.attrib
    entries = tmpl.findall("d:SegmentTimeline/d:S", NS)
    last = entries[-1]
    assert last.get("r") == "-1" and int(last.get("d")) == int(SEGMENT * ts), last.attrib
    # The numbers: startNumber + the complete segments before it = the open (or next) segment.
    count = sum(1 + int(e.get("r", "0")) for e in entries[:-1])
    number = int(tmpl.get("startNumber")) + count
    assert number in (pl.open_msn, pl.open_msn + 1), (number, pl.open_msn, body)
    assert all(e.get("r", "0") != "-1" for e in entries[:-1])


@pytest.mark.parametrize("which", ["paced", "paced_ladder"])
def test_program_date_time_is_the_arrival_wall_clock_of_the_media(which, request):
    """PDT of each complete segment = wall clock of the first frame's send + (segment media time -
    first frame's time), within 30 ms (scheduling), with the source passed through and transcoded
    (where the packager gets its first frame only after the transcoder's delay, which PDT must not
    hide)."""
    paced = request.getfixturevalue(which)
    pl = paced.playlist()
    assert paced.first_sent is not None
    errors = []
    for seg in pl.segments[-4:]:
        status, _, data = h.http_request(f"{paced.base}{seg['uri']}")
        assert status == 200
        media = tfdt(data) / 90000
        expected = paced.first_sent + (media - paced.first_ts)
        errors.append(round(pdt_seconds(seg["pdt"]) - expected, 4))
    print(f"\n[dash-ll] {which}: PDT minus the arrival of the same media time, last segments: {errors} s")
    assert all(abs(e) < 0.03 for e in errors), errors


@pytest.mark.parametrize("which", ["paced", "paced_ladder"])
def test_part_program_date_time_is_within_a_part_of_its_publication(which, request):
    """Blocking reloads for each next part; when answered (at the part's publication), the PDT at
    the part's end is at most the wall clock (PDT is never in the future) and at most ~a part
    duration behind it."""
    paced = request.getfixturevalue(which)
    lags = []
    for _ in range(6):
        pl = paced.playlist()
        msn, part = h.part_address(pl.hint["URI"])
        status, body, _ = h.http_get(f"{paced.base}index.m3u8?_HLS_msn={msn}&_HLS_part={part}", timeout=8)
        answered = time.time()
        assert status == 200, status
        got = h.MediaPlaylist(body)
        if got.open_msn == msn:
            seg_pdt, parts = got.open_pdt, got.open_parts
        else:
            seg = next(s for s in got.segments if s["msn"] == msn)
            seg_pdt, parts = seg["pdt"], seg["parts"]
        assert len(parts) > part, (msn, part, body)
        end = pdt_seconds(seg_pdt) + sum(p["duration"] for p in parts[:part + 1])
        lags.append(round(answered - end, 4))
    print(f"\n[dash-ll] {which}: publication minus PDT at the part's end: {lags} s")
    assert all(-0.03 < lag < PT + 0.25 for lag in lags), lags
