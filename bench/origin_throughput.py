#!/usr/bin/python3
"""Origin HTTP throughput: wrk against StreamFlex's origin and against nginx serving the same bytes
as static files, for one ~1 MB part and for one playlist, at 100 and 1000 connections.

Started by bench/origin_throughput.sh (which pins this helper to the client core, raises the file
descriptor limit, owns the temporary directory and kills every PID listed in <workdir>/pids on
exit). Standard library only.

  1. StreamFlex (`all`, --io.threads=1, pinned to SERVER_CORE, unpublish_grace 10m) gets a
     ~16 Mbit/s source published for a few seconds (ffmpeg -re -c copy of a cached file, pinned to
     CLIENT_CORE); the publisher stops, and the stream's objects stay served.
  2. The video playlist and the largest part are downloaded from the origin and placed at the
     same paths under nginx's root (Debian nginx, worker_processes 1 pinned to SERVER_CORE,
     sendfile, open_file_cache, access log off).
  3. For each object and N in CONNS, on each server in turn:
     taskset -c CLIENT_CORE wrk -t1 -cN -dDURATION --timeout 5s --latency URL.
     Requests/s, MB/s (wrk's MB: 2^20 bytes), p99, errors, and the CPU each side used.
"""

import argparse
import hashlib
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402

NAME = "origin_throughput"


def log(msg):
    bl.log(NAME, msg)


UNITS_T = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}
UNITS_B = {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}


def parse_wrk(text):
    def t(v, u):
        return float(v) * UNITS_T[u]
    r = {}
    m = re.search(r"Requests/sec:\s*([0-9.]+)", text)
    r["rps"] = float(m.group(1)) if m else None
    m = re.search(r"Transfer/sec:\s*([0-9.]+)([KMGT]?B)", text)
    r["mb_s"] = float(m.group(1)) * UNITS_B[m.group(2)] / (1 << 20) if m else None
    for pct in ("50", "75", "90", "99"):
        m = re.search(rf"^\s+{pct}%\s+([0-9.]+)(us|ms|s|m|h)\s*$", text, re.M)
        r[f"p{pct}_ms"] = t(*m.groups()) if m else None
    m = re.search(r"(\d+) requests in ([0-9.]+)(us|ms|s|m|h), ([0-9.]+)([KMGT]?B) read", text)
    if m:
        r["requests"] = int(m.group(1))
        r["seconds"] = t(m.group(2), m.group(3)) / 1000
        r["bytes_read"] = float(m.group(4)) * UNITS_B[m.group(5)]
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    r["socket_errors"] = dict(zip(("connect", "read", "write", "timeout"), map(int, m.groups()))) if m else {}
    # The per-thread Req/Sec average counts only sampling intervals that saw requests: far above
    # Requests/sec it means the server stopped answering for part of the run.
    m = re.search(r"Req/Sec\s+([0-9.]+)(k|M)?", text)
    r["thread_req_s_avg"] = float(m.group(1)) * {None: 1, "k": 1e3, "M": 1e6}[m.group(2)] if m else None
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    r["non_2xx"] = int(m.group(1)) if m else 0
    return r


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


def run_wrk(args, url, conns, server_pids, logfile):
    cpu0 = {p: bl.cpu_seconds(p) for p in server_pids if bl.alive(p)}
    busy0 = core_busy()
    t0 = time.monotonic()
    argv = ["taskset", "-c", args.client_core, "wrk", "-t1", f"-c{conns}", f"-d{args.duration}s",
            "--timeout", "5s", "--latency", url]
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    # wrk's own CPU: sampled just before it exits (children's times are only reaped by wait()).
    wrk_cpu = None
    deadline = time.monotonic() + float(args.duration) + 30
    while p.poll() is None and time.monotonic() < deadline:
        try:
            wrk_cpu = bl.cpu_seconds(p.pid)
        except OSError:
            pass
        time.sleep(0.2)
    if p.poll() is None:
        p.kill()
    out = p.communicate(timeout=10)[0]
    wall = time.monotonic() - t0
    busy1 = core_busy()
    with open(logfile, "a") as f:
        f.write(f"$ {' '.join(argv)}\n{out}\n")
    r = parse_wrk(out)
    cpu_s = sum(bl.cpu_seconds(pid) - c for pid, c in cpu0.items() if bl.alive(pid))
    r["server_cpu_pct"] = 100 * cpu_s / wall
    r["server_cpu_s"] = cpu_s
    # Server CPU per answered request (this VM has no cycle counters: CPU time stands in for cycles).
    # It includes the kernel's share of the loopback traffic charged to the server process.
    r["cpu_us_per_req"] = 1e6 * cpu_s / r["requests"] if r.get("requests") else None
    r["wrk_cpu_pct"] = 100 * wrk_cpu / wall if wrk_cpu is not None else None
    r["core_busy_pct"] = {c: 100 * (busy1[c][0] - busy0[c][0]) / max(1, busy1[c][1] - busy0[c][1])
                          for c in busy1 if c in busy0}
    r["wrk_exit"] = p.returncode
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--results", required=True)
    ap.add_argument("--streamflex-bin", required=True)
    ap.add_argument("--source", required=True)
    ap.add_argument("--duration", default="10")
    ap.add_argument("--conns", default="100 1000")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--publish-seconds", type=float, default=8)
    ap.add_argument("--server-core", default="0")
    ap.add_argument("--client-core", default="1")
    args = ap.parse_args()
    conns = [int(c) for c in args.conns.split()]

    reg = bl.Registry(args.workdir)
    reg.note(os.getpid())
    record = {"benchmark": NAME, "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "duration_s": args.duration,
              "conns": conns, "loadavg_start": open("/proc/loadavg").read().strip(),
              "binary": bl.binary_info(args.streamflex_bin), "nofile_soft": os.sysconf("SC_OPEN_MAX"),
              "goal": "StreamFlex requests/s and MB/s >= nginx's, p99 lower"}
    rows = []
    wrk_log = os.path.join(args.workdir, "wrk.log")
    try:
        sf = bl.StreamFlex(reg, args.streamflex_bin, args.workdir, args.server_core, extra=[
            "--io.threads=1", "--origin.unpublish_grace=10m"]).start()
        log(f"streamflex ready; publishing {args.publish_seconds:g} s of ~16 Mbit/s video")
        pub = reg.spawn(["taskset", "-c", args.client_core, "ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error",
                         "-re", "-t", str(args.publish_seconds), "-i", args.source, "-c", "copy", "-f", "flv",
                         sf.publish_url], os.path.join(args.workdir, "publisher.log"))
        try:
            pub.wait(timeout=args.publish_seconds + 30)
        except subprocess.TimeoutExpired:
            reg.stop([pub])
        time.sleep(0.5)
        base = f"/live/{sf.stream}/video"
        code, body = bl.http_get(f"http://127.0.0.1:{sf.http}{base}/index.m3u8")
        if code != 200:
            raise bl.Abort(f"playlist after publishing: HTTP {code}\n{bl.tail(sf.log)}")
        playlist = body
        uris = re.findall(rb'URI="(s\d+\.p\d+\.m4s)"', playlist)
        if not uris:
            raise bl.Abort(f"no parts listed:\n{playlist.decode(errors='replace')}")
        sizes = {}
        for u in uris:
            c, b = bl.http_get(f"http://127.0.0.1:{sf.http}{base}/{u.decode()}")
            if c == 200:
                sizes[u.decode()] = b
        part = max(sizes, key=lambda k: len(sizes[k]))
        part_bytes = sizes[part]
        record["part"] = {"uri": part, "bytes": len(part_bytes), "parts_seen": len(sizes),
                          "sizes": {k: len(v) for k, v in sizes.items()}}
        record["playlist_bytes"] = len(playlist)
        log(f"largest part {part}: {len(part_bytes)} bytes; playlist {len(playlist)} bytes")

        # nginx serving the same bytes at the same paths.
        root = os.path.join(args.workdir, "www")
        os.makedirs(os.path.join(root, base.lstrip("/")))
        for name, data in (("index.m3u8", playlist), (part, part_bytes)):
            with open(os.path.join(root, base.lstrip("/"), name), "wb") as f:
                f.write(data)
        for d, _, files in os.walk(root):
            os.chmod(d, 0o755)
            for fn in files:
                os.chmod(os.path.join(d, fn), 0o644)
        bl.make_world_readable(root)
        nport = bl.free_port()
        prefix = os.path.join(args.workdir, "nginx")
        ng = bl.Nginx(reg, args.workdir, args.server_core, f"""http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 65;
    keepalive_requests 1000000;
    open_file_cache max=100 inactive=60s;
    open_file_cache_valid 60s;
    {bl.http_temp_paths(prefix)}
    types {{ application/vnd.apple.mpegurl m3u8; video/iso.segment m4s; }}
    server {{
        listen 127.0.0.1:{nport} backlog=4096;
        root {root};
        location ~ \\.m3u8$ {{ add_header Cache-Control "max-age=1"; }}
        location ~ \\.m4s$ {{ add_header Cache-Control "public, max-age=31536000, immutable"; }}
    }}
}}""", modules=(), worker_connections=4096).start(nport)

        targets = {"part": f"{base}/{part}", "playlist": f"{base}/index.m3u8"}
        servers = {"streamflex": (f"http://127.0.0.1:{sf.http}", sf.pids()),
                   "nginx": (f"http://127.0.0.1:{nport}", ng.pids())}
        # Same bytes from both? (headers differ; bodies must not)
        record["bodies"] = {}
        for tname, path in targets.items():
            for sname, (origin, _) in servers.items():
                c, b = bl.http_get(origin + path)
                record["bodies"][f"{sname}:{tname}"] = {"status": c, "bytes": len(b),
                                                        "sha1": hashlib.sha1(b).hexdigest()[:12]}
        for tname in targets:
            h = {record["bodies"][f"{s}:{tname}"]["sha1"] for s in servers}
            if len(h) != 1:
                raise bl.Abort(f"{tname}: the servers answer different bodies: {record['bodies']}")

        # Rounds: every case again, the servers' order swapped each round (the machine's noise
        # between runs is the same size as the differences measured: the verdict uses the medians).
        for rnd in range(args.rounds):
            for tname, path in targets.items():
                for n in conns:
                    order = list(servers.items()) if rnd % 2 == 0 else list(reversed(servers.items()))
                    for sname, (origin, pids) in order:
                        log(f"wrk {tname} -c{n} {sname} (round {rnd + 1}/{args.rounds})")
                        r = run_wrk(args, origin + path, n, pids, wrk_log)
                        r.update({"object": tname, "conns": n, "server": sname, "round": rnd + 1})
                        rows.append(r)
                        time.sleep(1)
        record["servers_alive_at_end"] = {"streamflex": sf.alive(), "nginx": ng.alive()}
    finally:
        reg.stop_all()
    record["rows"] = rows
    record["loadavg_end"] = open("/proc/loadavg").read().strip()

    def f(v, spec):
        return "-" if v is None else format(v, spec)

    print()
    print(f"origin throughput: wrk -t1 -cN -d{args.duration}s --timeout 5s --latency; server on core "
          f"{args.server_core} (1 I/O thread / 1 worker), wrk on core {args.client_core}")
    print(f"part {record['part']['uri']} = {record['part']['bytes']} B, playlist = {record['playlist_bytes']} B")
    print(f"{'object':<8} {'conns':>5} {'server':<10} | {'req/s':>9} | {'MB/s':>8} | {'p50 ms':>7} | "
          f"{'p99 ms':>7} | errors | srv cpu% | cpu us/req | wrk cpu%")
    if args.rounds > 1:
        print(f"{args.rounds} rounds, the servers' order swapped each round; each figure is the median over the rounds")
    verdicts = []
    record["medians"] = []
    for tname in targets:
        for n in conns:
            pair = {s: bl.median_case(rows, server=s, object=tname, conns=n) for s in ("streamflex", "nginx")}
            for sname in ("streamflex", "nginx"):
                r = pair.get(sname)
                if not r:
                    continue
                errs = sum(r["socket_errors"].values()) + r["non_2xx"]
                print(f"{tname:<8} {n:>5} {sname:<10} | {f(r['rps'], '9.0f')} | {f(r['mb_s'], '8.1f')} | "
                      f"{f(r['p50_ms'], '7.2f')} | {f(r['p99_ms'], '7.2f')} | {errs:>6} | "
                      f"{f(r['server_cpu_pct'], '8.0f')} | {f(r.get('cpu_us_per_req'), '10.2f')} | "
                      f"{f(r['wrk_cpu_pct'], '8.0f')}")
            a, b = pair.get("streamflex"), pair.get("nginx")
            if a and b and a["rps"] and b["rps"] and a["p99_ms"] and b["p99_ms"]:
                rr, mr, pr = a["rps"] / b["rps"], a["mb_s"] / b["mb_s"], a["p99_ms"] / b["p99_ms"]
                errs_a = sum(a["socket_errors"].values()) + a["non_2xx"]
                ok = rr >= 1.0 and mr >= 1.0 and pr < 1.0 and errs_a == 0
                verdicts.append(ok)
                cr = (a["cpu_us_per_req"] / b["cpu_us_per_req"]
                      if a.get("cpu_us_per_req") and b.get("cpu_us_per_req") else None)
                print(f"{'':<8} {'':>5} {'ratio':<10} | {rr:9.2f} | {mr:8.2f} | {'':>7} | {pr:7.2f} | {'':>6} | "
                      f"{'':>8} | {f(cr, '10.2f')} |   -> {'MET' if ok else 'NOT MET'}")
                if args.rounds > 1:
                    print(f"{'':<8} {'':>5} {'rounds':<10} | req/s / p99 ratio per round (* = not met): "
                          + bl.round_ratios(a, b, lambda x, y: x["rps"] >= y["rps"] and x["p99_ms"] < y["p99_ms"]))
                record["medians"].append({"object": tname, "conns": n, "rps_ratio": rr, "mb_s_ratio": mr,
                                          "p99_ratio": pr, "cpu_ratio": cr, "met": ok})
    stalled = [r for r in rows if r.get("thread_req_s_avg") and r.get("rps") and r["thread_req_s_avg"] > 2 * r["rps"]]
    if stalled:
        print("note: answers stopped for part of the run (wrk Req/Sec avg > 2x Requests/sec) in: " + ", ".join(
            f"{r['object']}/-c{r['conns']}/{r['server']} ({r['thread_req_s_avg']:.0f} vs {r['rps']:.0f})"
            for r in stalled))
    client_bound = [r for r in rows if (r.get("wrk_cpu_pct") or 0) > 90]
    if client_bound:
        print("note: wrk used >90% of its core in: " + ", ".join(
            f"{r['object']}/-c{r['conns']}/{r['server']}" for r in client_bound) + " (figures there are client-bound)")
    other = [r for r in rows if r["core_busy_pct"].get(int(args.server_core), 0) - (r["server_cpu_pct"] or 0) > 15]
    if other:
        print(f"note: other load on core {args.server_core} (>15% beyond the server) during: " + ", ".join(
            f"{r['object']}/-c{r['conns']}/{r['server']}" for r in other))
    met = bool(verdicts) and all(verdicts)
    # "MET in k/n cases": k is how many cases met the goal (it read "NOT MET in 3/4" when 3 met).
    print(f"goal (req/s and MB/s >= nginx, lower p99, no errors): {'MET' if met else 'NOT MET'}; "
          f"MET in {sum(verdicts)}/{len(verdicts)} cases")
    record["goal_met"] = met
    path = bl.write_json(args.results, NAME, record)
    print(f"JSON: {path}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except bl.Abort as e:
        print(f"origin_throughput: {e}", file=sys.stderr)
        sys.exit(1)
