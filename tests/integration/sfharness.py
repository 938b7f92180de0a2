"""Harness for StreamFlex integration tests: the server process, keys, metrics, clients, ffprobe.

Everything binds 127.0.0.1; every wait polls with a deadline.
"""
import hashlib
import json
import os
import pathlib
import random
import re
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

BIN = os.environ.get("STREAMFLEX_BIN") or "/work/main/build/app/streamflex"
HOST = "127.0.0.1"


def _ephemeral_range():
    try:
        lo, hi = (int(v) for v in pathlib.Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
        return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


_handed_out = set()
_port_rng = random.Random(os.getpid() ^ time.time_ns())


def free_port():
    """A port nothing holds now, chosen below the kernel's ephemeral range.

    bind(0) would pick from the ephemeral range, where any outgoing connection (a relay, a
    pusher, a client) can take the port between this choice and the server's own bind; that
    was a real CI failure ("Address already in use"). Ports below the range are only ever
    taken by an explicit bind, and this process never hands out the same port twice.
    """
    eph_lo, _ = _ephemeral_range()
    lo, hi = 10000, eph_lo - 1
    if hi - lo < 1000:  # an unusual ephemeral range: fall back to the kernel's choice
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((HOST, 0))
            return s.getsockname()[1]
    for _ in range(500):
        port = _port_rng.randint(lo, hi)
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((HOST, port))  # no SO_REUSEADDR: a port in TIME_WAIT is skipped too
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port in {lo}-{hi}")


def wait_until(pred, timeout, what="condition", interval=0.05):
    """Polls pred() until it returns a truthy value (returned) or the deadline passes."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            v = pred()
            if v:
                return v
        except (OSError, ValueError, KeyError) as e:  # server not up yet, partial JSON, ...
            last_exc = e
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}"
                               + (f" (last error: {last_exc!r})" if last_exc else ""))
        time.sleep(interval)


def http_get(url, timeout=2.0):
    """Returns (status, body text, content type); HTTP errors are returned, not raised."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode(errors="replace"), r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace"), e.headers.get("Content-Type", "")


def run(cmd, timeout=30, env=None, cwd=None, check=False):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout, env=env, cwd=cwd,
                       text=True)
    if check and p.returncode != 0:
        raise AssertionError(f"{cmd} exited {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}")
    return p


# ---- metrics ----------------------------------------------------------------------------------

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\d+)?$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


class Metrics:
    def __init__(self, text):
        self.text = text
        self.samples = {}
        self.bad_lines = []
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            m = _SAMPLE.match(line)
            if not m:
                self.bad_lines.append(line)
                continue
            labels = tuple(sorted(_LABEL.findall(m.group(3) or "")))
            self.samples[(m.group(1), labels)] = float(m.group(4))

    def get(self, name, default=0.0, **labels):
        return self.samples.get((name, tuple(sorted(labels.items()))), default)

    def has(self, name, **labels):
        return (name, tuple(sorted(labels.items()))) in self.samples

    def names(self):
        return {k[0] for k in self.samples}


# ---- processes --------------------------------------------------------------------------------

class Proc:
    """A child process with its output in a file; stopped by its own PID."""

    def __init__(self, cmd, log_path, env=None, cwd=None):
        self.cmd = [str(c) for c in cmd]
        self.log_path = pathlib.Path(log_path)
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                                     env=env, cwd=cwd)
        self.started = time.monotonic()

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def wait(self, timeout):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"{self.cmd[0]} still running after {timeout}s; output tail:\n{self.tail()}")

    def output(self):
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def tail(self, n=30):
        return "\n".join(self.output().splitlines()[-n:])

    def stop(self, sig=signal.SIGINT, timeout=5):
        if self.alive():
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._log.close()
        return self.proc.returncode


def ffmpeg_publish(clip, url, log_path, realtime=True):
    cmd = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "info"]
    if realtime:
        cmd.append("-re")
    cmd += ["-i", clip, "-c", "copy", "-f", "flv", url]
    return Proc(cmd, log_path)


class Server:
    """One streamflex process on free ports, its stderr (JSON log) captured to a file."""

    def __init__(self, workdir, role="ingest", args=(), env=None, record=True, defaults=True,
                 handshake_timeout="2s", config=None):
        self.workdir = pathlib.Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.role = role
        self.rtmp_port = free_port()
        self.admin_port = free_port()
        self.store = self.workdir / "store.db"
        self.record_dir = self.workdir / "rec" if record else None
        self.log_path = self.workdir / f"server-{self.rtmp_port}.log"
        self.out_path = self.workdir / f"server-{self.rtmp_port}.out"
        self.env = dict(os.environ)
        for k in list(self.env):
            if k.startswith("STREAMFLEX_") and k != "STREAMFLEX_BIN":
                del self.env[k]
        self.env.update(env or {})
        # --config is an option of the program, so it goes before the role.
        cmd = [BIN] + ([f"--config={config}"] if config else []) + [role]
        if defaults:
            cmd += [f"--store.path={self.store}", f"--admin.listen={HOST}:{self.admin_port}",
                    f"--ingest.rtmp_listen={HOST}:{self.rtmp_port}", f"--ingest.handshake_timeout={handshake_timeout}",
                    "--log.level=info"]
            if self.record_dir:
                cmd.append(f"--ingest.record_dir={self.record_dir}")
        self.api_port = None
        if role in ("all", "api") and not any(str(a).startswith("--api.listen") for a in args):
            # `all` and `api` run the control-plane API: a free port, never the default
            self.api_port = free_port()
            cmd.append(f"--api.listen={HOST}:{self.api_port}")
        if role == "all":
            # `all` also runs an edge and an origin: free ports, never the defaults
            self.edge_port = free_port()
            cmd += ["--demo.enabled=false", f"--edge.listen={HOST}:{self.edge_port}"]
            if not any(str(a).startswith("--origin.listen") for a in args):
                cmd.append(f"--origin.listen={HOST}:{free_port()}")
            # Tests of packaging and delivery take the source untouched; transcoding tests choose
            # a ladder themselves.
            if not any(str(a).startswith("--transcode.profile=") for a in args) and not (
                    env and "STREAMFLEX_TRANSCODE_PROFILE" in env):
                cmd.append("--transcode.profile=passthrough")
        cmd += list(args)
        self.cmd = cmd
        self.proc = None
        self._log = self._out = None
        self.exit_code = None
        self.stop_seconds = None

    # -- lifecycle --
    def start(self, ready_timeout=10):
        self._log = open(self.log_path, "wb")
        self._out = open(self.out_path, "wb")
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=self._out, stderr=self._log,
                                     env=self.env, cwd=self.workdir)

        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"streamflex exited {self.proc.returncode} before ready:\n{self.log_tail()}")
            status, _, _ = http_get(self.admin_url("/readyz"), timeout=1)
            return status == 200

        wait_until(ready, ready_timeout, "streamflex /readyz")
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=5.0):
        """Signals the server and waits for it; returns the exit code. Kills it past the deadline."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            t0 = time.monotonic()
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
                self.stop_seconds = time.monotonic() - t0
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
                self.stop_seconds = None
        self.exit_code = self.proc.returncode
        for f in (self._log, self._out):
            if f:
                f.close()
        return self.exit_code

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- URLs and admin --
    def admin_url(self, path):
        return f"http://{HOST}:{self.admin_port}{path}"

    def api_url(self, path=""):
        return f"http://{HOST}:{self.api_port}{path}"

    def admin_api_key(self):
        """The admin API key `all`/`api` writes beside the store on first start."""
        return (self.store.parent / "admin-api-key").read_text().strip()

    def url(self, key, app="live"):
        return f"rtmp://{HOST}:{self.rtmp_port}/{app}/{key}"

    def metrics(self):
        status, body, _ = http_get(self.admin_url("/metrics"))
        assert status == 200, (status, body)
        return Metrics(body)

    def metric(self, name, **labels):
        return self.metrics().get(name, **labels)

    def wait_metric(self, name, at_least, timeout=5, **labels):
        return wait_until(lambda: self.metric(name, **labels) >= at_least, timeout,
                          f"{name}{labels} >= {at_least}")

    def streams(self):
        status, body, _ = http_get(self.admin_url("/ingest/streams"))
        assert status == 200, (status, body)
        return json.loads(body)["streams"]

    def stream(self, name):
        for s in self.streams():
            if s["stream"] == name:
                return s
        return None

    def wait_live(self, name, timeout=10, tracks=True):
        def check():
            s = self.stream(name)
            if s and (not tracks or ("video" in s and "audio" in s)):
                return s
            return None
        return wait_until(check, timeout, f"stream {name} live")

    # -- logs --
    def log_text(self):
        if self._log and not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def log_tail(self, n=40):
        return "\n".join(self.log_text().splitlines()[-n:])

    def logs(self, msg=None, **fields):
        out = []
        for line in self.log_text().splitlines():
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if msg is not None and rec.get("msg") != msg:
                continue
            if all(rec.get(k) == v for k, v in fields.items()):
                out.append(rec)
        return out

    def wait_log(self, msg, timeout=5, **fields):
        return wait_until(lambda: (self.logs(msg, **fields) or [None])[0], timeout,
                          f"log line {msg!r} {fields}")

    # -- keys --
    def keys(self, *args, timeout=15):
        return run([BIN, "keys", *args, f"--store.path={self.store}"], timeout=timeout, env=self.env,
                   cwd=self.workdir)

    def create_key(self, stream, takeover=False):
        p = self.keys("create", stream, *(["--takeover"] if takeover else []))
        assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
        lines = [l for l in p.stdout.splitlines() if l.strip()]
        return lines[-1].strip()

    def revoke(self, id_or_stream):
        p = self.keys("revoke", id_or_stream)
        assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
        return p

    # -- recordings --
    def recordings(self, stream):
        if not self.record_dir or not self.record_dir.exists():
            return []
        return sorted(self.record_dir.glob(f"{stream}-*.flv"))

    def wait_recording_closed(self, stream, count=1, timeout=10):
        """Waits for `count` recordings of `stream` to be closed by the recorder; returns their paths."""
        def closed():
            paths = [pathlib.Path(r["path"]) for r in self.logs("recording closed")
                     if pathlib.Path(r.get("path", "")).name.startswith(f"{stream}-")]
            return sorted(paths) if len(paths) >= count else None
        return wait_until(closed, timeout, f"{count} closed recording(s) of {stream}")


# ---- media ------------------------------------------------------------------------------------

CLIP_CMD = ["-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30", "-f", "lavfi", "-i",
            "sine=frequency=1000:sample_rate=48000", "-c:v", "libx264", "-preset", "veryfast", "-g", "30",
            "-keyint_min", "30", "-sc_threshold", "0", "-pix_fmt", "yuv420p", "-b:v", "2500k", "-c:a", "aac",
            "-b:a", "128k", "-ar", "48000", "-ac", "2"]


def encode_clip(seconds):
    """A 1280x720@30 H.264 (GOP 30, B-frames) + AAC 48k stereo FLV clip, encoded once and cached.

    Cached across test processes (keyed by the command) under $TMPDIR; written atomically.
    """
    args = CLIP_CMD + ["-t", str(seconds)]
    digest = hashlib.sha256(json.dumps(args).encode()).hexdigest()[:12]
    cache = pathlib.Path(os.environ.get("SF_CLIP_CACHE", pathlib.Path(tempfile.gettempdir()) / "streamflex-it-clips"))
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"clip-{seconds}s-{digest}.flv"
    if path.exists() and path.stat().st_size > 0:
        return path
    tmp = cache / f".{path.name}.{os.getpid()}.tmp"
    run(["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-y", *args, "-f", "flv", str(tmp)], timeout=120,
        check=True)
    os.replace(tmp, path)
    return path


def ffprobe(path, *args, timeout=60):
    p = run(["ffprobe", "-v", "error", "-of", "json", *args, str(path)], timeout=timeout)
    assert p.returncode == 0, f"ffprobe {args} {path} failed: {p.stderr}"
    return json.loads(p.stdout)


def probe_streams(path):
    """{'video': stream, 'audio': stream} from ffprobe -show_streams."""
    out = {}
    for s in ffprobe(path, "-show_streams")["streams"]:
        out.setdefault(s["codec_type"], s)
    return out


def _ms(v):
    return None if v in (None, "N/A") else round(float(v) * 1000)


def video_packets(path):
    """Video packets in file order: dicts with dts/pts in ms and key flag."""
    pk = ffprobe(path, "-select_streams", "v:0", "-show_entries", "packet=pts_time,dts_time,flags",
                 "-show_packets")["packets"]
    return [{"dts": _ms(p.get("dts_time")), "pts": _ms(p.get("pts_time")), "key": "K" in p.get("flags", "")}
            for p in pk]


def audio_packets(path):
    pk = ffprobe(path, "-select_streams", "a:0", "-show_entries", "packet=pts_time,dts_time", "-show_packets")
    return [{"dts": _ms(p.get("dts_time")), "pts": _ms(p.get("pts_time"))} for p in pk["packets"]]


def keyframe_pts(path):
    """Presentation times (ms) of decoded keyframes (ffprobe -show_frames -skip_frame nokey)."""
    fr = ffprobe(path, "-select_streams", "v:0", "-skip_frame", "nokey", "-show_entries",
                 "frame=pts_time,best_effort_timestamp_time,key_frame", "-show_frames", timeout=120)["frames"]
    return [_ms(f.get("pts_time") if f.get("pts_time") not in (None, "N/A") else f.get("best_effort_timestamp_time"))
            for f in fr]


def decode_fully(path, timeout=120):
    """ffmpeg -xerror decodes every frame or fails; returns the CompletedProcess.

    -fps_mode passthrough keeps the null muxer from re-timing frames to a constant rate (it would
    warn about live sources' jittered timestamps, which says nothing about the file).
    """
    return run(["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-xerror", "-i", str(path),
                "-fps_mode", "passthrough", "-f", "null", "-"], timeout=timeout)


def decode_problems(path):
    """(exit code, the set of messages ffmpeg -xerror printed while decoding), addresses removed."""
    p = decode_fully(path)
    return p.returncode, {re.sub(r" @ 0x[0-9a-f]+", "", l).strip() for l in p.stderr.splitlines() if l.strip()}


def max_step(values):
    return max((b - a for a, b in zip(values, values[1:])), default=0)


def is_non_decreasing(values):
    return all(b >= a for a, b in zip(values, values[1:]))


H264_PROFILES = {"Baseline": 66, "Constrained Baseline": 66, "Main": 77, "Extended": 88, "High": 100,
                 "High 10": 110, "High 4:2:2": 122, "High 4:4:4 Predictive": 244}


# ---- origin (LL-HLS / DASH) -------------------------------------------------------------------

SOURCE_DIR = pathlib.Path(os.environ.get("SF_SOURCE_DIR") or pathlib.Path(__file__).resolve().parents[2])
BROWSER_DIR = SOURCE_DIR / "tests" / "browser"
WEB_ROOT = SOURCE_DIR / "web" / "dist"
PLAYLIST_MIME = "application/vnd.apple.mpegurl"


def start_origin(pool, args=(), **kw):
    """A started `all` server (no demo, no recording) with the origin on its own free port.

    `pool` is a ServerPool fixture (make_server / module_servers). The origin URL base is
    srv.origin (http://127.0.0.1:P); srv.origin_port is P.
    """
    port = free_port()
    kw.setdefault("record", False)
    srv = pool(role="all", start=False, args=[f"--origin.listen={HOST}:{port}", f"--origin.web_root={WEB_ROOT}",
                                             *args], **kw)
    srv.origin_port = port
    srv.origin = f"http://{HOST}:{port}"
    srv.start()
    wait_until(lambda: srv.logs("HTTP listening", component="origin"), 5, "origin listening")
    return srv


def http_request(url, method="GET", headers=None, timeout=5.0):
    """(status, headers with lower-case names, body bytes); HTTP errors are returned, not raised."""
    req = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


class MediaPlaylist:
    """Just enough of an LL-HLS media playlist for the tests' own bookkeeping (the independent
    conformance checks use hls-parser from npm, tests/browser/check_playlists.mjs)."""

    _ATTR = re.compile(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)')

    def __init__(self, text):
        self.text = text
        self.tags = {}
        self.segments = []       # dicts: msn, uri, duration, parts, pdt, discontinuity, map (complete ones)
        self.open_parts = []     # parts of the segment being filled (no EXTINF yet)
        self.hint = None
        self.skipped = 0
        self.media_sequence = 0
        self.reports = []
        parts, pdt, disc, map_uri = [], None, False, None
        lines = text.splitlines()
        for line in lines:
            if line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
                self.media_sequence = int(line.split(":", 1)[1])
        msn = self.media_sequence
        for line in lines:
            if line.startswith("#EXT-X-SKIP:"):
                self.skipped = int(self.attrs(line)["SKIPPED-SEGMENTS"])
                msn += self.skipped
            elif line.startswith("#EXT-X-PART:"):
                a = self.attrs(line)
                parts.append({"uri": a["URI"], "duration": float(a["DURATION"]),
                              "independent": a.get("INDEPENDENT") == "YES"})
            elif line.startswith("#EXT-X-PRELOAD-HINT:"):
                self.hint = self.attrs(line)
            elif line.startswith("#EXT-X-RENDITION-REPORT:"):
                self.reports.append(self.attrs(line))
            elif line.startswith("#EXT-X-PROGRAM-DATE-TIME:"):
                pdt = line.split(":", 1)[1]
            elif line == "#EXT-X-DISCONTINUITY":
                disc = True
            elif line.startswith("#EXT-X-MAP:"):
                map_uri = self.attrs(line)["URI"]
            elif line.startswith("#EXTINF:"):
                self._extinf = float(line.split(":", 1)[1].split(",")[0])
            elif line.startswith("#"):
                if ":" in line:
                    k, v = line[1:].split(":", 1)
                    self.tags[k] = v
                else:
                    self.tags[line[1:]] = ""
            elif line.strip():
                self.segments.append({"msn": msn, "uri": line.strip(), "duration": self._extinf, "parts": parts,
                                      "pdt": pdt, "discontinuity": disc, "map": map_uri})
                msn += 1
                parts, pdt, disc = [], None, False
        self.open_parts = parts
        self.open_msn = msn
        self.open_pdt = pdt

    @classmethod
    def attrs(cls, line):
        return {k: v.strip('"') for k, v in cls._ATTR.findall(line.split(":", 1)[1])}

    def listed_parts(self):
        """{part URI} of every EXT-X-PART in the playlist."""
        out = {p["uri"] for s in self.segments for p in s["parts"]}
        return out | {p["uri"] for p in self.open_parts}

    def last_part(self):
        """(msn, index) of the newest listed part, or None."""
        if self.open_parts:
            return self.open_msn, len(self.open_parts) - 1
        for s in reversed(self.segments):
            if s["parts"]:
                return s["msn"], len(s["parts"]) - 1
        return None


_PART_URI = re.compile(r"s(\d+)\.p(\d+)\.m4s$")


def part_address(uri):
    """'s12.p3.m4s' -> (12, 3)."""
    m = _PART_URI.search(uri)
    assert m, uri
    return int(m.group(1)), int(m.group(2))


# ---- FLV tags and a publisher that sends them one at a time -----------------------------------

def flv_tags(path):
    """[(tag type, timestamp ms, body)] of an FLV file (FLV 1.0 annex E: header, then tags)."""
    data = pathlib.Path(path).read_bytes()
    assert data[:3] == b"FLV", path
    pos = int.from_bytes(data[5:9], "big") + 4  # header size, then PreviousTagSize0
    tags = []
    for _ in range(10000000):
        if pos + 11 > len(data):
            break
        ttype = data[pos] & 0x1F
        size = int.from_bytes(data[pos + 1:pos + 4], "big")
        ts = int.from_bytes(data[pos + 4:pos + 7], "big") | (data[pos + 7] << 24)
        body = data[pos + 11:pos + 11 + size]
        if len(body) < size:
            break
        tags.append((ttype, ts, body))
        pos += 11 + size + 4
    return tags


class TagPublisher:
    """Publishes FLV tags over RTMP exactly when the test says so (rtmp_client underneath)."""

    def __init__(self, port, key, timeout=5.0):
        import rtmp_client as rc
        self.rc = rc
        self.client = rc.RtmpClient(port, timeout=timeout)
        info = self.client.publish(key)
        assert info.get("code") == "NetStream.Publish.Start", info
        self.stream_id = 1
        for mtype, _sid, body in self.client.received:
            vals = rc.amf0_decode_all(body) if mtype == rc.AMF0_COMMAND else []
            if vals[:2] == ["_result", 4.0] and len(vals) > 3:
                self.stream_id = int(vals[3])
        # RTMP 5.4.1: bigger chunks, fewer headers; the server learns it before any media.
        self.client.send_message(2, rc.SET_CHUNK_SIZE, 0, (4096).to_bytes(4, "big"))
        self.client.out_chunk_size = 4096

    def send(self, tags):
        out = bytearray()
        for ttype, ts, body in tags:
            if ttype not in (self.rc.AUDIO, self.rc.VIDEO):
                continue
            csid = 4 if ttype == self.rc.AUDIO else 6
            out += self.rc.chunk_message(csid, ttype, self.stream_id, ts, body, self.client.out_chunk_size)
        self.client.send(bytes(out))

    def close(self):
        self.client.close()


# ---- Node helpers (tests/browser) --------------------------------------------------------------

def ensure_node_modules(timeout=300):
    """Runs `npm ci` in tests/browser once if its node_modules is missing (pinned by package-lock.json)."""
    import fcntl
    marker = BROWSER_DIR / "node_modules" / ".package-lock.json"
    if marker.exists():
        return BROWSER_DIR
    # Test files may run in parallel (ctest -j): one npm ci at a time, the others wait for it.
    with open(pathlib.Path(tempfile.gettempdir()) / "streamflex-it-npm.lock", "w") as lock:
        def locked():
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                return False
        wait_until(locked, timeout + 30, "the npm ci of another test process", interval=0.5)
        if marker.exists():
            return BROWSER_DIR
        p = run(["npm", "ci", "--no-audit", "--no-fund"], timeout=timeout, cwd=BROWSER_DIR)
        if p.returncode != 0:
            raise AssertionError(f"npm ci in {BROWSER_DIR} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return BROWSER_DIR


CHROMIUM = os.environ.get("SF_CHROMIUM") or "/usr/bin/chromium"


def run_node_json(script, args, timeout, artifacts=None, env=None):
    """Runs a tests/browser script (with `env` added to the environment); its last stdout line is a
    JSON object, returned.

    Raises with the script's stderr when it exits non-zero or prints no JSON.
    """
    env = dict(os.environ, SF_CHROMIUM=CHROMIUM, **(env or {}))
    p = run(["node", str(BROWSER_DIR / script), *[str(a) for a in args]], timeout=timeout, cwd=BROWSER_DIR, env=env)
    lines = [l for l in p.stdout.splitlines() if l.strip()]
    if artifacts is not None:
        pathlib.Path(artifacts).mkdir(parents=True, exist_ok=True)
        (pathlib.Path(artifacts) / f"{pathlib.Path(script).stem}.stderr.txt").write_text(p.stderr)
    try:
        result = json.loads(lines[-1])
    except (IndexError, ValueError):
        raise AssertionError(f"{script} exited {p.returncode} without a JSON result\nstdout:\n{p.stdout[-4000:]}"
                             f"\nstderr:\n{p.stderr[-4000:]}")
    result["_exit"] = p.returncode
    result["_stderr"] = p.stderr[-4000:]
    return result


def artifact_dir(name):
    """A directory for files a person may want to look at after the run (screenshots); printed by callers."""
    base = pathlib.Path(os.environ.get("SF_ARTIFACTS")
                        or pathlib.Path(tempfile.gettempdir()) / "streamflex-it-artifacts")
    d = base / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    d.mkdir(parents=True, exist_ok=True)
    return d


def encode_clip_variant(seconds, size="640x360", bitrate="800k"):
    """Like encode_clip, at another resolution and bit rate (a different H.264 configuration)."""
    args = [a.replace("1280x720", size).replace("2500k", bitrate) for a in CLIP_CMD] + ["-t", str(seconds)]
    digest = hashlib.sha256(json.dumps(args).encode()).hexdigest()[:12]
    cache = pathlib.Path(os.environ.get("SF_CLIP_CACHE", pathlib.Path(tempfile.gettempdir()) / "streamflex-it-clips"))
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"clip-{seconds}s-{size}-{digest}.flv"
    if path.exists() and path.stat().st_size > 0:
        return path
    tmp = cache / f".{path.name}.{os.getpid()}.tmp"
    run(["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-y", *args, "-f", "flv", str(tmp)], timeout=120,
        check=True)
    os.replace(tmp, path)
    return path


# ---- edges (caching reverse proxies) and viewers ----------------------------------------------

def start_all(pool, args=(), **kw):
    """start_origin, plus srv.edge: the base URL of the in-process edge of `all` (on the free port
    Server chose, srv.edge_port)."""
    srv = start_origin(pool, args=args, **kw)
    srv.edge = f"http://{HOST}:{srv.edge_port}"
    return srv


def start_edge(pool, upstreams, edge_id=None, args=(), **kw):
    """A started `streamflex edge` on free ports; `upstreams` are "host:port" (origins or shields).
    srv.edge is its base URL, srv.edge_port its port."""
    port = free_port()
    a = [f"--edge.listen={HOST}:{port}", "--edge.upstreams=" + ",".join(upstreams)]
    if edge_id:
        a.append(f"--edge.id={edge_id}")
    kw.setdefault("record", False)
    srv = pool(role="edge", start=False, args=[*a, *args], **kw)
    srv.edge_port = port
    srv.edge = f"http://{HOST}:{port}"
    srv.start()
    wait_until(lambda: srv.logs("HTTP listening", component="edge"), 5, "edge listening")
    return srv


def ffmpeg_publish_looped(clip, url, log_path):
    """ffmpeg -re publishing `clip` over and over (-stream_loop -1) until stopped."""
    return Proc(["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "info", "-re", "-stream_loop", "-1", "-i", clip,
                 "-c", "copy", "-f", "flv", url], log_path)


def loadgen_available():
    return run([BIN, "loadgen", "--help"], timeout=10).returncode == 0


def start_loadgen(url, viewers, duration, json_path, log_path, args=()):
    """`streamflex loadgen` in the background; read its summary with loadgen_summary() after it exits."""
    return Proc([BIN, "loadgen", "--url", url, "--viewers", str(viewers), "--duration", duration,
                 "--json", str(json_path), *args], log_path)


def loadgen_summary(proc, json_path, timeout):
    """Waits for a loadgen Proc and returns its JSON summary (fails with its output if there is none)."""
    rc = proc.wait(timeout)
    path = pathlib.Path(json_path)
    assert path.exists(), f"loadgen exited {rc} without {path}; output:\n{proc.tail()}"
    summary = json.loads(path.read_text())
    summary["_exit"] = rc
    return summary


class CountingProxy:
    """An HTTP/1.1 forwarder between one client (a shield edge) and one upstream (an origin) that
    records every request it passes on: (method, target, status). Keep-alive and held requests are
    supported (a thread per client connection); bodies are framed by Content-Length only, which
    is all streamflex sends. Binds 127.0.0.1 on a free port; stop() closes everything."""

    def __init__(self, upstream_port):
        import threading
        self.upstream_port = upstream_port
        self.requests = []
        self._lock = threading.Lock()
        self._stopping = False
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind((HOST, 0))
        self._sock.listen(512)
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self._conns = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self):
        import threading
        while not self._stopping:
            try:
                c, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            with self._lock:
                self._conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    @staticmethod
    def _read_head(sock, buf):
        for _ in range(100000):
            at = buf.find(b"\r\n\r\n")
            if at >= 0:
                return bytes(buf[:at + 4]), buf[at + 4:]
            chunk = sock.recv(65536)
            if not chunk:
                return None, buf
            buf += chunk
        return None, buf

    @staticmethod
    def _length(head):
        m = re.search(rb"\r\ncontent-length:\s*(\d+)", head, re.I)
        return int(m.group(1)) if m else 0

    def _read_body(self, sock, buf, n):
        for _ in range(1000000):
            if len(buf) >= n:
                break
            chunk = sock.recv(min(1 << 20, n - len(buf)))
            if not chunk:
                break
            buf += chunk
        return bytes(buf[:n]), buf[n:]

    def _serve(self, client):
        up = None
        try:
            client.settimeout(60)
            up = socket.create_connection((HOST, self.upstream_port), timeout=60)
            with self._lock:
                self._conns.append(up)
            cbuf, ubuf = bytearray(), bytearray()
            for _ in range(1000000):
                head, cbuf = self._read_head(client, cbuf)
                if head is None:
                    break
                body, cbuf = self._read_body(client, bytearray(cbuf), self._length(head))
                cbuf = bytearray(cbuf)
                up.sendall(head + body)
                rhead, ubuf = self._read_head(up, ubuf)
                if rhead is None:
                    break
                method, target = head.split(b" ", 2)[:2]
                rbody = b""
                if method != b"HEAD":
                    rbody, ubuf = self._read_body(up, bytearray(ubuf), self._length(rhead))
                ubuf = bytearray(ubuf)
                with self._lock:
                    self.requests.append((method.decode(), target.decode(), int(rhead.split(b" ", 2)[1])))
                client.sendall(rhead + rbody)
                if re.search(rb"\r\nconnection:\s*close", rhead + head, re.I):
                    break
        except OSError:
            pass
        finally:
            for s in (client, up):
                if s is not None:
                    try:
                        s.close()
                    except OSError:
                        pass

    def snapshot(self):
        with self._lock:
            return list(self.requests)

    def stop(self):
        self._stopping = True
        self._sock.close()
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.close()
            except OSError:
                pass
        self._thread.join(timeout=5)
