#!/usr/bin/python3
"""Edge cache-hit serving: wrk against the StreamFlex edge and against nginx proxy_cache, both in
front of the same static upstream, for one 1 MiB part and one LL-HLS playlist, at 100 and 1000
connections, every request a cache hit.

Started by bench/edge_cache_hit.sh (which pins this helper to the client core, raises the file
descriptor limit, owns the temporary directory and kills every PID listed in <workdir>/pids on
exit). Standard library only.

  1. bench/edge_upstream.py (on CLIENT_CORE; idle once the caches are warm) serves a 1 MiB part of
     random bytes and a ~1.3 KB LL-HLS media playlist, both with Cache-Control "public, max-age=60".
  2. `streamflex edge --io.threads=1` and nginx (worker_processes 1, proxy_cache on a cache
     directory in the temporary directory, proxy_cache_lock on) both in front of it, both pinned
     to SERVER_CORE.
  3. Every wrk run gets its own copy of the object at its own path (/rI/...), so it starts with a
     fresh entry (age ~0 s, fresh for 60 s, longer than a run): two GETs through the proxy under
     test first (the second must say X-Cache: HIT, with the upstream's bytes), then
     taskset -c CLIENT_CORE wrk -t1 -cN -dDURATION --timeout 5s --latency URL. The upstream's
     request count for that path is read before and after: it must not move during the run.
"""

import argparse
import hashlib
import os
import random
import sys
import time
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402
import edgelib as el  # noqa: E402
from origin_throughput import run_wrk  # noqa: E402  (wrk runner and parser of the origin benchmark)

NAME = "edge_cache_hit"


def log(msg):
    bl.log(NAME, msg)


def make_playlist():
    """A live LL-HLS media playlist like the origin's: 6 segments of 2 s, 0.5 s parts listed for
    the last two segments and the one in progress, a preload hint."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:9", "#EXT-X-TARGETDURATION:2", "#EXT-X-PART-INF:PART-TARGET=0.5",
             "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.5,CAN-SKIP-UNTIL=12",
             "#EXT-X-MEDIA-SEQUENCE:100", '#EXT-X-MAP:URI="init.mp4"']
    t0 = 1795000000.0
    for seg in range(100, 106):
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t0 + (seg - 100) * 2))
        lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{ts}.000Z")
        if seg >= 104:
            for p in range(4):
                ind = ",INDEPENDENT=YES" if p == 0 else ""
                lines.append(f'#EXT-X-PART:DURATION=0.50000,URI="s{seg}.p{p}.m4s"{ind}')
        lines += ["#EXTINF:2.00000,", f"s{seg}.m4s"]
    for p in range(2):
        ind = ",INDEPENDENT=YES" if p == 0 else ""
        lines.append(f'#EXT-X-PART:DURATION=0.50000,URI="s106.p{p}.m4s"{ind}')
    lines.append('#EXT-X-PRELOAD-HINT:TYPE=PART,URI="s106.p2.m4s"')
    return ("\n".join(lines) + "\n").encode()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--results", required=True)
    ap.add_argument("--streamflex-bin", required=True)
    ap.add_argument("--duration", default="10")
    ap.add_argument("--conns", default="100 1000")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--objects", default="part playlist")
    ap.add_argument("--part-bytes", type=int, default=1 << 20)
    ap.add_argument("--cache-control", default="public, max-age=60")
    ap.add_argument("--server-core", default="0")
    ap.add_argument("--client-core", default="1")
    ap.add_argument("--servers", default="streamflex nginx")
    args = ap.parse_args()
    conns = [int(c) for c in args.conns.split()]
    objects = args.objects.split()
    servers_wanted = args.servers.split()

    reg = bl.Registry(args.workdir)
    reg.note(os.getpid())
    record = {"benchmark": NAME, "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "duration_s": args.duration,
              "conns": conns, "loadavg_start": el.loadavg(), "binary": bl.binary_info(args.streamflex_bin),
              "nofile_soft": os.sysconf("SC_OPEN_MAX"), "cache_control": args.cache_control,
              "upstream": "bench/edge_upstream.py serving static files (same bytes and headers to both proxies)",
              "goal": "StreamFlex edge requests/s >= 1.2x nginx proxy_cache, lower p99"}
    rows = []
    wrk_log = os.path.join(args.workdir, "wrk.log")
    wargs = types.SimpleNamespace(client_core=args.client_core, duration=args.duration)
    part = random.Random(1).randbytes(args.part_bytes)
    playlist = make_playlist()
    files = {"part": ("s105.p1.m4s", part), "playlist": ("index.m3u8", playlist)}
    record["objects"] = {k: {"name": v[0], "bytes": len(v[1]), "sha1": hashlib.sha1(v[1]).hexdigest()[:12]}
                         for k, v in files.items()}
    root = os.path.join(args.workdir, "www")
    try:
        up = el.Upstream(reg, args.workdir, args.client_core, root, cache_control=args.cache_control)
        # One copy per run, each at its own path, so each run starts on a fresh cache entry.
        # Every case once per round, the servers' order swapped each round (the verdict uses the
        # medians over the rounds).
        plan = []
        i = 0
        for rnd in range(args.rounds):
            for obj in objects:
                for n in conns:
                    for s in (servers_wanted if rnd % 2 == 0 else list(reversed(servers_wanted))):
                        name, data = files[obj]
                        rel = f"r{i}/live/bench/video/{name}"
                        os.makedirs(os.path.join(root, os.path.dirname(rel)), exist_ok=True)
                        with open(os.path.join(root, rel), "wb") as f:
                            f.write(data)
                        plan.append((obj, n, s, "/" + rel, data, rnd + 1))
                        i += 1
        up.start()
        servers = {}
        if "streamflex" in servers_wanted:
            sf = el.StreamFlexEdge(reg, args.streamflex_bin, args.workdir, args.server_core, up.port).start()
            servers["streamflex"] = (f"http://127.0.0.1:{sf.port}", sf)
        if "nginx" in servers_wanted:
            ng = el.start_nginx_proxy(reg, args.workdir, args.server_core, up.port, valid="200 60s")
            servers["nginx"] = (f"http://127.0.0.1:{ng.port}", ng)
        log("upstream, " + ", ".join(servers) + " ready")

        for obj, n, sname, path, data, rnd in plan:
            origin, srv = servers[sname]
            url = origin + path
            want = hashlib.sha1(data).hexdigest()
            seen = []
            for _ in range(2):
                code, hdrs, body = el.http_head(url)
                seen.append((code, hdrs.get("x-cache"), hashlib.sha1(body).hexdigest() == want,
                             hdrs.get("cache-control")))
            if not (seen[1][0] == 200 and seen[1][1] == "HIT" and seen[1][2]):
                raise bl.Abort(f"{sname} {path}: not a cache hit with the upstream's bytes after warming: {seen}")
            before = up.counts().get(path, 0)
            log(f"wrk {obj} -c{n} {sname} (round {rnd}/{args.rounds})")
            r = run_wrk(wargs, url, n, srv.pids(), wrk_log)
            after = up.counts().get(path, 0)
            code, hdrs, _ = el.http_head(url)
            r.update({"object": obj, "conns": n, "server": sname, "round": rnd, "path": path, "warm": seen,
                      "upstream_requests_before": before, "upstream_requests_during": after - before,
                      "x_cache_after": hdrs.get("x-cache"), "rss_kib_after": el.rss_kib(srv.pids())})
            rows.append(r)
            time.sleep(1)
        record["servers_alive_at_end"] = {k: v[1].alive() for k, v in servers.items()}
        if "nginx" in servers:
            record["nginx_error_log_tail"] = bl.tail(servers["nginx"][1].error_log, 5)
    finally:
        reg.stop_all()
    record["rows"] = rows
    record["loadavg_end"] = el.loadavg()

    def f(v, spec):
        return "-" if v is None else format(v, spec)

    print()
    print(f"edge cache hits: wrk -t1 -cN -d{args.duration}s --timeout 5s --latency; proxy on core {args.server_core} "
          f"(StreamFlex edge --io.threads=1 / nginx proxy_cache, 1 worker), wrk on core {args.client_core}")
    print(f"upstream: bench/edge_upstream.py, static; part = {len(part)} B, playlist = {len(playlist)} B, "
          f"Cache-Control \"{args.cache_control}\"; every request a cache hit")
    print(f"{'object':<8} {'conns':>5} {'server':<10} | {'req/s':>9} | {'MB/s':>8} | {'p50 ms':>7} | "
          f"{'p99 ms':>7} | errors | srv cpu% | cpu us/req | wrk cpu% | upstream reqs")
    if args.rounds > 1:
        print(f"{args.rounds} rounds, the servers' order swapped each round; each figure is the median over the "
              f"rounds, upstream requests their sum")
    verdicts = []
    for obj in objects:
        for n in conns:
            pair = {}
            for sname in ("streamflex", "nginx"):
                m = bl.median_case(rows, server=sname, object=obj, conns=n)
                if m:
                    m["upstream_requests_during"] = sum(r["upstream_requests_during"] for r in m["runs"])
                    pair[sname] = m
            for sname in ("streamflex", "nginx"):
                r = pair.get(sname)
                if not r:
                    continue
                errs = sum(r["socket_errors"].values()) + r["non_2xx"]
                print(f"{obj:<8} {n:>5} {sname:<10} | {f(r['rps'], '9.0f')} | {f(r['mb_s'], '8.1f')} | "
                      f"{f(r['p50_ms'], '7.2f')} | {f(r['p99_ms'], '7.2f')} | {errs:>6} | "
                      f"{f(r['server_cpu_pct'], '8.0f')} | {f(r.get('cpu_us_per_req'), '10.2f')} | "
                      f"{f(r['wrk_cpu_pct'], '8.0f')} | "
                      f"{r['upstream_requests_during']:>13}")
            a, b = pair.get("streamflex"), pair.get("nginx")
            if a and b and a["rps"] and b["rps"] and a["p99_ms"] and b["p99_ms"]:
                rr, mr, pr = a["rps"] / b["rps"], a["mb_s"] / b["mb_s"], a["p99_ms"] / b["p99_ms"]
                errs_a = sum(a["socket_errors"].values()) + a["non_2xx"]
                ok = rr >= 1.2 and pr < 1.0 and errs_a == 0
                verdicts.append(ok)
                cr = (a["cpu_us_per_req"] / b["cpu_us_per_req"]
                      if a.get("cpu_us_per_req") and b.get("cpu_us_per_req") else None)
                print(f"{'':<8} {'':>5} {'ratio':<10} | {rr:9.2f} | {mr:8.2f} | {'':>7} | {pr:7.2f} | {'':>6} | "
                      f"{'':>8} | {f(cr, '10.2f')} |   -> {'MET' if ok else 'NOT MET'}")
                if args.rounds > 1:
                    print(f"{'':<8} {'':>5} {'rounds':<10} | req/s / p99 ratio per round (* = not met): "
                          + bl.round_ratios(a, b, lambda x, y: x["rps"] >= 1.2 * y["rps"] and x["p99_ms"] < y["p99_ms"]))
    notes = []
    moved = [r for r in rows if r["upstream_requests_during"] or r.get("x_cache_after") != "HIT"]
    if moved:
        notes.append("the upstream was asked during, or the object was not a HIT after: " + ", ".join(
            f"{r['object']}/-c{r['conns']}/{r['server']} ({r['upstream_requests_during']}, {r.get('x_cache_after')})"
            for r in moved))
    stalled = [r for r in rows if r.get("thread_req_s_avg") and r.get("rps") and r["thread_req_s_avg"] > 2 * r["rps"]]
    if stalled:
        notes.append("answers stopped for part of the run (wrk Req/Sec avg > 2x Requests/sec) in: " + ", ".join(
            f"{r['object']}/-c{r['conns']}/{r['server']}" for r in stalled))
    client_bound = [r for r in rows if (r.get("wrk_cpu_pct") or 0) > 90]
    if client_bound:
        notes.append("wrk used >90% of its core in: " + ", ".join(
            f"{r['object']}/-c{r['conns']}/{r['server']}" for r in client_bound) + " (client-bound figures)")
    other = [r for r in rows if r["core_busy_pct"].get(int(args.server_core), 0) - (r["server_cpu_pct"] or 0) > 15]
    if other:
        notes.append(f"other load on core {args.server_core} (>15% beyond the proxy) during: " + ", ".join(
            f"{r['object']}/-c{r['conns']}/{r['server']} ({r['core_busy_pct'].get(int(args.server_core), 0):.0f}% busy)"
            for r in other))
    for n_ in notes:
        print("note: " + n_)
    record["notes"] = notes
    met = bool(verdicts) and all(verdicts)
    print(f"goal (StreamFlex req/s >= 1.2x nginx proxy_cache, lower p99, no errors): {'MET' if met else 'NOT MET'}; "
          f"MET in {sum(verdicts)}/{len(verdicts)} cases;  load average {record['loadavg_start']} -> {record['loadavg_end']}")
    record["goal_met"] = met
    path = bl.write_json(args.results, NAME, record)
    print(f"JSON: {path}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except bl.Abort as e:
        print(f"{NAME}: {e}", file=sys.stderr)
        sys.exit(1)
