#!/usr/bin/python3
"""LL-HLS viewers per edge core: the largest number of simulated LL-HLS viewers one edge core
serves with p99 part delivery <= P99_LIMIT_MS (and no errors), and the memory per viewer
connection; StreamFlex edge vs nginx proxy_cache, both driven by the same load generator
(`streamflex loadgen`).

Started by bench/edge_viewers_per_core.sh (which pins this helper to the client core, raises the
file descriptor limit, owns the temporary directory and kills every PID listed in <workdir>/pids
on exit). Standard library only.

  - Origin: `streamflex all --io.threads=1` (its own edge on a spare port, unused) on CLIENT_CORE,
    fed by `ffmpeg -re -stream_loop -1 -i SOURCE -c copy -f flv` (also CLIENT_CORE): a live LL-HLS
    stream with 0.5 s parts. The origin only answers the proxies' misses.
  - Proxy under test on SERVER_CORE, freshly started for each N: `streamflex edge --io.threads=1`,
    or nginx (1 worker) with proxy_cache, proxy_cache_key "$uri$is_args$args" (blocking reloads
    keep their _HLS_msn/_HLS_part in the key), freshness from the origin's Cache-Control (nginx's
    default: playlists are kept no longer than their max-age), proxy_cache_lock on.
  - For N in N_LIST: `streamflex loadgen --url http://proxy/live/bench/master.m3u8 --viewers N
    --duration D --ramp R --threads 1 --json ...` on CLIENT_CORE. RSS of the proxy (all its
    processes) is read before (idle, after one warm-up request) and every 0.5 s during the run.
    A step passes when part delivery p99 <= P99_LIMIT_MS, no errors and no failed viewers.
  - Two measures of part delivery, both printed, each with its own largest N:
    - "reload": from the proxy's answer to the viewer's blocking reload to the part's last byte
      (the loadgen's part_delivery). A proxy that answers blocking reloads late (nginx's
      proxy_cache_lock waiters re-check the lock on a 500 ms timer) spreads its viewers' part
      requests over time and does well here, at the cost of its viewers' latency;
    - "origin": from the moment the part was listed at the origin (a reference player in the
      loadgen follows the origin directly, `--reference`) to the part's last byte at the viewer:
      what the proxy adds, reload and download together, which is what a viewer waits for.
    Stepping stops for a proxy at the first step that passes neither.
  - Memory per viewer = (peak RSS during the run - idle RSS) / N. For StreamFlex the growth of its
    memory cache over the run (streamflex_edge_cache_bytes) is also taken off, in its own column.
"""

import argparse
import os
import re
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402
import edgelib as el  # noqa: E402

NAME = "edge_viewers_per_core"


def log(msg):
    bl.log(NAME, msg)


class Sampler(threading.Thread):
    """RSS (KiB) of `pids` every `every` s until stopped."""

    def __init__(self, pids, every=0.5):
        super().__init__(daemon=True)
        self.pids, self.every, self.samples, self.stop_ev = pids, every, [], threading.Event()

    def run(self):
        while not self.stop_ev.is_set():
            self.samples.append((time.monotonic(), el.rss_kib(self.pids)))
            self.stop_ev.wait(self.every)


def source_kbit_s(path):
    try:
        out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", path],
                             capture_output=True, text=True, timeout=20).stdout.strip()
        return round(os.path.getsize(path) * 8 / float(out) / 1000)
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None


def start_proxy(args, reg, name, origin_port, step):
    if name == "streamflex":
        return el.StreamFlexEdge(reg, args.streamflex_bin, args.workdir, args.server_core, origin_port,
                                 tag=f"edge-n{step}").start()
    return el.start_nginx_proxy(reg, args.workdir, args.server_core, origin_port, tag=f"nginx-n{step}",
                                cache_key="$uri$is_args$args", valid="200 1s", lock_timeout="10s")


def main():
    ap = argparse.ArgumentParser()
    bl.viewer_bench_args(ap, "100 250 500 1000 2000 4000 8000", 20, 5)
    ap.add_argument("--p99-limit-ms", type=float, default=100)
    ap.add_argument("--servers", default="streamflex nginx")
    args = ap.parse_args()
    n_list = [int(n) for n in args.n_list.split()]
    servers = args.servers.split()

    reg = bl.Registry(args.workdir)
    reg.note(os.getpid())
    record = {"benchmark": NAME, "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "n_list": n_list,
              "duration_s": args.duration, "ramp_s": args.ramp, "p99_limit_ms": args.p99_limit_ms,
              "loadavg_start": el.loadavg(), "binary": bl.binary_info(args.streamflex_bin),
              "source": args.source, "source_kbit_s": source_kbit_s(args.source),
              "goal": "largest N with part delivery p99 <= limit and no errors, per proxy; memory per viewer"}
    rows = []
    try:
        origin = bl.StreamFlex(reg, args.streamflex_bin, args.workdir, args.client_core, extra=[
            "--io.threads=1", f"--edge.listen=127.0.0.1:{bl.free_port()}"]).start()
        pub = reg.spawn(["taskset", "-c", args.client_core, "ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error",
                         "-re", "-stream_loop", "-1", "-i", args.source, "-c", "copy", "-f", "flv", origin.publish_url],
                        os.path.join(args.workdir, "publisher.log"))
        master = f"http://127.0.0.1:{origin.http}/live/{origin.stream}/master.m3u8"
        parts = bl.wait_live_parts(master, pub, 8, 30, os.path.join(args.workdir, "publisher.log"), origin.log)
        log(f"origin live ({parts} parts listed); stepping N over {n_list}")

        for sname in servers:
            for step, n in enumerate(n_list):
                srv = start_proxy(args, reg, sname, origin.http, f"{sname}-{n}")
                url = f"http://127.0.0.1:{srv.port}/live/{origin.stream}/master.m3u8"
                bl.http_get(url, 5.0)
                time.sleep(2)
                rss_idle = el.rss_kib(srv.pids(), memfd=True)
                cache_idle = srv.metrics().get("streamflex_edge_cache_bytes") if sname == "streamflex" else None
                out_json = os.path.join(args.workdir, f"loadgen-{sname}-{n}.json")
                lg_log = os.path.join(args.workdir, f"loadgen-{sname}-{n}.log")
                argv = ["taskset", "-c", args.client_core, args.streamflex_bin, "loadgen", "--url", url,
                        "--viewers", str(n), "--duration", f"{args.duration}s", "--ramp", f"{args.ramp}s",
                        "--threads", "1", "--json", out_json, "--reference", master]
                log(f"{sname}: {n} viewers for {args.duration} s (ramp {args.ramp} s)")
                cpu0, busy0 = el.cpu_total(srv.pids()), el.core_busy()
                sampler = Sampler(srv.pids())
                sampler.start()
                t0 = time.monotonic()
                with open(lg_log, "w") as lf:
                    p = subprocess.Popen(argv, stdout=lf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
                    reg.note(p.pid)
                    # The load generator's own CPU, sampled until it exits (its own JSON may lack it).
                    lg_cpu, lg_deadline = None, time.monotonic() + args.duration + 60
                    while p.poll() is None and time.monotonic() < lg_deadline:
                        try:
                            lg_cpu = bl.cpu_seconds(p.pid)
                        except OSError:
                            pass
                        time.sleep(0.2)
                    if p.poll() is None:
                        reg.stop([p])
                wall = time.monotonic() - t0
                sampler.stop_ev.set()
                sampler.join()
                cpu = el.cpu_total(srv.pids()) - cpu0
                busy = el.busy_pct(busy0, el.core_busy())
                m_end = srv.metrics() if sname == "streamflex" else {}
                cache_end = m_end.get("streamflex_edge_cache_bytes")
                alive = srv.alive()
                # Large cached objects live in memfds (not in VmRSS): sampled at the end only (the
                # cache grows during a run and is bounded), added to every sample's VmRSS.
                memfd_end = sum(el.memfd_kib(pid) for pid in srv.pids())
                lg = bl.read_json(out_json)
                srv.stop()
                peak = max((s + memfd_end for _, s in sampler.samples), default=rss_idle)
                pd = lg.get("part_delivery", {})
                po = lg.get("part_since_origin", {})
                errors = lg.get("error_count")
                failed = (lg.get("viewers") or {}).get("failed")
                row = {"server": sname, "viewers": n, "loadgen_exit": p.returncode, "loadgen": lg,
                       "rss_idle_kib": rss_idle, "rss_peak_kib": peak,
                       "rss_kib_per_viewer": (peak - rss_idle) / n,
                       "cache_bytes_idle": cache_idle, "cache_bytes_end": cache_end,
                       "server_cpu_pct": 100 * cpu / wall, "core_busy_pct": busy, "alive_at_end": alive,
                       "loadgen_cpu_pct": 100 * lg_cpu / wall if lg_cpu is not None else None,
                       "p99_ms": pd.get("p99_ms"), "p50_ms": pd.get("p50_ms"), "p95_ms": pd.get("p95_ms"),
                       "parts": pd.get("count"),
                       "origin_p50_ms": po.get("p50_ms"), "origin_p99_ms": po.get("p99_ms"),
                       "origin_parts": po.get("count"), "parts_unreferenced": lg.get("parts_unreferenced"),
                       "part_age_p50_ms": (lg.get("part_age") or {}).get("p50_ms"),
                       "part_age_p99_ms": (lg.get("part_age") or {}).get("p99_ms"),
                       "live_edge_p50_ms": (lg.get("live_edge") or {}).get("p50_ms"), "errors": errors, "failed_viewers": failed,
                       "stalls": (lg.get("stalls") or {}).get("count"), "loadgen_tail": bl.tail(lg_log, 14)}
                if m_end:
                    row["edge_metrics"] = {k: v for k, v in m_end.items() if k.startswith("streamflex_edge_")}
                    cnt = m_end.get("streamflex_edge_upstream_seconds_count") or 0
                    row["edge_upstream_fetches"] = cnt
                    row["edge_upstream_mean_ms"] = 1000 * m_end.get("streamflex_edge_upstream_seconds_sum", 0) / cnt if cnt else None
                if cache_idle is not None and cache_end is not None:
                    row["rss_kib_per_viewer_excl_cache"] = (peak - rss_idle - (cache_end - cache_idle) / 1024) / n
                clean = bool(lg) and p.returncode == 0 and errors == 0 and failed == 0
                row["pass"] = clean and pd.get("count", 0) > 0 and pd.get("p99_ms") is not None and \
                    pd["p99_ms"] <= args.p99_limit_ms
                # Most parts must have a reference time, else the figure is not about them.
                row["pass_origin"] = clean and po.get("count", 0) > 0.9 * pd.get("count", 0) and \
                    po.get("p99_ms") is not None and po["p99_ms"] <= args.p99_limit_ms
                rows.append(row)
                log(f"{sname} N={n}: part delivery p99 {row['p99_ms']} ms after the reload, {row['origin_p99_ms']} ms "
                    f"after the origin listed it; errors {errors}, failed {failed}, RSS {rss_idle}->{peak} KiB -> "
                    f"reload {'pass' if row['pass'] else 'FAIL'}, origin {'pass' if row['pass_origin'] else 'FAIL'}")
                time.sleep(1)
                if not row["pass"] and not row["pass_origin"]:
                    break
        record["publisher_alive_at_end"] = pub.poll() is None
        record["origin_alive_at_end"] = origin.alive()
    finally:
        reg.stop_all()
    record["rows"] = rows
    record["loadavg_end"] = el.loadavg()

    def f(v, spec, width=None):
        if v is None:
            w = re.match(r"\d*", spec).group(0)
            return "-".rjust(int(w)) if w else "-"
        return format(v, spec)

    print()
    print(f"edge viewers per core: streamflex loadgen (LL-HLS, --threads 1, {args.duration} s, ramp {args.ramp} s) on "
          f"core {args.client_core} with the origin and its publisher; proxy on core {args.server_core} "
          f"(StreamFlex edge --io.threads=1 / nginx proxy_cache, 1 worker), fresh for each N; source "
          f"{record['source_kbit_s']} kbit/s, 0.5 s parts")
    print(f"pass: part delivery p99 <= {args.p99_limit_ms:g} ms, no errors, no failed viewers. Part delivery: "
          f"'reload' = the proxy answered the blocking reload -> part downloaded; 'origin' = the part was listed at "
          f"the origin (reference player) -> part downloaded. age = wall clock - part's PDT at download; "
          f"edge = wall clock - playback position (ms)")
    print(f"{'server':<10} {'N':>6} | {'p50 ms':>7} | {'p95 ms':>7} | {'p99 ms':>7} | {'orig p50':>8} | {'orig p99':>8} | "
          f"{'parts':>7} | {'errors':>6} | "
          f"{'failed':>6} | {'stalls':>6} | {'age p50':>7} | {'edge p50':>8} | {'RSS idle MiB':>12} | {'RSS peak MiB':>12} | "
          f"{'KiB/viewer':>10} | {'excl.cache':>10} | srv cpu% | lg cpu% | pass")
    for r in rows:
        print(f"{r['server']:<10} {r['viewers']:>6} | {f(r['p50_ms'], '7.1f')} | {f(r['p95_ms'], '7.1f')} | "
              f"{f(r['p99_ms'], '7.1f')} | {f(r['origin_p50_ms'], '8.1f')} | {f(r['origin_p99_ms'], '8.1f')} | "
              f"{f(r['parts'], '7d')} | {f(r['errors'], '6d')} | "
              f"{f(r['failed_viewers'], '6d')} | {f(r['stalls'], '6d')} | {f(r['part_age_p50_ms'], '7.0f')} | "
              f"{f(r['live_edge_p50_ms'], '8.0f')} | {r['rss_idle_kib'] / 1024:12.1f} | "
              f"{r['rss_peak_kib'] / 1024:12.1f} | {r['rss_kib_per_viewer']:10.1f} | "
              f"{f(r.get('rss_kib_per_viewer_excl_cache'), '10.1f')} | {r['server_cpu_pct']:8.0f} | "
              f"{f(r['loadgen_cpu_pct'], '7.0f')} | reload {'yes' if r['pass'] else 'NO'}, "
              f"origin {'yes' if r['pass_origin'] else 'NO'}")
    best, best_origin = {}, {}
    for key, measure, table in (("pass", "after the reload", best), ("pass_origin", "after the origin", best_origin)):
        for sname in servers:
            ok = [r["viewers"] for r in rows if r["server"] == sname and r[key]]
            table[sname] = max(ok) if ok else None
            tested = [r["viewers"] for r in rows if r["server"] == sname]
            capped = bool(ok) and max(ok) == n_list[-1]
            print(f"largest N, delivery {measure} ({sname}): {table[sname] if table[sname] else 'none of ' + str(tested)}"
                  f"{' (the largest tried: the limit is higher)' if capped else ''}")
        if table.get("streamflex") and table.get("nginx"):
            print(f"ratio StreamFlex/nginx (largest N, delivery {measure}): {table['streamflex'] / table['nginx']:.2f}")
    notes = []
    lg_bound = [r for r in rows if (r["loadgen_cpu_pct"] or 0) > 85]
    if lg_bound:
        notes.append("the load generator used >85% of its core in: " + ", ".join(
            f"{r['server']}/{r['viewers']} ({r['loadgen_cpu_pct']:.0f}%)" for r in lg_bound)
            + " (delivery times there include client delay)")
    other = [r for r in rows if r["core_busy_pct"].get(int(args.server_core), 0) - r["server_cpu_pct"] > 15]
    if other:
        notes.append(f"other load on core {args.server_core} (>15% beyond the proxy) during: " + ", ".join(
            f"{r['server']}/{r['viewers']} ({r['core_busy_pct'].get(int(args.server_core), 0):.0f}% busy)" for r in other))
    for n_ in notes:
        print("note: " + n_)
    record["notes"], record["largest_n"], record["largest_n_from_origin"] = notes, best, best_origin
    print(f"load average {record['loadavg_start']} -> {record['loadavg_end']}")
    path = bl.write_json(args.results, NAME, record)
    print(f"JSON: {path}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except bl.Abort as e:
        print(f"{NAME}: {e}", file=sys.stderr)
        sys.exit(1)
