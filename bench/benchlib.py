"""Shared helpers for the origin benchmarks (part_latency, origin_throughput; glass_to_glass uses
the server classes through its small launcher). Standard library only.

- Registry: every process a benchmark starts, listed in <workdir>/pids as "pid starttime" so the
  shell script's EXIT trap can kill leftovers by PID (the start time guards against PID reuse).
- StreamFlex / Nginx: start a server pinned to one core on 127.0.0.1 and free ports, wait until
  it is ready, stop it by PID.
- read_flv: a tiny FLV tag reader; RtmpPublisher: publishes FLV tags over RTMP in real time with
  the minimal client of tests/integration/rtmp_client.py, recording when each message was sent.
"""

import asyncio
import datetime
import hashlib
import json
import os
import re
import signal
import socket
import statistics
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import rtmp_client  # noqa: E402  (the integration suite's minimal RTMP client)
import sfharness  # noqa: E402

NGINX_RTMP_MODULE = "/usr/lib/nginx/modules/ngx_rtmp_module.so"


class Abort(Exception):
    pass


def log(name, msg):
    print(f"[{name} {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- /proc helpers

def _stat_fields(pid):
    with open(f"/proc/{pid}/stat") as f:
        data = f.read()
    return data[data.rindex(")") + 2:].split()


def start_time(pid):
    return int(_stat_fields(pid)[19])


def alive(pid):
    try:
        return _stat_fields(pid)[0] not in ("Z", "X")
    except OSError:
        return False


def children(pid):
    out = []
    try:
        for t in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{t}/children") as f:
                    out += [int(x) for x in f.read().split()]
            except OSError:
                pass
    except OSError:
        pass
    return out


def cpu_seconds(pid):
    f = _stat_fields(pid)
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- process registry

class Registry:
    def __init__(self, workdir):
        self.path = os.path.join(workdir, "pids")
        self.procs = []

    def spawn(self, argv, logfile, **kw):
        out = open(logfile, "ab")
        kw.setdefault("stdin", subprocess.DEVNULL)
        kw.setdefault("stdout", out)
        kw.setdefault("stderr", subprocess.STDOUT)
        p = subprocess.Popen(argv, close_fds=True, **kw)
        out.close()
        self.procs.append(p)
        self.note(p.pid)
        return p

    def note(self, pid):
        try:
            st = start_time(pid)
        except OSError:
            return
        with open(self.path, "a") as f:
            f.write(f"{pid} {st}\n")

    def stop(self, procs, sig=signal.SIGTERM, wait=8.0):
        procs = [p for p in procs if p.poll() is None]
        for p in procs:
            try:
                p.send_signal(sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        for p in procs:
            try:
                p.wait(timeout=max(0.05, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    p.kill()
                    p.wait(timeout=3)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    pass

    def stop_all(self):
        self.stop(self.procs, wait=5.0)


# ---------------------------------------------------------------- small helpers

def free_port():
    """A free port below the ephemeral range (the integration harness's choice, see there)."""
    return sfharness.free_port()


def tcp_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def http_get(url, timeout=3.0):
    """(status, body bytes); status None when the server did not answer."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, b""
    except (OSError, urllib.error.URLError):
        return None, b""


def tail(path, n=8):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:]).rstrip()
    except OSError:
        return ""


def percentile(values, p):
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    if not values:
        return None
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(-(-p * len(s) // 100)) - 1))
    return s[k]


def summary(values):
    if not values:
        return {"count": 0}
    return {"count": len(values), "p50": percentile(values, 50), "p95": percentile(values, 95),
            "p99": percentile(values, 99), "max": max(values), "min": min(values),
            "mean": sum(values) / len(values)}


WRK_FIGURES = ("rps", "mb_s", "p50_ms", "p99_ms", "server_cpu_pct", "cpu_us_per_req", "wrk_cpu_pct")


def median_case(rows, **match):
    """The wrk runs in `rows` whose fields equal `match` (server=, object=, conns=), in their order:
    each of WRK_FIGURES as its median over them, socket errors and non-2xx summed, the runs kept
    (None without a run). Benchmarks repeat each case over rounds and judge the medians: runs of
    the same case here differ by up to 15 % from one to the next."""
    runs = [r for r in rows if all(r.get(k) == v for k, v in match.items())]
    if not runs:
        return None
    out = {}
    for k in WRK_FIGURES:
        v = sorted(r[k] for r in runs if r.get(k) is not None)
        out[k] = statistics.median(v) if v else None
    out["socket_errors"] = {"all": sum(sum(r["socket_errors"].values()) for r in runs)}
    out["non_2xx"] = sum(r["non_2xx"] for r in runs)
    out["runs"] = runs
    return out


def round_ratios(a, b, ok):
    """Each round's req/s and p99 ratios of `a` to `b` (median_case results), '*' where that
    round alone misses the goal (`ok(run_a, run_b)`)."""
    return "  ".join(f"{ra['rps'] / rb['rps']:.2f}/{ra['p99_ms'] / rb['p99_ms']:.2f}" + ("" if ok(ra, rb) else "*")
                     for ra, rb in zip(a["runs"], b["runs"]) if ra["rps"] and rb["rps"] and ra["p99_ms"] and rb["p99_ms"])


def write_json(results_dir, name, record):
    os.makedirs(results_dir, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = os.path.join(results_dir, f"{name}-{stamp}.json")
    with open(path, "w") as f:
        json.dump(record, f, indent=1, sort_keys=True, default=str)
    return path


def binary_info(path):
    info = {"path": path}
    try:
        st = os.stat(path)
        info["mtime"] = datetime.datetime.fromtimestamp(st.st_mtime).isoformat(timespec="seconds")
        info["size"] = st.st_size
        ldd = subprocess.run(["ldd", path], capture_output=True, text=True, timeout=10).stdout
        info["asan"] = "libasan" in ldd
        h = hashlib.sha1()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        info["sha1"] = h.hexdigest()[:12]
    except (OSError, subprocess.TimeoutExpired):
        pass
    return info


# ---------------------------------------------------------------- servers

class StreamFlex:
    """`streamflex all` with the origin on; one stream key created before start."""
    name = "streamflex"

    def __init__(self, reg, binary, workdir, core, stream="bench", extra=()):
        self.reg, self.bin, self.core, self.stream = reg, binary, str(core), stream
        self.wd = os.path.join(workdir, "streamflex")
        self.extra = list(extra)
        self.proc = None

    def start(self):
        os.makedirs(self.wd, exist_ok=True)
        db = os.path.join(self.wd, "db")
        out = subprocess.run([self.bin, "keys", "create", self.stream, f"--store.path={db}"],
                             capture_output=True, text=True, timeout=30)
        lines = out.stdout.strip().splitlines()
        if out.returncode != 0 or not lines:
            raise Abort(f"streamflex keys create failed ({out.returncode}): {out.stderr.strip()}")
        self.key = lines[-1].strip()
        self.admin, self.rtmp, self.http = free_port(), free_port(), free_port()
        self.log = os.path.join(self.wd, "server.log")
        argv = ["taskset", "-c", self.core, self.bin, "all", "--demo.enabled=false", f"--store.path={db}",
                f"--admin.listen=127.0.0.1:{self.admin}", f"--ingest.rtmp_listen=127.0.0.1:{self.rtmp}",
                f"--origin.listen=127.0.0.1:{self.http}", "--log.level=warn",
                f"--origin.web_root={os.path.join(ROOT, 'web', 'dist')}"] + self.extra
        # The origin benchmarks measure packaging and serving of the published stream itself
        # (`all` transcodes a ladder by default since the transcoding issue).
        if not any(a.startswith("--transcode.profile=") for a in self.extra):
            argv.append("--transcode.profile=passthrough")
        self.argv = argv
        self.proc = self.reg.spawn(argv, self.log)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise Abort(f"streamflex exited with {self.proc.returncode}:\n{tail(self.log)}")
            if http_get(f"http://127.0.0.1:{self.admin}/readyz", 1.0)[0] == 200:
                return self
            time.sleep(0.1)
        raise Abort(f"streamflex not ready on /readyz within 20 s:\n{tail(self.log)}")

    @property
    def publish_url(self):
        return f"rtmp://127.0.0.1:{self.rtmp}/live/{self.key}"

    @property
    def publish_key(self):
        return self.key

    def pids(self):
        return [self.proc.pid] if self.proc else []

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc:
            self.reg.stop([self.proc], wait=10.0)


class Nginx:
    """nginx -p PREFIX with one worker pinned to `core`; `body` is the config after the globals
    (rtmp and/or http blocks). Runs as the invoking user's default worker user, so everything
    the worker reads or writes must be reachable by it (see make_world_readable)."""
    name = "nginx"

    def __init__(self, reg, workdir, core, body, modules=(NGINX_RTMP_MODULE,), worker_connections=4096):
        self.reg, self.core, self.body, self.modules = reg, int(core), body, modules
        self.prefix = os.path.join(workdir, "nginx")
        self.worker_connections = worker_connections
        self.proc, self.workers = None, []

    def start(self, probe_port):
        os.makedirs(os.path.join(self.prefix, "logs"), exist_ok=True)
        os.makedirs(os.path.join(self.prefix, "tmp"), exist_ok=True)
        conf = os.path.join(self.prefix, "nginx.conf")
        mask = format(1 << self.core, "b")
        loads = "".join(f"load_module {m};\n" for m in self.modules)
        p = self.prefix
        with open(conf, "w") as f:
            f.write(f"""{loads}worker_processes 1;
worker_cpu_affinity {mask};
worker_rlimit_nofile 20000;
daemon off;
master_process on;
pid {p}/nginx.pid;
error_log {p}/logs/error.log warn;
events {{ worker_connections {self.worker_connections}; multi_accept on; }}
{self.body}
""")
        self.log = os.path.join(p, "logs", "stdout.log")
        argv = ["taskset", "-c", str(self.core), "nginx", "-p", p + "/", "-c", conf,
                "-e", os.path.join(p, "logs", "error.log")]
        self.proc = self.reg.spawn(argv, self.log)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise Abort(f"nginx exited with {self.proc.returncode}:\n{tail(self.log)}\n"
                            f"{tail(os.path.join(p, 'logs', 'error.log'))}")
            kids = children(self.proc.pid)
            if kids and tcp_open(probe_port):
                self.workers = kids
                for k in kids:
                    self.reg.note(k)
                return self
            time.sleep(0.1)
        raise Abort("nginx worker not up within 20 s")

    def pids(self):
        return ([self.proc.pid] if self.proc else []) + self.workers

    def alive(self):
        return self.proc is not None and self.proc.poll() is None and all(alive(w) for w in self.workers)

    def stop(self):
        if self.proc:
            self.reg.stop([self.proc], wait=10.0)
        for w in self.workers:
            if alive(w):
                try:
                    os.kill(w, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def http_temp_paths(prefix):
    """nginx http{} temp paths inside the prefix (the compiled-in ones are under /var/lib)."""
    t = os.path.join(prefix, "tmp")
    return "".join(f"{k} {t}/{k.split('_temp')[0]};\n    " for k in (
        "client_body_temp_path", "proxy_temp_path", "fastcgi_temp_path", "uwsgi_temp_path",
        "scgi_temp_path"))


def nginx_rtmp_hls_conf(prefix, rtmp_port, http_port, hls_dir, extra_locations=""):
    """nginx.conf body for nginx-rtmp's HLS (1 s fragments, 6 s playlist) written to `hls_dir` and
    served over HTTP at /hls/ (no-cache, CORS), the peer of glass_to_glass and part_latency;
    `extra_locations` is added to the http server block."""
    return f"""rtmp {{
    server {{
        listen 127.0.0.1:{rtmp_port};
        chunk_size 4096;
        application live {{
            live on;
            hls on;
            hls_path {hls_dir};
            hls_fragment 1s;
            hls_playlist_length 6s;
        }}
    }}
}}
http {{
    access_log off;
    {http_temp_paths(prefix)}
    server {{
        listen 127.0.0.1:{http_port};
        location /hls/ {{
            alias {hls_dir}/;
            types {{ application/vnd.apple.mpegurl m3u8; video/mp2t ts; }}
            add_header Cache-Control no-cache;
            add_header Access-Control-Allow-Origin *;
        }}{extra_locations}
    }}
}}"""


def wait_live_parts(master_url, publisher, min_parts, timeout=30.0, publisher_log=None, server_log=None):
    """Polls the multivariant playlist at `master_url` until its first media playlist lists at least
    `min_parts` EXT-X-PART lines; returns that count. Raises Abort if `publisher` (a Popen) exits or
    the deadline passes (with the tail of the logs given)."""
    deadline = time.monotonic() + timeout
    parts = 0
    while time.monotonic() < deadline:
        if publisher.poll() is not None:
            raise Abort(f"publisher exited with {publisher.returncode}" +
                        (f":\n{tail(publisher_log)}" if publisher_log else ""))
        code, body = http_get(master_url, 2.0)
        if code == 200:
            m = re.search(rb"^([^#\s][^\s]*\.m3u8)", body, re.M) or re.search(rb'URI="([^"]+\.m3u8)"', body)
            if m:
                c2, pl = http_get(master_url.rsplit("/", 1)[0] + "/" + m.group(1).decode(), 2.0)
                parts = pl.count(b"#EXT-X-PART:") if c2 == 200 else 0
                if parts >= min_parts:
                    return parts
        time.sleep(0.5)  # a live stream's pace: nothing to wait on but the next poll
    raise Abort(f"stream not live with {min_parts} parts within {timeout:g} s ({parts} parts)" +
                (f":\n{tail(server_log)}" if server_log else ""))


def viewer_bench_args(ap, n_list, duration, ramp):
    """The arguments the viewer-stepping helpers (edge_viewers_per_core, loadgen_capacity) share."""
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--results", required=True)
    ap.add_argument("--streamflex-bin", required=True)
    ap.add_argument("--source", required=True)
    ap.add_argument("--n-list", default=n_list)
    ap.add_argument("--duration", type=int, default=duration)
    ap.add_argument("--ramp", type=int, default=ramp)
    ap.add_argument("--server-core", default="0")
    ap.add_argument("--client-core", default="1")


def read_json(path):
    """The JSON document at `path`, or {} if it is missing or not JSON (a run that died)."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def make_world_readable(path, writable=False):
    """nginx workers started by root run as `nobody`: open the way to `path`."""
    p = os.path.abspath(path)
    os.chmod(p, 0o777 if writable else 0o755)
    parent = os.path.dirname(p)
    while parent and parent != "/":
        st = os.stat(parent)
        if not st.st_mode & 0o001:
            os.chmod(parent, st.st_mode | 0o011)
        parent = os.path.dirname(parent)


# ---------------------------------------------------------------- FLV and RTMP publishing

class Tag:
    __slots__ = ("type", "ts", "body", "keyframe", "config")

    def __init__(self, type_, ts, body):
        self.type, self.ts, self.body = type_, ts, body
        # Video: frame type 1 = keyframe; AVC packet type 0 = sequence header. Audio (AAC):
        # packet type 0 = AudioSpecificConfig.
        self.keyframe = type_ == 9 and len(body) > 0 and (body[0] >> 4) == 1
        if type_ == 9:
            self.config = len(body) > 1 and (body[0] & 0x0F) == 7 and body[1] == 0
        elif type_ == 8:
            self.config = len(body) > 1 and (body[0] >> 4) == 10 and body[1] == 0
        else:
            self.config = True


def read_flv(path):
    """All tags of an FLV file: [Tag(type 8 audio / 9 video / 18 script, timestamp ms, body)]."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:3] != b"FLV":
        raise Abort(f"{path}: not an FLV file")
    pos = struct.unpack(">I", data[5:9])[0] + 4  # header, then PreviousTagSize0
    tags = []
    while pos + 11 <= len(data):
        ttype = data[pos] & 0x1F
        size = int.from_bytes(data[pos + 1:pos + 4], "big")
        ts = int.from_bytes(data[pos + 4:pos + 7], "big") | (data[pos + 7] << 24)
        body = data[pos + 11:pos + 11 + size]
        if len(body) < size:
            break  # truncated last tag
        tags.append(Tag(ttype, ts, body))
        pos += 11 + size + 4
    return tags


def loop_schedule(tags, seconds):
    """(ts, Tag) in send order covering `seconds` of media: configuration tags once, then the
    media tags repeated with continuous timestamps (the file starts on a keyframe)."""
    cfg = [t for t in tags if t.config]
    media = [t for t in tags if not t.config]
    if not media:
        raise Abort("source has no media tags")
    first = media[0].ts
    span = media[-1].ts - first
    vts = sorted({t.ts for t in media if t.type == 9})
    step = (vts[-1] - vts[0]) / max(1, len(vts) - 1) if len(vts) > 1 else 33
    period = int(round(span + step))
    out = [(0, t) for t in cfg]
    offset = 0
    while offset < seconds * 1000:
        for t in media:
            ts = t.ts - first + offset
            if ts > seconds * 1000:
                break
            out.append((ts, t))
        offset += period
    return out


class RtmpPublisher:
    """Publishes a schedule of FLV tags over RTMP, each message at its real-time moment, and
    records time.monotonic_ns() when the kernel has taken the message's last byte.

    The session (handshake, connect, createStream, publish) uses the integration suite's blocking
    client; media then goes out from asyncio on the same, now non-blocking, socket."""

    CSID = {8: 4, 9: 6, 18: 5}

    def __init__(self, port, key, app="live", chunk_size=4096):
        self.port, self.key, self.app, self.chunk_size = port, key, app, chunk_size
        self.sent = []  # (monotonic_ns, ts, type, keyframe, config)
        self.client = None

    def connect(self):
        c = rtmp_client.RtmpClient(self.port, timeout=10.0)
        self.client = c
        status = c.publish(self.key, app=self.app, timeout=10.0)
        code = status.get("code") if isinstance(status, dict) else None
        if code != "NetStream.Publish.Start":
            raise Abort(f"publish refused: {status}")
        # The stream id createStream returned is the one publish used; find it from the client's
        # last command. rtmp_client keeps no state for it, so ask the socket's history instead.
        self.stream_id = self._stream_id()
        c.send_message(2, rtmp_client.SET_CHUNK_SIZE, 0, struct.pack(">I", self.chunk_size))
        c.out_chunk_size = self.chunk_size
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return status

    def _stream_id(self):
        for mtype, _sid, body in self.client.received:
            if mtype == rtmp_client.AMF0_COMMAND:
                v = rtmp_client.amf0_decode_all(body)
                if len(v) >= 4 and v[0] == "_result" and v[1] == 4.0:
                    return int(v[3])
        return 1

    def message(self, tag, ts):
        body = tag.body
        if tag.type == 18:
            body = rtmp_client.amf0_encode("@setDataFrame") + body
        return rtmp_client.chunk_message(self.CSID.get(tag.type, 7), tag.type, self.stream_id, ts, body,
                                         self.chunk_size)

    async def run(self, schedule, t0_ns, stop):
        """Sends `schedule` [(ts, Tag)] so that the message with timestamp ts leaves at
        t0_ns + ts ms. Stops early when `stop` is set. Drains what the server sends."""
        loop = asyncio.get_running_loop()
        sock = self.client.sock
        sock.setblocking(False)
        drain = asyncio.ensure_future(self._drain(sock))
        try:
            for ts, tag in schedule:
                if stop.is_set():
                    break
                due = t0_ns + ts * 1_000_000
                wait = (due - time.monotonic_ns()) / 1e9
                if wait > 0:
                    await asyncio.sleep(wait)
                data = self.message(tag, ts)
                await loop.sock_sendall(sock, data)
                self.sent.append((time.monotonic_ns(), ts, tag.type, tag.keyframe, tag.config))
        finally:
            drain.cancel()

    async def _drain(self, sock):
        loop = asyncio.get_running_loop()
        try:
            while True:
                data = await loop.sock_recv(sock, 65536)
                if not data:
                    return
        except (OSError, asyncio.CancelledError):
            return

    def close(self):
        if self.client:
            self.client.close()


# ---------------------------------------------------------------- a minimal async HTTP/1.1 client

class HttpConn:
    """One keep-alive HTTP/1.1 connection driven by loop.sock_* calls, timing the first byte of
    each answer with time.monotonic_ns()."""

    def __init__(self, port, host="127.0.0.1"):
        self.port, self.host = port, host
        self.sock = None
        self.buf = b""

    async def open(self):
        loop = asyncio.get_running_loop()
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await loop.sock_connect(s, (self.host, self.port))
        self.sock, self.buf = s, b""

    def close(self):
        if self.sock:
            self.sock.close()
            self.sock = None

    async def get(self, path, timeout=30.0):
        """Returns (status, body, t_sent_ns, t_first_byte_ns)."""
        return await asyncio.wait_for(self._get(path), timeout)

    async def _get(self, path):
        loop = asyncio.get_running_loop()
        if self.sock is None:
            await self.open()
        req = f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nUser-Agent: sf-bench\r\n\r\n".encode()
        await loop.sock_sendall(self.sock, req)
        t_sent = time.monotonic_ns()
        t_first = None
        if self.buf:
            t_first = t_sent
        while b"\r\n\r\n" not in self.buf:
            data = await loop.sock_recv(self.sock, 65536)
            if t_first is None:
                t_first = time.monotonic_ns()
            if not data:
                self.close()
                raise ConnectionError("connection closed before the response head")
            self.buf += data
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for ln in lines[1:]:
            k, _, v = ln.partition(":")
            headers[k.strip().lower()] = v.strip()
        if "content-length" in headers:
            n = int(headers["content-length"])
            while len(rest) < n:
                data = await loop.sock_recv(self.sock, 65536)
                if not data:
                    raise ConnectionError("connection closed in the body")
                rest += data
            body, self.buf = rest[:n], rest[n:]
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                while b"\r\n" not in rest:
                    rest += await loop.sock_recv(self.sock, 65536)
                line, _, rest = rest.partition(b"\r\n")
                n = int(line.split(b";")[0], 16)
                while len(rest) < n + 2:
                    rest += await loop.sock_recv(self.sock, 65536)
                body += rest[:n]
                rest = rest[n + 2:]
                if n == 0:
                    break
            self.buf = rest
        else:
            body = rest
            while True:
                data = await loop.sock_recv(self.sock, 65536)
                if not data:
                    break
                body += data
            self.close()
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, body, t_sent, t_first
