#!/usr/bin/python3
"""Edge request coalescing: WAITERS clients ask at once for an object the upstream answers only
DELAY_MS after it is asked; StreamFlex edge vs nginx proxy_cache with proxy_cache_lock.

Started by bench/edge_coalescing.sh (which builds bench/coalesce_client.cpp, pins this helper to
the client core, raises the file descriptor limit, owns the temporary directory and kills every
PID listed in <workdir>/pids on exit). Standard library only.

  - Upstream: bench/edge_upstream.py on CLIENT_CORE; /slow/... answers DELAY_MS after each
    request with BODY_BYTES and "Cache-Control: public, max-age=60", counts requests per path and
    logs the CLOCK_MONOTONIC time it handed each answer to the kernel.
  - Proxies on SERVER_CORE: `streamflex edge --io.threads=1`; nginx (1 worker) with proxy_cache,
    proxy_cache_lock on, proxy_cache_lock_timeout 10s.
  - Client: coalesce_client (C++, epoll) on CLIENT_CORE opens WAITERS connections, then sends
    the WAITERS requests in one loop and records, per connection, CLOCK_MONOTONIC when its header
    block and its whole body were in.
  - Floor: the same client against `coalesce_client floor` on SERVER_CORE, an ideal proxy that
    answers all held requests at once DELAY_MS after the first: what this client and the kernel
    need to deliver WAITERS answers, with no proxy work at all.
  - Each round and proxy uses its own path (/slow/rR-<proxy>.m4s), so every round starts cold.
Figures: upstream requests for the path; from the upstream's (first) answer to the last waiter's
headers and to the last waiter's whole body, and the medians.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402
import edgelib as el  # noqa: E402

NAME = "edge_coalescing"


def log(msg):
    bl.log(NAME, msg)


def run_client(args, port, path, logf):
    argv = ["taskset", "-c", args.client_core, args.client_bin, "client", str(port), path, str(args.waiters),
            str(args.client_timeout_ms)]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=args.client_timeout_ms / 1000 + 30)
    with open(logf, "a") as f:
        f.write(f"$ {' '.join(argv)}\nexit {p.returncode}\n{p.stderr}\n")
    if p.returncode != 0:
        raise bl.Abort(f"coalesce_client exited with {p.returncode}: {p.stderr.strip()}")
    return json.loads(p.stdout)


def analyse(c, t_up, upstream_requests, extra=None):
    res = c["results"]
    ok = [r for r in res if r["status"] == 200 and r["t_body"] > 0]
    heads = sorted((r["t_head"] - t_up) / 1e6 for r in res if r["t_head"] > 0)
    bodies = sorted((r["t_body"] - t_up) / 1e6 for r in res if r["t_body"] > 0)
    xc, st, errs = {}, {}, {}
    for r in res:
        xc[r["x_cache"] or "-"] = xc.get(r["x_cache"] or "-", 0) + 1
        st[str(r["status"])] = st.get(str(r["status"]), 0) + 1
        if r["error"]:
            errs[r["error"]] = errs.get(r["error"], 0) + 1
    out = {"waiters": c["conns"], "connected": c["connected"], "sent": c["sent"], "ok": len(ok),
           "upstream_requests": upstream_requests, "statuses": st, "x_cache": xc, "errors": errs,
           "send_spread_ms": (c["t_send_last"] - c["t_send_first"]) / 1e6,
           "last_send_before_answer_ms": (t_up - c["t_send_last"]) / 1e6,
           "headers_ms": bl.summary(heads), "body_ms": bl.summary(bodies),
           "last_headers_ms": heads[-1] if len(heads) == c["conns"] else None,
           "last_body_ms": bodies[-1] if len(bodies) == c["conns"] else None,
           "answered_before_upstream": sum(1 for h in heads if h < 0)}
    out.update(extra or {})
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--results", required=True)
    ap.add_argument("--streamflex-bin", required=True)
    ap.add_argument("--client-bin", required=True)
    ap.add_argument("--waiters", type=int, default=1000)
    ap.add_argument("--delay-ms", type=int, default=500)
    ap.add_argument("--body-bytes", type=int, default=100000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--client-timeout-ms", type=int, default=15000)
    ap.add_argument("--server-core", default="0")
    ap.add_argument("--client-core", default="1")
    ap.add_argument("--servers", default="floor streamflex nginx")
    args = ap.parse_args()
    targets = args.servers.split()

    reg = bl.Registry(args.workdir)
    reg.note(os.getpid())
    record = {"benchmark": NAME, "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "waiters": args.waiters,
              "delay_ms": args.delay_ms, "body_bytes": args.body_bytes, "rounds": args.rounds,
              "loadavg_start": el.loadavg(), "binary": bl.binary_info(args.streamflex_bin),
              "goal": "StreamFlex: 1 upstream request, last waiter's headers within 20 ms of the upstream answer"}
    rows = []
    clog = os.path.join(args.workdir, "client.log")
    try:
        up = el.Upstream(reg, args.workdir, args.client_core, os.path.join(args.workdir, "www"),
                         slow_ms=args.delay_ms, slow_bytes=args.body_bytes).start()
        proxies = {}
        if "streamflex" in targets:
            proxies["streamflex"] = el.StreamFlexEdge(reg, args.streamflex_bin, args.workdir, args.server_core,
                                                      up.port).start()
        if "nginx" in targets:
            proxies["nginx"] = el.start_nginx_proxy(reg, args.workdir, args.server_core, up.port, valid="200 60s",
                                                    lock_timeout="10s")
        log("upstream, " + ", ".join(proxies) + " ready")
        for rnd in range(1, args.rounds + 1):
            for t in targets:
                path = f"/slow/r{rnd}-{t}.m4s"
                busy0 = el.core_busy()
                if t == "floor":
                    port = bl.free_port()
                    flog = os.path.join(args.workdir, f"floor-r{rnd}.out")
                    fp = reg.spawn(["taskset", "-c", args.server_core, args.client_bin, "floor", str(port),
                                    str(args.delay_ms), str(args.body_bytes), str(args.client_timeout_ms + 5000)],
                                   flog, stderr=subprocess.DEVNULL)
                    deadline = time.monotonic() + 10
                    while not bl.tcp_open(port) and time.monotonic() < deadline:
                        time.sleep(0.02)
                    log(f"round {rnd}: floor")
                    c = run_client(args, port, path, clog)
                    reg.stop([fp])
                    lines = [json.loads(x) for x in open(flog) if x.startswith("{")]
                    t_up = next((x["answer_ns"] for x in lines if "answer_ns" in x), None)
                    if t_up is None:
                        raise bl.Abort(f"floor server never answered: {lines}")
                    reqs = next((x["requests"] for x in lines if "requests" in x), None)
                    row = analyse(c, t_up, None, {"floor_requests": reqs})
                else:
                    srv = proxies[t]
                    cpu0 = el.cpu_total(srv.pids())
                    log(f"round {rnd}: {t}")
                    c = run_client(args, srv.port, path, clog)
                    time.sleep(0.3)
                    answers = up.answers(path)
                    count = up.counts().get(path, 0)
                    if not answers:
                        raise bl.Abort(f"{t}: the upstream never answered {path} (requests {count})")
                    t_up = min(a["answer_ns"] for a in answers)
                    row = analyse(c, t_up, count, {
                        "upstream_answers": [{k: a[k] for k in ("recv_ns", "answer_ns", "sent_ns")} for a in answers],
                        "first_send_to_upstream_recv_ms": (min(a["recv_ns"] for a in answers) - c["t_send_first"]) / 1e6,
                        "proxy_cpu_s": el.cpu_total(srv.pids()) - cpu0})
                row["core_busy_pct"] = el.busy_pct(busy0, el.core_busy())
                row.update({"round": rnd, "server": t, "path": path})
                rows.append(row)
                time.sleep(0.5)
        record["servers_alive_at_end"] = {k: v.alive() for k, v in proxies.items()}
        if "nginx" in proxies:
            record["nginx_error_log_tail"] = bl.tail(proxies["nginx"].error_log, 5)
    finally:
        reg.stop_all()
    record["rows"] = rows
    record["loadavg_end"] = el.loadavg()

    def f(v, spec):
        if v is None:
            w = re.match(r"\d*", spec).group(0)
            return "-".rjust(int(w)) if w else "-"
        return format(v, spec)

    print()
    print(f"edge coalescing: {args.waiters} clients ask at once for one object; the upstream answers "
          f"{args.delay_ms} ms after each request it gets, {args.body_bytes} B body; proxy on core {args.server_core}, "
          f"client (C++/epoll) and upstream on core {args.client_core}")
    print("times in ms from the upstream's answer (floor: from the ideal proxy's answer) to the waiters' "
          "headers / whole bodies")
    print(f"{'server':<10} {'rnd':>3} | {'upstream reqs':>13} | {'hdr p50':>8} | {'hdr last':>8} | "
          f"{'body p50':>8} | {'body last':>9} | {'ok':>5} | X-Cache / errors")
    for r in rows:
        label = {"floor": "floor"}.get(r["server"], r["server"])
        xc = " ".join(f"{k}:{v}" for k, v in sorted(r["x_cache"].items()))
        er = (" errors " + ", ".join(f"{k}:{v}" for k, v in r["errors"].items())) if r["errors"] else ""
        print(f"{label:<10} {r['round']:>3} | {f(r['upstream_requests'], '13d')} | "
              f"{f(r['headers_ms'].get('p50'), '8.1f')} | {f(r['last_headers_ms'], '8.1f')} | "
              f"{f(r['body_ms'].get('p50'), '8.1f')} | {f(r['last_body_ms'], '9.1f')} | {r['ok']:>5} | {xc}{er}")
    summary = {}
    for t in targets:
        rs = [r for r in rows if r["server"] == t]
        lh = [r["last_headers_ms"] for r in rs if r["last_headers_ms"] is not None]
        lb = [r["last_body_ms"] for r in rs if r["last_body_ms"] is not None]
        ups = [r["upstream_requests"] for r in rs]
        summary[t] = {"median_last_headers_ms": statistics.median(lh) if len(lh) == len(rs) and lh else None,
                      "median_last_body_ms": statistics.median(lb) if len(lb) == len(rs) and lb else None,
                      "upstream_requests": ups, "all_ok": all(r["ok"] == args.waiters for r in rs)}
    print("median over rounds:")
    for t, s in summary.items():
        print(f"  {t:<10} last headers {f(s['median_last_headers_ms'], '.1f')} ms, last body "
              f"{f(s['median_last_body_ms'], '.1f')} ms, upstream requests per round {s['upstream_requests']}, "
              f"all {args.waiters} answered 200 in every round: {s['all_ok']}")
    a, b = summary.get("streamflex"), summary.get("nginx")
    if a and b and a["median_last_headers_ms"] and b["median_last_headers_ms"]:
        print(f"  ratio StreamFlex/nginx: last headers {a['median_last_headers_ms'] / b['median_last_headers_ms']:.2f}, "
              f"last body {a['median_last_body_ms'] / b['median_last_body_ms']:.2f}")
    notes = []
    late = [r for r in rows if r["server"] != "floor" and r["last_send_before_answer_ms"] < 50]
    if late:
        notes.append("requests were still being sent within 50 ms of the upstream answer in: " + ", ".join(
            f"{r['server']}/r{r['round']}" for r in late))
    early = [r for r in rows if r["answered_before_upstream"]]
    if early:
        notes.append("answers before the upstream's in: " + ", ".join(f"{r['server']}/r{r['round']}" for r in early))
    busy = [r for r in rows if r["core_busy_pct"].get(int(args.server_core), 0) > 50]
    if busy:
        notes.append(f"core {args.server_core} was >50% busy over the round (other processes share it) in: "
                     + ", ".join(f"{r['server']}/r{r['round']} ({r['core_busy_pct'][int(args.server_core)]:.0f}%)"
                                 for r in busy))
    for n_ in notes:
        print("note: " + n_)
    record["notes"], record["summary"] = notes, summary
    goal = None
    if "streamflex" in summary:
        rs = [r for r in rows if r["server"] == "streamflex"]
        goal = all(r["upstream_requests"] == 1 and r["last_headers_ms"] is not None and r["last_headers_ms"] <= 20
                   and r["ok"] == args.waiters for r in rs)
        print(f"goal (StreamFlex: 1 upstream request, last waiter's headers <= 20 ms after the upstream answer, "
              f"every round): {'MET' if goal else 'NOT MET'};  load average {record['loadavg_start']} -> "
              f"{record['loadavg_end']}")
    record["goal_met"] = goal
    path = bl.write_json(args.results, NAME, record)
    print(f"JSON: {path}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except bl.Abort as e:
        print(f"{NAME}: {e}", file=sys.stderr)
        sys.exit(1)
