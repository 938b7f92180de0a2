#!/usr/bin/python3
"""Glass-to-glass latency in hls.js: StreamFlex (LL-HLS, 0.5 s parts) and nginx-rtmp (HLS, 1 s
fragments), the same live source in the same run.

Started by bench/glass_to_glass.sh (which owns the temporary directory and kills every PID listed
in <workdir>/pids, and the descendants of this helper, on exit). Standard library only.

  1. Both servers start pinned to SERVER_CORE.
  2. One ffmpeg (pinned to CLIENT_CORE) makes the source: testsrc2 640x360 30 fps with the frame
     number N burnt into the top row as 16 blocks of 20x20 px (block b white when bit b of N is
     set, geq on a small strip overlaid on the picture), -re, libx264 veryfast zerolatency -g 30
     -sc_threshold 0, AAC; the tee muxer sends the one encoding to both servers and to a local
     probe socket. `showinfo` logs each frame as it enters the encoder: T0, the wall clock of
     frame 0, is fitted from those lines (frame N is produced at T0 + N/fps).
  3. Headless Chromium (bench/browser/glass_to_glass.mjs) opens StreamFlex's own player page and
     an hls.js page on nginx (same hls.js version and configuration); every 100 ms each page draws
     the video to a canvas, decodes N and records Date.now(), hls.js's `latency` and, on
     StreamFlex, the PDT-based glass-to-glass (hls.playingDate, window.sfPlayer.glassToGlass).
  4. latency = Date.now() - (T0 + N/fps). The probe socket times each encoded frame as ffmpeg
     writes it: that is x264's (plus the muxer's) delay, which both servers pay equally.
"""

import argparse
import datetime
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402

NAME = "glass_to_glass"
GOAL_S = 2.0
HERE = os.path.dirname(os.path.abspath(__file__))
BROWSER = os.path.join(HERE, "browser")


def log(msg):
    bl.log(NAME, msg)


class FrameLog(threading.Thread):
    """Reads ffmpeg's stderr; keeps (n, wall ms) of every showinfo line and the other lines' tail."""
    RE = re.compile(rb"\bn:\s*(\d+)\s+pts:")

    def __init__(self, stream):
        super().__init__(daemon=True)
        self.stream, self.frames, self.other = stream, [], []

    def run(self):
        for line in iter(self.stream.readline, b""):
            t = time.time() * 1000
            m = self.RE.search(line)
            if m and b"showinfo" in line:
                self.frames.append((int(m.group(1)), t))
            else:
                self.other.append(line.decode(errors="replace").rstrip())
                del self.other[:-40]


class Probe(threading.Thread):
    """A listening socket for ffmpeg's third tee output (FLV over TCP): wall ms of each video tag."""

    def __init__(self):
        super().__init__(daemon=True)
        self.ls = socket.socket()
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(1)
        self.ls.settimeout(60)
        self.port = self.ls.getsockname()[1]
        self.video = []  # (flv ts ms, wall ms)
        self.error = None

    def run(self):
        try:
            conn, _ = self.ls.accept()
        except OSError as e:
            self.error = repr(e)
            return
        buf = bytearray()
        pos = None
        while True:
            try:
                data = conn.recv(1 << 20)
            except OSError:
                break
            t = time.time() * 1000
            if not data:
                break
            buf += data
            if pos is None:
                if len(buf) < 9:
                    continue
                pos = struct.unpack(">I", buf[5:9])[0] + 4
            while pos + 11 <= len(buf):
                size = int.from_bytes(buf[pos + 1:pos + 4], "big")
                if pos + 11 + size + 4 > len(buf):
                    break
                ttype = buf[pos] & 0x1F
                ts = int.from_bytes(buf[pos + 4:pos + 7], "big") | (buf[pos + 7] << 24)
                if ttype == 9 and size > 1 and not ((buf[pos + 11] & 0x0F) == 7 and buf[pos + 12] == 0):
                    self.video.append((ts, t))
                pos += 11 + size + 4
            if pos > (1 << 20):
                del buf[:pos]
                pos = 0
        conn.close()


def fmt(v, spec=".2f"):
    return "-" if v is None else format(v, spec)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--results", required=True)
    ap.add_argument("--streamflex-bin", required=True)
    ap.add_argument("--duration", type=float, default=30)
    ap.add_argument("--warmup", type=float, default=12)
    ap.add_argument("--server-core", default="0")
    ap.add_argument("--client-core", default="1")
    ap.add_argument("--part-ms", type=int, default=500)
    ap.add_argument("--hls-config", default="", help="JSON merged into both pages' hls.js configuration")
    ap.add_argument("--preroll", type=float, default=6,
                    help="seconds the stream runs before the players join (a viewer joining a running stream)")
    args = ap.parse_args()
    fps, bits, block = 30, 16, 20

    reg = bl.Registry(args.workdir)
    reg.note(os.getpid())
    record = {"benchmark": NAME, "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "duration_s": args.duration,
              "warmup_s": args.warmup, "fps": fps, "loadavg_start": open("/proc/loadavg").read().strip(),
              "binary": bl.binary_info(args.streamflex_bin), "goal": f"StreamFlex median <= {GOAL_S} s"}
    ff = None
    try:
        # ---- servers
        sf = bl.StreamFlex(reg, args.streamflex_bin, args.workdir, args.server_core, extra=[
            "--io.threads=1", f"--origin.part_target={args.part_ms}ms", "--origin.segment_target=2s",
            "--origin.unpublish_grace=10m"]).start()
        hls = os.path.join(args.workdir, "nginx-hls")
        page = os.path.join(args.workdir, "nginx-page")
        os.makedirs(hls)
        os.makedirs(page)
        shutil.copy(os.path.join(BROWSER, "nginx_player.html"), os.path.join(page, "player.html"))
        shutil.copy(os.path.join(BROWSER, "node_modules", "hls.js", "dist", "hls.min.js"), page)
        bl.make_world_readable(page)
        for f in os.listdir(page):
            os.chmod(os.path.join(page, f), 0o644)
        bl.make_world_readable(hls, writable=True)
        nrtmp, nhttp = bl.free_port(), bl.free_port()
        prefix = os.path.join(args.workdir, "nginx")
        page_location = f"""
        location /page/ {{
            alias {page}/;
            types {{ text/html html; text/javascript js; }}
            add_header Cache-Control no-cache;
        }}"""
        ng = bl.Nginx(reg, args.workdir, args.server_core,
                      bl.nginx_rtmp_hls_conf(prefix, nrtmp, nhttp, hls, page_location)).start(nhttp)
        log(f"servers ready: streamflex origin :{sf.http}, nginx http :{nhttp}")

        # ---- the source
        probe = Probe()
        probe.start()
        total = args.preroll + args.warmup + args.duration + 40
        code = (f"color=c=black:s={bits * block}x{block}:r={fps},format=yuv420p,"
                f"geq=lum='if(mod(floor(N/pow(2,floor(X/{block}))),2),235,16)':cb=128:cr=128")
        graph = f"testsrc2=size=640x360:rate={fps}[m];{code}[c];[m][c]overlay=0:0:shortest=1,format=yuv420p[out0]"
        outs = "|".join([f"[f=flv:onfail=ignore]{sf.publish_url}",
                         f"[f=flv:onfail=ignore]rtmp://127.0.0.1:{nrtmp}/live/bench",
                         f"[f=flv:onfail=ignore]tcp://127.0.0.1:{probe.port}"])
        ff_argv = ["taskset", "-c", args.client_core, "ffmpeg", "-hide_banner", "-nostdin", "-nostats",
                   "-loglevel", "info", "-re", "-f", "lavfi", "-i", graph,
                   "-re", "-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=48000", "-t", str(int(total)),
                   "-map", "0:v", "-map", "1:a", "-vf", "showinfo", "-fps_mode", "passthrough",
                   "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-g", str(fps),
                   "-keyint_min", str(fps), "-sc_threshold", "0", "-pix_fmt", "yuv420p", "-b:v", "1500k",
                   "-maxrate", "1500k", "-bufsize", "1500k", "-flags:v", "+global_header",
                   "-c:a", "aac", "-b:a", "96k", "-ar", "48000", "-ac", "2", "-flags:a", "+global_header",
                   "-f", "tee", outs]
        ff = reg.spawn(ff_argv, os.path.join(args.workdir, "ffmpeg.out"), stderr=subprocess.PIPE)
        frames = FrameLog(ff.stderr)
        frames.start()
        record["ffmpeg_argv"] = ff_argv
        deadline = time.monotonic() + 20
        ready = {}
        while time.monotonic() < deadline and len(ready) < 2:
            if ff.poll() is not None:
                raise bl.Abort("ffmpeg exited:\n" + "\n".join(frames.other[-10:]))
            if bl.http_get(f"http://127.0.0.1:{sf.http}/live/{sf.stream}/master.m3u8", 1)[0] == 200:
                ready["sf"] = True
            if bl.http_get(f"http://127.0.0.1:{nhttp}/hls/bench.m3u8", 1)[0] == 200:
                ready["ng"] = True
            time.sleep(0.2)
        if len(ready) < 2:
            raise bl.Abort(f"playlists not available within 20 s (have {sorted(ready)})")
        # StreamFlex's PROGRAM-DATE-TIME of segment 0, which starts with frame 0: compared with
        # T0 it shows where the server anchored its wall clock (frame 0's arrival).
        code_, body = bl.http_get(f"http://127.0.0.1:{sf.http}/live/{sf.stream}/video/index.m3u8", 2)
        m = re.search(rb"#EXT-X-MEDIA-SEQUENCE:0\b.*?#EXT-X-PROGRAM-DATE-TIME:(\S+)", body, re.S)
        if m:
            pdt0 = datetime.datetime.fromisoformat(m.group(1).decode().replace("Z", "+00:00")).timestamp() * 1000
        else:
            pdt0 = None
        time.sleep(args.preroll)

        # ---- the browser
        out = os.path.join(args.workdir, "browser.json")
        cfg = {"pages": [{"name": "streamflex", "url": f"http://127.0.0.1:{sf.http}/?stream={sf.stream}"},
                         {"name": "nginx", "url": f"http://127.0.0.1:{nhttp}/page/player.html?src=/hls/bench.m3u8"}],
               "seconds": args.warmup + args.duration, "tmp": args.workdir, "out": out, "bits": bits,
               "block": block, "hlsConfig": json.loads(args.hls_config) if args.hls_config else {}}
        record["hls_config_override"] = cfg["hlsConfig"]
        with open(os.path.join(args.workdir, "browser-config.json"), "w") as f:
            json.dump(cfg, f)
        log(f"chromium: {args.warmup:g} s warm-up + {args.duration:g} s sampling")
        node = reg.spawn(["taskset", "-c", args.client_core, "node", os.path.join(BROWSER, "glass_to_glass.mjs"),
                          os.path.join(args.workdir, "browser-config.json")],
                         os.path.join(args.workdir, "node.log"), cwd=BROWSER)
        try:
            node.wait(timeout=args.warmup + args.duration + 120)
        except subprocess.TimeoutExpired:
            reg.stop([node], wait=5)
        if node.returncode != 0 or not os.path.exists(out):
            raise bl.Abort(f"browser driver failed ({node.returncode}):\n{bl.tail(os.path.join(args.workdir, 'node.log'))}")
        with open(out) as f:
            browser = json.load(f)
        record["ffmpeg_alive_at_end"] = ff.poll() is None
        record["servers_alive_at_end"] = {"streamflex": sf.alive(), "nginx": ng.alive()}
    finally:
        reg.stop_all()

    # ---- analysis
    if not frames.frames:
        raise bl.Abort("no showinfo lines from ffmpeg:\n" + "\n".join(frames.other[-10:]))
    offs = sorted(t - n * 1000 / fps for n, t in frames.frames)
    t0 = offs[0]  # frames are never produced early: the earliest offset is frame 0's schedule
    record["t0_ms"] = t0
    record["streamflex_pdt0_minus_t0_ms"] = pdt0 - t0 if pdt0 is not None else None
    record["source_pacing_ms"] = {"p50": bl.percentile(offs, 50) - t0, "p95": bl.percentile(offs, 95) - t0,
                                  "max": offs[-1] - t0, "frames": len(offs)}
    # Source hiccups (a frame entering the encoder > 100 ms behind schedule, e.g. ffmpeg starved of
    # CPU): players that ran dry then keep the extra latency (hls.js does not speed up by default).
    late = [(n, round(t - t0 - n * 1000 / fps)) for n, t in frames.frames if t - t0 - n * 1000 / fps > 100]
    record["source_late_frames"] = {"count": len(late), "first": late[:20]}
    enc = [t - (t0 + round(ts * fps / 1000) * 1000 / fps) for ts, t in probe.video]
    record["encoder_delay_ms"] = bl.summary(enc[fps:])  # skip the first second (encoder start-up)

    labels = {"streamflex": f"streamflex ({args.part_ms / 1000:g} s parts)", "nginx": "nginx-rtmp (1 s fragments)"}
    res = {}
    for name in ("streamflex", "nginx"):
        p = browser["pages"].get(name, {})
        st = p.get("g2g") or {}
        samples = st.get("samples", [])
        start = p.get("loaded", 0) + args.warmup * 1000
        lat, hl, pdt, g2g, series = [], [], [], [], []
        implausible = unreadable = 0
        for s in samples:
            if s["t"] < start:
                continue
            if s["n"] is None:
                unreadable += 1
                continue
            ms = s["t"] - (t0 + s["n"] * 1000 / fps)
            if not 0 <= ms <= 60000:
                implausible += 1
                continue
            lat.append(ms / 1000)
            series.append([round((s["t"] - p.get("loaded", 0)) / 1000, 2), round(ms / 1000, 3),
                           None if s.get("lat") is None else round(s["lat"], 3)])
            if s.get("lat") is not None:
                hl.append(s["lat"])
            if s.get("pdt") is not None:
                pdt.append((s["t"] - s["pdt"]) / 1000)
            if s.get("g2g") is not None:
                g2g.append(s["g2g"])
        res[name] = {"label": labels[name], "latency_s": bl.summary(lat), "hls_latency_s": bl.summary(hl),
                     "pdt_g2g_s": bl.summary(pdt), "sfplayer_g2g_s": bl.summary(g2g),
                     "unreadable": unreadable, "implausible": implausible,
                     "visibility": sorted({s.get("vis") for s in samples}),
                     "player": p.get("player"), "hls": p.get("hls"), "quality": p.get("quality"),
                     "console": p.get("console", [])[:10], "hls_errors": st.get("hlsErrors", []),
                     "series": series}  # [seconds since page load, latency s, hls.js latency s]
    record["results"] = res

    print()
    print(f"glass-to-glass latency, s: Date.now() - source time of the frame number on screen "
          f"(window {args.duration:g} s after {args.warmup:g} s warm-up; players joined after {args.preroll:g} s)")
    if record.get("hls_config_override"):
        print(f"hls.js configuration override on both pages: {json.dumps(record['hls_config_override'])}")
    print(f"{'server':<28} | samples | median |  p95  | hls.js latency p50 | PDT g2g p50 | sfPlayer.glassToGlass p50")
    for name in ("streamflex", "nginx"):
        r = res[name]
        s = r["latency_s"]
        print(f"{r['label']:<28} | {s.get('count', 0):>7} | {fmt(s.get('p50')):>6} | {fmt(s.get('p95')):>5} | "
              f"{fmt(r['hls_latency_s'].get('p50')):>18} | {fmt(r['pdt_g2g_s'].get('p50')):>11} | "
              f"{fmt(r['sfplayer_g2g_s'].get('p50'))}")
        if r["unreadable"] or r["implausible"]:
            print(f"{'':<28}   unreadable frames {r['unreadable']}, implausible numbers {r['implausible']}")
        if r["hls_errors"]:
            kinds = {}
            for e in r["hls_errors"]:
                kinds[e["details"]] = kinds.get(e["details"], 0) + 1
            print(f"{'':<28}   hls.js errors: " + ", ".join(f"{k} x{v}" for k, v in sorted(kinds.items())))
    a, b = res["streamflex"]["latency_s"], res["nginx"]["latency_s"]
    verdict = None
    if a.get("count") and b.get("count"):
        print(f"ratio StreamFlex/nginx-rtmp: median {a['p50'] / b['p50']:.2f}, p95 {a['p95'] / b['p95']:.2f}")
    e = record["encoder_delay_ms"]
    print(f"x264 veryfast zerolatency + FLV mux (source frame -> encoded frame written; in both figures): "
          f"median {fmt(e.get('p50'), '.0f')} ms, p95 {fmt(e.get('p95'), '.0f')} ms ({e.get('count', 0)} frames)")
    if record["streamflex_pdt0_minus_t0_ms"] is not None:
        print(f"StreamFlex PDT of segment 0 (frame 0) - T0 = {record['streamflex_pdt0_minus_t0_ms']:.0f} ms "
              f"(PDT-based figures leave this out)")
    sp = record["source_pacing_ms"]
    print(f"source clock: T0 fitted from {sp['frames']} showinfo lines; frames logged {sp['p50']:.1f} ms (p50), "
          f"{sp['p95']:.1f} ms (p95), {sp['max']:.0f} ms (max) after T0 + N/fps; "
          f"{record['source_late_frames']['count']} frames > 100 ms late")
    if a.get("count"):
        verdict = a["p50"] <= GOAL_S
        print(f"goal StreamFlex median <= {GOAL_S:g} s: {'MET' if verdict else 'NOT MET'} "
              f"(median {a['p50']:.2f} s, p95 {a['p95']:.2f} s)")
    record["goal_met"] = verdict
    path = bl.write_json(args.results, NAME, record)
    print(f"JSON: {path}")
    return 0 if verdict is not None else 2


if __name__ == "__main__":
    try:
        sys.exit(main())
    except bl.Abort as e:
        print(f"glass_to_glass: {e}", file=sys.stderr)
        sys.exit(1)
