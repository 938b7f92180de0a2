#!/usr/bin/python3
"""RTMP ingest benchmark: N concurrent ffmpeg publishers against StreamFlex and nginx-rtmp.

Started by bench/ingest_publishers.sh (which pins this helper to core 1, owns the temporary
directory and kills every PID listed in <workdir>/pids on exit). Standard library only.

For each N in N_LIST and each server (StreamFlex `ingest`, nginx with libnginx-mod-rtmp, live
application without recording or HLS), in one run:
  1. start the server pinned to core 0, wait until it is ready, read its resident memory;
  2. start N publishers pinned to core 1: `ffmpeg -re -stream_loop -1 -i SRC -c copy -f flv URL`
     of a pre-encoded ~6 Mbit/s file, wait until every one has written media, warm up;
  3. over a DURATION-second window read utime+stime of the server's processes
     (/proc/PID/stat), bytes the server's TCP sockets received (ss), bytes each publisher sent
     (ffmpeg -progress) and per-core load (/proc/stat); read resident memory at the end;
  4. check every publisher is still running, stop publishers, stop the server.
Prints a table and writes JSON to bench/results/.
"""

import argparse
import datetime
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

CLK_TCK = os.sysconf("SC_CLK_TCK")
GOAL_RATIO = 0.5


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import Registry, alive, children, free_port, start_time, tail, tcp_open  # noqa: E402


class Abort(Exception):
    pass


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def warn(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] WARNING: {msg}", flush=True)


# ---------------------------------------------------------------- /proc helpers

def proc_stat_fields(pid):
    """Fields of /proc/PID/stat after the command name; index 0 is field 3 (state)."""
    with open(f"/proc/{pid}/stat") as f:
        data = f.read()
    return data[data.rindex(")") + 2:].split()


def cpu_ticks(pid):
    f = proc_stat_fields(pid)
    return int(f[11]) + int(f[12])  # utime (14) + stime (15)


def sched_ns(pid):
    """Nanoseconds on CPU of all live threads of PID (first field of each task's schedstat)."""
    total = 0
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{t}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def threads(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return 0


def core_times():
    """{core: (busy_ticks, total_ticks)} from /proc/stat."""
    res = {}
    with open("/proc/stat") as f:
        for line in f:
            m = re.match(r"cpu(\d+)\s+(.*)", line)
            if not m:
                continue
            v = [int(x) for x in m.group(2).split()]
            idle = v[3] + v[4]  # idle + iowait
            total = sum(v[:8])  # user..steal (guest is already in user)
            res[int(m.group(1))] = (total - idle, total)
    return res


def core_busy_pct(a, b, core):
    if core not in a or core not in b:
        return None
    db = b[core][0] - a[core][0]
    dt = b[core][1] - a[core][1]
    return 100.0 * db / dt if dt > 0 else None


def http_get(url, timeout=2.0):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, ""
    except (OSError, urllib.error.URLError):
        return None, ""


def prom_value(text, name):
    """Sum of samples of metric `name` (any labels) in Prometheus text format, or None."""
    total, seen = 0.0, False
    for line in text.splitlines():
        if line.startswith(name) and (len(line) == len(name) or line[len(name)] in " {"):
            try:
                total += float(line.rsplit(None, 1)[1])
                seen = True
            except (ValueError, IndexError):
                pass
    return total if seen else None


def ss_bytes_received(port):
    """Sum of tcp_info bytes_received over established server-side sockets on `port`."""
    try:
        out = subprocess.run(["ss", "-tinH", "state", "established", f"( sport = :{port} )"],
                             capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None, 0
    vals = [int(x) for x in re.findall(r"bytes_received:(\d+)", out)]
    conns = len(re.findall(r"^\S", out, re.M))  # one unindented line per socket
    return sum(vals), conns


def read_progress(path):
    """Last (total_size, out_time_us, speed) block an ffmpeg -progress file holds."""
    try:
        with open(path) as f:
            data = f.read()
    except OSError:
        return 0, 0, None
    size = re.findall(r"^total_size=(\d+)", data, re.M)
    otime = re.findall(r"^out_time_us=(-?\d+)", data, re.M)
    speed = re.findall(r"^speed=\s*([0-9.]+)x", data, re.M)
    return (int(size[-1]) if size else 0, int(otime[-1]) if otime else 0,
            float(speed[-1]) if speed else None)


def file_sha1(path):
    h = hashlib.sha1()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError:
        return None
    return h.hexdigest()[:12]


# ---------------------------------------------------------------- servers

class StreamFlex:
    name = "streamflex"

    def __init__(self, args, reg, keys, name="streamflex", extra=()):
        self.args, self.reg, self.keys = args, reg, keys
        self.name, self.extra = name, list(extra)
        self.proc = None

    def start(self, wd):
        self.port, self.admin = free_port(), free_port()
        self.log = os.path.join(wd, "streamflex.log")
        argv = ["taskset", "-c", self.args.server_core, self.args.streamflex_bin, "ingest",
                "--demo.enabled=false", f"--store.path={self.args.db}",
                f"--ingest.rtmp_listen=127.0.0.1:{self.port}",
                f"--admin.listen=127.0.0.1:{self.admin}", "--io.threads=1", "--log.level=warn"] + self.extra
        self.proc = self.reg.spawn(argv, self.log)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise Abort(f"streamflex exited with {self.proc.returncode}:\n{tail(self.log)}")
            if http_get(f"http://127.0.0.1:{self.admin}/readyz", 1.0)[0] == 200:
                return
            time.sleep(0.2)
        raise Abort(f"streamflex not ready on /readyz within 20 s:\n{tail(self.log)}")

    def pids(self):
        return [self.proc.pid]

    def url(self, i):
        return f"rtmp://127.0.0.1:{self.port}/live/{self.keys[i]}"

    def metrics(self):
        code, text = http_get(f"http://127.0.0.1:{self.admin}/metrics", 3.0)
        if code != 200:
            return {}
        return {"publishers_active": prom_value(text, "streamflex_ingest_publishers_active"),
                "received_bytes": prom_value(text, "streamflex_ingest_received_bytes_total")}

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc:
            self.reg.stop([self.proc], wait=10.0)


class Nginx:
    name = "nginx-rtmp"
    MODULE = "/usr/lib/nginx/modules/ngx_rtmp_module.so"

    def __init__(self, args, reg):
        self.args, self.reg = args, reg
        self.proc = None
        self.workers = []

    def start(self, wd):
        self.port = free_port()
        self.prefix = os.path.join(wd, "nginx")
        os.makedirs(os.path.join(self.prefix, "logs"), exist_ok=True)
        conf = os.path.join(self.prefix, "nginx.conf")
        mask = format(1 << int(self.args.server_core), "b").zfill(2)  # core 0 -> 01, core 1 -> 10
        with open(conf, "w") as f:
            f.write(f"""load_module {self.MODULE};
worker_processes 1;
worker_cpu_affinity {mask};
worker_rlimit_nofile 8192;
daemon off;
master_process on;
pid {self.prefix}/nginx.pid;
error_log {self.prefix}/logs/error.log warn;
events {{ worker_connections 4096; }}
rtmp {{
    server {{
        listen 127.0.0.1:{self.port};
        chunk_size 4096;
        application live {{
            live on;
            record off;
        }}
    }}
}}
""")
        self.log = os.path.join(self.prefix, "logs", "stdout.log")
        argv = ["taskset", "-c", self.args.server_core, "nginx", "-p", self.prefix + "/",
                "-c", conf, "-e", os.path.join(self.prefix, "logs", "error.log")]
        self.proc = self.reg.spawn(argv, self.log)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise Abort(f"nginx exited with {self.proc.returncode}:\n"
                            f"{tail(self.log)}\n{tail(os.path.join(self.prefix, 'logs', 'error.log'))}")
            kids = children(self.proc.pid)
            if kids and tcp_open(self.port):
                self.workers = kids
                for k in kids:
                    self.reg.note(k)
                return
            time.sleep(0.2)
        raise Abort("nginx worker not up within 20 s")

    def pids(self):
        return [self.proc.pid] + self.workers

    def url(self, i):
        return f"rtmp://127.0.0.1:{self.port}/live/bench{i}"

    def metrics(self):
        return {}

    def alive(self):
        return self.proc is not None and self.proc.poll() is None and all(alive(w) for w in self.workers)

    def stop(self):
        if self.proc:
            self.reg.stop([self.proc], wait=10.0)  # SIGTERM: fast shutdown of master and worker
        for w in self.workers:
            if alive(w):
                try:
                    os.kill(w, signal.SIGKILL)
                except ProcessLookupError:
                    pass


# ---------------------------------------------------------------- one measurement

def measure(server, n, args, wd_root):
    wd = os.path.join(wd_root, f"{server.name}-n{n}")
    os.makedirs(wd, exist_ok=True)
    row = {"server": server.name, "n": n, "valid": True, "notes": []}

    def note(msg):
        row["notes"].append(msg)
        warn(f"{server.name} N={n}: {msg}")

    if isinstance(server, StreamFlex):
        # The binary may be rebuilt while a run is going on: record which build each row used.
        row["binary_sha1"] = file_sha1(args.streamflex_bin)
        if args.first_sha1 is None:
            args.first_sha1 = row["binary_sha1"]
        elif row["binary_sha1"] != args.first_sha1:
            note(f"{args.streamflex_bin} changed during the run (sha1 {row['binary_sha1']}, "
                 f"first row used {args.first_sha1})")
    server.start(wd)
    time.sleep(1.0)
    pids = server.pids()
    row["pids"] = pids
    row["rss_base_kib"] = {str(p): rss_kib(p) for p in pids}
    pubs = []
    try:
        # Publishers, staggered so process start-up does not arrive as one burst.
        for i in range(n):
            prog = os.path.join(wd, f"pub{i}.progress")
            argv = ["taskset", "-c", args.client_core, args.ffmpeg, "-hide_banner", "-nostdin",
                    "-loglevel", "warning", "-nostats", "-progress", prog, "-stats_period", "1",
                    "-re", "-stream_loop", "-1", "-i", args.source, "-c", "copy", "-f", "flv",
                    server.url(i)]
            p = server.reg.spawn(argv, os.path.join(wd, f"pub{i}.log"))
            pubs.append((p, prog, os.path.join(wd, f"pub{i}.log")))
            time.sleep(args.stagger)

        # Every publisher must have written media (out_time > 0) before the window opens.
        deadline = time.monotonic() + 20 + 0.3 * n
        while time.monotonic() < deadline:
            started = sum(1 for p, prog, _ in pubs if read_progress(prog)[1] > 0)
            exited = sum(1 for p, _, _ in pubs if p.poll() is not None)
            if started + exited >= n:
                break
            if not server.alive():
                raise Abort(f"{server.name} died while publishers connected")
            time.sleep(0.25)
        started = sum(1 for p, prog, _ in pubs if read_progress(prog)[1] > 0 and p.poll() is None)
        row["connected_before_window"] = started
        if started < n:
            note(f"only {started}/{n} publishers sending media before the window")
        if isinstance(server, StreamFlex):
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                if server.metrics().get("publishers_active") == n:
                    break
                time.sleep(0.25)
        time.sleep(args.warmup)

        # Window start (metrics scraped outside the CPU window: the scrape itself costs CPU).
        m0 = server.metrics()
        pub_pids = [p.pid for p, _, _ in pubs if p.poll() is None]
        ss0, conns0 = ss_bytes_received(server.port)
        prog0 = [read_progress(prog)[0] for _, prog, _ in pubs]
        pubcpu0 = {}
        for pid in pub_pids:
            try:
                pubcpu0[pid] = cpu_ticks(pid)
            except OSError:
                pass
        c0 = core_times()
        t0 = time.monotonic()
        cpu0 = {p: cpu_ticks(p) for p in pids}
        ns0 = {p: sched_ns(p) for p in pids}

        end = t0 + args.duration
        while True:
            left = end - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(1.0, left))
            if not server.alive():
                raise Abort(f"{server.name} died during the window:\n{tail(server.log)}")

        cpu1 = {p: cpu_ticks(p) for p in pids}
        ns1 = {p: sched_ns(p) for p in pids}
        t1 = time.monotonic()
        c1 = core_times()
        rss_end = {str(p): rss_kib(p) for p in pids}
        thr = {str(p): threads(p) for p in pids}
        pubcpu = 0
        for pid, v in pubcpu0.items():
            try:
                pubcpu += cpu_ticks(pid) - v
            except OSError:
                pass
        prog1 = [read_progress(prog) for _, prog, _ in pubs]
        ss1, conns1 = ss_bytes_received(server.port)
        m1 = server.metrics()
        alive_end = [p.poll() is None for p, _, _ in pubs]

        window = t1 - t0
        cpu_s = sum(cpu1[p] - cpu0[p] for p in pids) / CLK_TCK
        sched_s = sum(ns1[p] - ns0[p] for p in pids) / 1e9
        stream_min = n * window / 60.0
        rss_base_total = sum(row["rss_base_kib"].values())
        rss_end_total = sum(rss_end.values())
        failures = n - sum(alive_end)
        sent = [prog1[i][0] - prog0[i] for i in range(n)]
        # ffmpeg rewrites its progress once a second: allow two periods of quantisation.
        expected_bytes = args.source_bps / 8 * max(0.0, window - 2.0)
        slow = [i for i in range(n) if sent[i] < 0.9 * expected_bytes]
        row.update({
            "window_s": round(window, 3),
            "cpu_s": round(cpu_s, 3),
            "cpu_s_per_stream_min": round(cpu_s / stream_min, 5),
            "sched_cpu_s": round(sched_s, 4),
            "sched_cpu_s_per_stream_min": round(sched_s / stream_min, 5),
            "cpu_by_pid_s": {str(p): (cpu1[p] - cpu0[p]) / CLK_TCK for p in pids},
            "server_core_util_pct": round(100 * cpu_s / window, 1),
            "rss_end_kib": rss_end,
            "rss_base_total_kib": rss_base_total,
            "rss_end_total_kib": rss_end_total,
            "rss_kib_per_stream": round((rss_end_total - rss_base_total) / n, 1),
            "threads": thr,
            "failures": failures,
            "publishers_alive_end": sum(alive_end),
            "publishers_slow": len(slow),
            "sent_mbps_per_stream": round(sum(sent) * 8 / window / n / 1e6, 3),
            "min_sent_mbps": round(min(sent) * 8 / window / 1e6, 3) if sent else None,
            "publisher_speed_min": min((s for _, _, s in prog1 if s is not None), default=None),
            "tcp_conns_end": conns1,
            "server_recv_mbps_per_stream":
                round((ss1 - ss0) * 8 / window / n / 1e6, 3) if ss0 is not None and ss1 is not None else None,
            "client_core_util_pct": round(100 * pubcpu / CLK_TCK / window, 1),
            "core_busy_pct": {str(c): round(core_busy_pct(c0, c1, c), 1)
                              for c in sorted(c1) if core_busy_pct(c0, c1, c) is not None},
        })
        srv_core = core_busy_pct(c0, c1, int(args.server_core))
        if srv_core is not None:
            row["server_core_other_load_pct"] = round(max(0.0, srv_core - row["server_core_util_pct"]), 1)
        if m1:
            row["metrics_publishers_active"] = m1.get("publishers_active")
            if m0.get("received_bytes") is not None and m1.get("received_bytes") is not None:
                row["metrics_recv_mbps_per_stream"] = round(
                    (m1["received_bytes"] - m0["received_bytes"]) * 8 / window / n / 1e6, 3)
            if m1.get("publishers_active") != n:
                note(f"/metrics streamflex_ingest_publishers_active={m1.get('publishers_active')}, expected {n}")
        elif isinstance(server, StreamFlex):
            note("could not read /metrics at the end of the window")

        # Sanity checks: every publisher alive, every one sending at the source rate.
        if failures:
            row["valid"] = False
            for i, ok in enumerate(alive_end):
                if not ok:
                    note(f"publisher {i} exited early (rc={pubs[i][0].returncode}): {tail(pubs[i][2], 3)}")
                    break
            note(f"{failures}/{n} publishers not running at the end of the window")
        if slow:
            row["valid"] = False
            note(f"{len(slow)}/{n} publishers fell behind the source rate "
                 f"(min {row['min_sent_mbps']} Mbit/s, source {args.source_bps / 1e6:.2f})")
        rm = row["server_recv_mbps_per_stream"]
        if rm is not None and rm < 0.85 * args.source_bps / 1e6:
            row["valid"] = False
            note(f"server sockets received only {rm} Mbit/s per stream")
        if row["client_core_util_pct"] > 90:
            note(f"publisher core {row['client_core_util_pct']}% busy: load generator may be the limit")
        if row["server_core_util_pct"] > 90:
            note(f"server at {row['server_core_util_pct']}% of its core: saturated")
        if row.get("server_core_other_load_pct", 0) > 20:
            note(f"core {args.server_core} had {row['server_core_other_load_pct']}% load from other processes")
        if cpu_s < 10.0 / CLK_TCK:
            note(f"CPU {cpu_s:.3f} s is under 10 clock ticks: /proc/PID/stat figure imprecise "
                 f"(schedstat: {sched_s:.4f} s)")
        elif abs(cpu_s - sched_s) > max(0.15 * sched_s, 3.0 / CLK_TCK):
            note(f"stat CPU {cpu_s:.3f} s and schedstat {sched_s:.3f} s disagree")
        return row
    finally:
        server.reg.stop([p for p, _, _ in pubs], wait=5.0)
        server.stop()


# ---------------------------------------------------------------- main

def fmt(v, spec):
    return "n/a" if v is None else format(v, spec)


def ratio(a, b):
    if a is None or b is None or b <= 0:
        return None
    return a / b


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--results", required=True)
    ap.add_argument("--source", required=True)
    ap.add_argument("--streamflex-bin", required=True)
    ap.add_argument("--ffmpeg", default="ffmpeg")
    ap.add_argument("--n-list", default="1 10 25 50")
    ap.add_argument("--duration", type=float, default=30)
    ap.add_argument("--warmup", type=float, default=3)
    ap.add_argument("--stagger", type=float, default=0.05)
    ap.add_argument("--servers", default="streamflex nginx")
    ap.add_argument("--batch-ms", type=int, default=20, help="ingest.read_batch of the sf-batch variant")
    ap.add_argument("--server-core", default="0")
    ap.add_argument("--client-core", default="1")
    args = ap.parse_args()

    n_list = [int(x) for x in args.n_list.replace(",", " ").split()]
    if not n_list or min(n_list) < 1:
        sys.exit("N_LIST must hold positive integers")
    servers_wanted = args.servers.split()
    args.first_sha1 = None
    reg = Registry(args.workdir)  # writes <workdir>/pids for the shell's EXIT trap
    reg.note(os.getpid())  # so the shell's EXIT trap can reach this helper if its parent died

    def on_signal(sig, frame):
        raise KeyboardInterrupt(f"signal {sig}")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    # Source bitrate: the bytes a publisher must push per second.
    probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration,size",
                            "-of", "json", args.source], capture_output=True, text=True, timeout=30)
    fmt_info = json.loads(probe.stdout)["format"]
    args.source_bps = int(fmt_info["size"]) * 8 / float(fmt_info["duration"])

    info = {
        "started": datetime.datetime.now().isoformat(timespec="seconds"),
        "n_list": n_list, "duration_s": args.duration, "warmup_s": args.warmup,
        "server_core": args.server_core, "client_core": args.client_core,
        "source": os.path.basename(args.source), "source_mbps": round(args.source_bps / 1e6, 3),
        "clk_tck": CLK_TCK, "nproc": os.cpu_count(), "kernel": os.uname().release,
        "loadavg_start": open("/proc/loadavg").read().split()[:3],
    }
    try:
        info["nginx_version"] = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip()
        info["ffmpeg_version"] = subprocess.run([args.ffmpeg, "-version"], capture_output=True,
                                                text=True).stdout.splitlines()[0]
    except (OSError, IndexError):
        pass
    rows = []
    try:
        sf = None
        if any(x.startswith("streamflex") for x in servers_wanted):
            st = os.stat(args.streamflex_bin)
            info["streamflex_bin"] = args.streamflex_bin
            info["streamflex_mtime"] = datetime.datetime.fromtimestamp(st.st_mtime).isoformat(timespec="seconds")
            args.db = os.path.join(args.workdir, "db", "streamflex.db")
            os.makedirs(os.path.dirname(args.db), exist_ok=True)
            keys = []
            log(f"creating {max(n_list)} stream keys")
            for i in range(max(n_list)):
                r = subprocess.run([args.streamflex_bin, "keys", "create", f"bench{i}",
                                    f"--store.path={args.db}", "--log.level=warn"],
                                   capture_output=True, text=True, timeout=30)
                lines = r.stdout.strip().splitlines()
                if r.returncode != 0 or not lines:
                    raise Abort(f"keys create bench{i} failed ({r.returncode}): {r.stderr.strip()}")
                keys.append(lines[-1].strip())
            sf = StreamFlex(args, reg, keys) if "streamflex" in servers_wanted else None
        # The same server with ingest.read_batch: wakes only once BATCH_MS of media is buffered.
        sfb = (StreamFlex(args, reg, keys, "sf-batch", [f"--ingest.read_batch={args.batch_ms}ms"])
               if "streamflex-batch" in servers_wanted else None)
        ng = Nginx(args, reg) if "nginx" in servers_wanted else None

        log(f"source {info['source']} {info['source_mbps']} Mbit/s; N={n_list}; "
            f"window {args.duration:g} s after {args.warmup:g} s warm-up; server on core {args.server_core}, "
            f"publishers on core {args.client_core}")
        for n in n_list:
            for srv in (sf, sfb, ng):
                if srv is None:
                    continue
                log(f"{srv.name}: N={n} ...")
                try:
                    row = measure(srv, n, args, args.workdir)
                except Abort as e:
                    warn(f"{srv.name} N={n} aborted: {e}")
                    row = {"server": srv.name, "n": n, "valid": False, "notes": [f"aborted: {e}"]}
                rows.append(row)
                if "cpu_s" in row:
                    log(f"{srv.name}: N={n}: cpu {row['cpu_s']:.2f} s in {row['window_s']:.1f} s "
                        f"({row['server_core_util_pct']}% of core), {row['cpu_s_per_stream_min']:.4f} s/stream-min, "
                        f"rss +{row['rss_kib_per_stream']:.0f} KiB/stream, recv "
                        f"{fmt(row['server_recv_mbps_per_stream'], '.2f')} Mbit/s/stream, failures {row['failures']}")
    except KeyboardInterrupt as e:
        warn(f"interrupted ({e}); stopping")
        reg.stop_all()
        return 130
    finally:
        reg.stop_all()

    # ---- report
    by = {(r["server"], r["n"]): r for r in rows}
    summary = []
    hdr = (f"{'N':>4} | {'server':<10} | {'CPU s/stream-min':>16} | {'(schedstat)':>11} | {'core %':>6} | "
           f"{'RSS KiB/stream':>14} | "
           f"{'recv Mb/s/str':>13} | {'fail':>4} | {'valid':>5}")
    print()
    print("RTMP ingest: N publishers of a %.2f Mbit/s file (ffmpeg -re -c copy), %g s window"
          % (args.source_bps / 1e6, args.duration))
    print(hdr)
    print("-" * len(hdr))
    for n in n_list:
        for name in ("streamflex", "sf-batch", "nginx-rtmp"):
            r = by.get((name, n))
            if not r:
                continue
            print(f"{n:>4} | {name:<10} | {fmt(r.get('cpu_s_per_stream_min'), '16.4f')} | "
                  f"{fmt(r.get('sched_cpu_s_per_stream_min'), '11.4f')} | "
                  f"{fmt(r.get('server_core_util_pct'), '6.1f')} | {fmt(r.get('rss_kib_per_stream'), '14.0f')} | "
                  f"{fmt(r.get('server_recv_mbps_per_stream'), '13.2f')} | {fmt(r.get('failures'), '4d')} | "
                  f"{'yes' if r['valid'] else 'NO':>5}")
        for variant in ("streamflex", "sf-batch"):
            a, b = by.get((variant, n)), by.get(("nginx-rtmp", n))
            if a and b:
              rc = ratio(a.get("cpu_s_per_stream_min"), b.get("cpu_s_per_stream_min"))
              rs = ratio(a.get("sched_cpu_s_per_stream_min"), b.get("sched_cpu_s_per_stream_min"))
              rm = ratio(a.get("rss_kib_per_stream"), b.get("rss_kib_per_stream"))
              ok = rc is not None and a["valid"] and b["valid"]
              met = ok and rc <= GOAL_RATIO
              summary.append({"n": n, "variant": variant, "cpu_ratio": None if rc is None else round(rc, 3),
                              "sched_cpu_ratio": None if rs is None else round(rs, 3),
                              "rss_ratio": None if rm is None else round(rm, 3),
                              "comparable": ok, "goal_met": met})
              print(f"{n:>4} | ratio StreamFlex/nginx: CPU {fmt(rc, '.3f')} (schedstat {fmt(rs, '.3f')}), "
                    f"RSS/stream {fmt(rm, '.3f')}"
                    f"  -> goal (CPU ratio <= {GOAL_RATIO}): "
                    f"{'MET' if met else ('NOT MET' if ok else 'UNDECIDED (invalid run)')}"
                  f"{'  [' + variant + ']' if variant != 'streamflex' else ''}")
        print("-" * len(hdr))
    if summary:
        decided = [s for s in summary if s["comparable"]]
        if decided and all(s["goal_met"] for s in decided) and len(decided) == len(summary):
            verdict = f"goal: ratio <= {GOAL_RATIO}: MET for every N ({', '.join(str(s['n']) for s in summary)})"
        else:
            miss = [str(s["n"]) for s in summary if not s["goal_met"]]
            verdict = f"goal: ratio <= {GOAL_RATIO}: NOT MET for N = {', '.join(miss)}"
        print(verdict)
    else:
        verdict = "goal: not evaluated (need both servers)"
        print(verdict)
    for r in rows:
        for msg in r.get("notes", []):
            print(f"note: {r['server']} N={r['n']}: {msg}")

    info["finished"] = datetime.datetime.now().isoformat(timespec="seconds")
    info["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
    os.makedirs(args.results, exist_ok=True)
    out = os.path.join(args.results, "ingest_publishers-%s.json" % time.strftime("%Y%m%d-%H%M%S"))
    with open(out, "w") as f:
        json.dump({"benchmark": "ingest_publishers", "info": info, "rows": rows, "ratios": summary,
                   "goal_cpu_ratio": GOAL_RATIO, "verdict": verdict}, f, indent=2)
    print(f"results: {out}")
    bad = any(not r["valid"] for r in rows)
    return 2 if bad else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Abort as e:
        warn(str(e))
        sys.exit(1)
