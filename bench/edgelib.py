"""Shared helpers for the edge benchmarks (edge_cache_hit, edge_coalescing, edge_viewers_per_core),
on top of bench/benchlib.py. Standard library only.

- Upstream: bench/edge_upstream.py (static objects, slow objects that count and time their answers).
- StreamFlexEdge: `streamflex edge` alone (--io.threads=1, pinned) in front of one upstream.
- nginx_proxy_http(): the http{} block of nginx as a caching reverse proxy (proxy_cache,
  proxy_cache_lock) in front of one upstream.
- rss_kib(), metrics(): memory of a process set, a StreamFlex /metrics scrape.
"""

import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
PY = "/usr/bin/python3"


def memfd_kib(pid):
    """Bytes (KiB) in the memfd and unnamed (O_TMPFILE, deleted) files `pid` holds open: StreamFlex
    keeps large cached objects in such files (sent with sendfile), whose pages are memory (shmem or
    page cache) but, being unmapped, not in VmRSS."""
    total = 0
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return 0
    for fd in fds:
        path = f"/proc/{pid}/fd/{fd}"
        try:
            target = os.readlink(path)
            if target.startswith("/memfd:") or (target.startswith("/") and target.endswith(" (deleted)")
                                                 and "/#" in target):
                total += os.stat(path).st_size
        except OSError:
            pass
    return total // 1024


def rss_kib(pids, memfd=False):
    """Sum of VmRSS over `pids` (KiB), plus their memfd files with `memfd` (memfd_kib: a scan of
    every descriptor, too slow for frequent sampling at thousands of connections); processes that
    are gone count 0."""
    total = 0
    for pid in pids:
        if memfd:
            total += memfd_kib(pid)
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            pass
    return total


def cpu_total(pids):
    s = 0.0
    for p in pids:
        try:
            s += bl.cpu_seconds(p)
        except OSError:
            pass
    return s


def metrics(admin_port):
    """{name{labels}: value} from a Prometheus text page; {} when unreachable."""
    code, body = bl.http_get(f"http://127.0.0.1:{admin_port}/metrics", 3.0)
    out = {}
    if code != 200:
        return out
    for line in body.decode(errors="replace").splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^(\S+)\s+(\S+)$", line)
        if m:
            try:
                out[m.group(1)] = float(m.group(2))
            except ValueError:
                pass
    return out


def http_head(url, timeout=5.0, headers=None):
    """(status, {lower header: value}, body) without raising; status None on failure."""
    import urllib.error
    import urllib.request
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, b""
    except (OSError, urllib.error.URLError):
        return None, {}, b""


class Upstream:
    """bench/edge_upstream.py on `core`, free port."""
    name = "upstream"

    def __init__(self, reg, workdir, core, root, cache_control="public, max-age=60", slow_ms=500,
                 slow_bytes=100000, slow_cache_control="public, max-age=60"):
        self.reg, self.core, self.root = reg, str(core), root
        self.cache_control, self.slow_ms, self.slow_bytes = cache_control, slow_ms, slow_bytes
        self.slow_cache_control = slow_cache_control
        self.answer_log = os.path.join(workdir, "upstream-answers.jsonl")
        self.log = os.path.join(workdir, "upstream.log")
        self.proc = None

    def start(self):
        self.port = bl.free_port()
        argv = ["taskset", "-c", self.core, PY, os.path.join(HERE, "edge_upstream.py"), "--port", str(self.port),
                "--root", self.root, "--cache-control", self.cache_control, "--slow-ms", str(self.slow_ms),
                "--slow-bytes", str(self.slow_bytes), "--slow-cache-control", self.slow_cache_control,
                "--log", self.answer_log]
        self.proc = self.reg.spawn(argv, self.log)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise bl.Abort(f"upstream exited with {self.proc.returncode}:\n{bl.tail(self.log)}")
            if bl.http_get(f"http://127.0.0.1:{self.port}/healthz", 1.0)[0] == 200:
                return self
            time.sleep(0.05)
        raise bl.Abort("upstream not ready within 15 s")

    def counts(self):
        code, body = bl.http_get(f"http://127.0.0.1:{self.port}/_stats", 3.0)
        return json.loads(body) if code == 200 else {}

    def answers(self, path=None):
        out = []
        try:
            with open(self.answer_log) as f:
                for line in f:
                    try:
                        a = json.loads(line)
                    except ValueError:
                        continue
                    if path is None or a["path"] == path:
                        out.append(a)
        except OSError:
            pass
        return out

    def pids(self):
        return [self.proc.pid] if self.proc else []

    def stop(self):
        if self.proc:
            self.reg.stop([self.proc])


class StreamFlexEdge:
    """`streamflex edge` alone in front of `upstream_port`: one I/O thread, pinned to `core`."""
    name = "streamflex"

    def __init__(self, reg, binary, workdir, core, upstream_port, extra=(), tag="edge"):
        self.reg, self.bin, self.core, self.upstream_port = reg, binary, str(core), upstream_port
        self.wd = os.path.join(workdir, tag)
        self.extra = list(extra)
        self.proc = None

    def start(self):
        os.makedirs(self.wd, exist_ok=True)
        self.port, self.admin = bl.free_port(), bl.free_port()
        self.log = os.path.join(self.wd, "edge.log")
        self.argv = ["taskset", "-c", self.core, self.bin, "edge", f"--edge.listen=127.0.0.1:{self.port}",
                     f"--edge.upstreams=127.0.0.1:{self.upstream_port}", f"--admin.listen=127.0.0.1:{self.admin}",
                     "--io.threads=1", "--log.level=warn", f"--store.path={os.path.join(self.wd, 'db')}"] + self.extra
        self.proc = self.reg.spawn(self.argv, self.log)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise bl.Abort(f"streamflex edge exited with {self.proc.returncode}:\n{bl.tail(self.log)}")
            if bl.http_get(f"http://127.0.0.1:{self.admin}/readyz", 1.0)[0] == 200 and bl.tcp_open(self.port):
                return self
            time.sleep(0.05)
        raise bl.Abort(f"streamflex edge not ready within 20 s:\n{bl.tail(self.log)}")

    def pids(self):
        return [self.proc.pid] if self.proc else []

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def metrics(self):
        return metrics(self.admin)

    def stop(self):
        if self.proc:
            self.reg.stop([self.proc], wait=10.0)


def nginx_proxy_http(prefix, port, upstream_port, cache_key="$uri", valid="200 60s", lock_timeout="10s",
                     extra_location=""):
    """http{} block: nginx as a caching reverse proxy of 127.0.0.1:upstream_port on 127.0.0.1:port.
    Cache files live in <prefix>/cache (made writable for the worker user). Cache-Control from the
    upstream decides freshness (nginx's default); proxy_cache_valid only covers answers without it."""
    cache = os.path.join(prefix, "cache")
    os.makedirs(cache, exist_ok=True)
    os.makedirs(os.path.join(prefix, "tmp"), exist_ok=True)
    bl.make_world_readable(cache, writable=True)
    bl.make_world_readable(os.path.join(prefix, "tmp"), writable=True)
    return f"""http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 65;
    keepalive_requests 1000000;
    # The proxy cache opens its files through open_file_cache too.
    open_file_cache max=10000 inactive=60s;
    open_file_cache_valid 60s;
    {bl.http_temp_paths(prefix)}
    proxy_cache_path {cache} levels=1:2 keys_zone=edge:32m max_size=4g inactive=10m use_temp_path=off;
    upstream origin {{ server 127.0.0.1:{upstream_port}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache edge;
            proxy_cache_key "{cache_key}";
            proxy_cache_valid {valid};
            proxy_cache_lock on;
            proxy_cache_lock_timeout {lock_timeout};
            proxy_cache_lock_age {lock_timeout};
            proxy_read_timeout 30s;
            proxy_buffers 64 64k;
            add_header X-Cache $upstream_cache_status always;
            {extra_location}
        }}
    }}
}}"""


def start_nginx_proxy(reg, workdir, core, upstream_port, worker_connections=16384, tag="nginx-proxy", **kw):
    """benchlib.Nginx (one worker, worker_cpu_affinity, pinned with taskset) running
    nginx_proxy_http(); its prefix is <workdir>/<tag>/nginx. Returns it with .port set."""
    base = os.path.join(workdir, tag)
    prefix = os.path.join(base, "nginx")
    os.makedirs(prefix, exist_ok=True)
    port = bl.free_port()
    body = nginx_proxy_http(prefix, port, upstream_port, **kw)
    ng = bl.Nginx(reg, base, core, body, modules=(), worker_connections=worker_connections)
    ng.start(port)
    ng.port = port
    ng.error_log = os.path.join(prefix, "logs", "error.log")
    return ng


def loadavg():
    with open("/proc/loadavg") as f:
        return f.read().strip()


def core_busy():
    """{core: (busy, total)} jiffies from /proc/stat."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu") and line[3].isdigit():
                p = line.split()
                v = [int(x) for x in p[1:]]
                idle = v[3] + (v[4] if len(v) > 4 else 0)
                out[int(p[0][3:])] = (sum(v) - idle, sum(v))
    return out


def busy_pct(b0, b1):
    return {c: 100 * (b1[c][0] - b0[c][0]) / max(1, b1[c][1] - b0[c][1]) for c in b1 if c in b0}


def run(argv, timeout):
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
