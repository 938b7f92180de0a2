#!/usr/bin/python3
"""Load generator capacity: `streamflex loadgen --threads 1` with N simulated LL-HLS viewers, its
own CPU use and the viewers it sustained.

Started by bench/loadgen_capacity.sh (which pins this helper to the client core, raises the file
descriptor limit, owns the temporary directory and kills every PID listed in <workdir>/pids on
exit). Standard library only.

  - Server: `streamflex all --io.threads=1` on SERVER_CORE, fed by `ffmpeg -re -stream_loop -1 -i
    SOURCE -c copy -f flv` (also SERVER_CORE): a live LL-HLS stream with 0.5 s parts. The viewers
    go through its edge (coalesced blocking reloads, parts from the edge's memory cache).
  - For N in N_LIST: `streamflex loadgen --url http://edge/live/bench/master.m3u8 --viewers N
    --duration D --ramp R --threads 1 --json ...` alone on CLIENT_CORE.
  - Sustained: every viewer started and kept playing (no failed viewer), no errors, no stalls, and
    the load generator below 95 % of its core (a saturated generator reports its own lateness as
    the server's).
"""

import argparse
import os
import shlex
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402
import edgelib as el  # noqa: E402

NAME = "loadgen_capacity"


def log(msg):
    bl.log(NAME, msg)


def main():
    ap = argparse.ArgumentParser()
    bl.viewer_bench_args(ap, "10000", 30, 10)
    ap.add_argument("--loadgen-args", default="")
    args = ap.parse_args()
    n_list = [int(n) for n in args.n_list.split()]
    extra = shlex.split(args.loadgen_args)

    reg = bl.Registry(args.workdir)
    reg.note(os.getpid())
    record = {"benchmark": NAME, "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "n_list": n_list,
              "duration_s": args.duration, "ramp_s": args.ramp, "loadgen_args": extra,
              "loadavg_start": el.loadavg(), "binary": bl.binary_info(args.streamflex_bin), "source": args.source,
              "goal": "one core (loadgen --threads 1) sustains >= 10000 LL-HLS viewers"}
    rows = []
    try:
        edge_port = bl.free_port()
        srv = bl.StreamFlex(reg, args.streamflex_bin, args.workdir, args.server_core, extra=[
            "--io.threads=1", f"--edge.listen=127.0.0.1:{edge_port}"]).start()
        pub = reg.spawn(["taskset", "-c", args.server_core, "ffmpeg", "-hide_banner", "-nostdin", "-loglevel",
                         "error", "-re", "-stream_loop", "-1", "-i", args.source, "-c", "copy", "-f", "flv",
                         srv.publish_url], os.path.join(args.workdir, "publisher.log"))
        url = f"http://127.0.0.1:{edge_port}/live/{srv.stream}/master.m3u8"
        parts = bl.wait_live_parts(url, pub, 6, 30, os.path.join(args.workdir, "publisher.log"), srv.log)
        log(f"stream live through the edge ({parts} parts listed)")

        for n in n_list:
            out_json = os.path.join(args.workdir, f"loadgen-{n}.json")
            lg_log = os.path.join(args.workdir, f"loadgen-{n}.log")
            argv = ["taskset", "-c", args.client_core, args.streamflex_bin, "loadgen", "--url", url,
                    "--viewers", str(n), "--duration", f"{args.duration}s", "--ramp", f"{args.ramp}s",
                    "--threads", "1", "--json", out_json] + extra
            log(f"{n} viewers for {args.duration} s (ramp {args.ramp} s): {' '.join(argv[3:])}")
            cpu0, busy0 = el.cpu_total(srv.pids()), el.core_busy()
            t0 = time.monotonic()
            with open(lg_log, "w") as lf:
                p = subprocess.Popen(argv, stdout=lf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
                reg.note(p.pid)
                try:
                    p.wait(timeout=args.duration + 60)
                except subprocess.TimeoutExpired:
                    reg.stop([p])
            wall = time.monotonic() - t0
            srv_cpu = el.cpu_total(srv.pids()) - cpu0
            busy = el.busy_pct(busy0, el.core_busy())
            lg = bl.read_json(out_json)
            v = lg.get("viewers") or {}
            secs = lg.get("seconds") or args.duration
            lg_pct = 100 * lg["cpu_seconds"] / secs if lg.get("cpu_seconds") is not None else None
            row = {"viewers": n, "loadgen_exit": p.returncode, "loadgen": lg, "started": v.get("started"),
                   "ok": v.get("ok"), "failed": v.get("failed"), "errors": lg.get("error_count"),
                   "stalls": (lg.get("stalls") or {}).get("count"), "requests_per_s": lg.get("requests_per_s"),
                   "mb_per_s": (lg.get("bytes_per_s") or 0) / 1e6, "loadgen_cpu_pct": lg_pct,
                   "server_cpu_pct": 100 * srv_cpu / wall, "core_busy_pct": busy,
                   "part_delivery": lg.get("part_delivery"), "live_edge": lg.get("live_edge"),
                   "startup": lg.get("startup"), "loadgen_tail": bl.tail(lg_log, 16)}
            row["sustained"] = (bool(lg) and p.returncode == 0 and v.get("ok") == n and lg.get("error_count") == 0
                                and row["stalls"] == 0 and lg_pct is not None and lg_pct < 95)
            rows.append(row)
            log(f"N={n}: ok {v.get('ok')}, errors {lg.get('error_count')}, stalls {row['stalls']}, "
                f"loadgen {lg_pct if lg_pct is None else round(lg_pct)} % of a core")
        record["server_alive_at_end"] = srv.alive()
    finally:
        reg.stop_all()
    record["rows"] = rows
    record["loadavg_end"] = el.loadavg()

    def f(v, spec):
        return "-" if v is None else format(v, spec)

    print()
    print(f"loadgen capacity: streamflex loadgen --threads 1 (LL-HLS{', ' + ' '.join(extra) if extra else ''}) on "
          f"core {args.client_core}; StreamFlex all (edge + origin, 1 I/O thread) and the publisher on core "
          f"{args.server_core}; {args.duration} s, ramp {args.ramp} s")
    print(f"loadavg at start {record['loadavg_start']}, at end {record['loadavg_end']}")
    print(f"{'viewers':>7} | {'ok':>6} | {'failed':>6} | {'errors':>6} | {'stalls':>6} | {'req/s':>7} | {'MB/s':>6} | "
          f"{'delivery p50/p99 ms':>19} | {'edge p50 s':>10} | {'loadgen %core':>13} | {'server %core':>12} | "
          f"{'core busy c/s':>13} | sustained")
    for r in rows:
        pd = r["part_delivery"] or {}
        le = r["live_edge"] or {}
        busy = r["core_busy_pct"] or {}
        print(f"{r['viewers']:>7} | {f(r['ok'], '6d')} | {f(r['failed'], '6d')} | {f(r['errors'], '6d')} | "
              f"{f(r['stalls'], '6d')} | {f(r['requests_per_s'], '7.0f')} | {f(r['mb_per_s'], '6.1f')} | "
              f"{f(pd.get('p50_ms'), '8.1f')} / {f(pd.get('p99_ms'), '8.1f')} | "
              f"{f((le.get('p50_ms') or 0) / 1000 if le else None, '10.2f')} | {f(r['loadgen_cpu_pct'], '13.0f')} | "
              f"{f(r['server_cpu_pct'], '12.0f')} | "
              f"{f(busy.get(int(args.client_core)), '5.0f')} / {f(busy.get(int(args.server_core)), '5.0f')} | "
              f"{'yes' if r['sustained'] else 'NO'}")
    for r in rows:
        lg = r["loadgen"] or {}
        reqs, cpu, secs = lg.get("requests"), lg.get("cpu_seconds"), lg.get("seconds")
        if reqs and cpu and secs:
            # A viewer that keeps up makes two requests per 0.5 s part (blocking reload, part).
            per_req = 1e6 * cpu / reqs
            r["cpu_us_per_request"] = per_req
            print(f"N={r['viewers']}: loadgen CPU {per_req:.1f} us per request; at 4 requests per viewer-second "
                  f"one whole core would drive ~{1e6 / (4 * per_req):.0f} viewers at that cost (an estimate, "
                  f"not a measurement: the cost per request depends on the load and on the machine)")
    best = max((r["viewers"] for r in rows if r["sustained"]), default=0)
    met = best >= 10000
    print(f"viewers sustained by one load generator core: {best}; goal (>= 10000): {'MET' if met else 'NOT MET'}")
    starved = [r for r in rows if (r["core_busy_pct"] or {}).get(int(args.client_core), 0) - (r["loadgen_cpu_pct"] or 0) > 15]
    if starved:
        print(f"note: other processes used core {args.client_core} during: " + ", ".join(
            f"{r['viewers']} ({(r['core_busy_pct'] or {}).get(int(args.client_core), 0):.0f}% busy, loadgen "
            f"{r['loadgen_cpu_pct'] or 0:.0f}%)" for r in starved) + " - the load generator did not have its core")
    srv_bound = [r for r in rows if (r["server_cpu_pct"] or 0) > 90]
    if srv_bound:
        print("note: the server used >90% of its core in: " + ", ".join(str(r["viewers"]) for r in srv_bound) +
              " (failures there may be the server's, not the load generator's)")
    record["best_sustained"] = best
    record["goal_met"] = met
    path = bl.write_json(args.results, NAME, record)
    print(f"JSON: {path}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except bl.Abort as e:
        print(f"loadgen_capacity: {e}", file=sys.stderr)
        sys.exit(1)
