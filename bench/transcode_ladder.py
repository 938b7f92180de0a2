"""Transcoding benchmark: the same pre-encoded 1080p30 input transcoded to 720p/480p/360p (x264
veryfast, the same bit rates, VBV and keyframe interval) by StreamFlex (`streamflex transcode
--input`) and by the ffmpeg command line (one decode, split + scale filters, three libx264
outputs), in the same run, as fast as possible and with -re. Prints CPU seconds per media second,
speed, peak RSS and PSNR per rung against the source scaled by swscale (bicubic), and the ratios.

Two ffmpeg command lines (FFMPEG_SCALE=direct|cascade|both, default both):
- direct: the issue's command, `split=3` and one bicubic `scale` per output, each from the 1080p
  picture. The goal verdict is against this one.
- cascade: StreamFlex's own scaling mirrored (720p from the source, 480p from the 720p picture,
  360p from 480p: `scale,split` chains), to separate the scaling choice from the rest.
Both use the same encoder settings as StreamFlex: x264 veryfast, tune zerolatency plus the same x264
parameters (no B-frames, no scene cut, no lookahead, rate control on real timestamps), the same bit
rates and VBV, IDR every 2 s, one encoder thread per rung. PSNR pairs each output frame with the source
frame it came from (every frame is kept on both sides; checked) against one reference per rung
(the source scaled straight to the rung's size), so the two tools' figures are comparable.
MODES=scalers measures, under callgrind, libswscale's instructions per picture for every rung
scaled from every picture that could be its source (the source or a larger rung), for the bench's
ladder and the default one, and the PSNR of the cascaded pictures (before encoding) against the
direct ones: whether StreamFlex's scaling-source choice (transcode.cascade) is the cheaper one.
Standard library only; see bench/README.md.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time

import benchlib as bl

RUNGS = [("720p", 1280, 720, 3000, "high", "4.2"), ("480p", 854, 480, 1500, "main", "3.1"),
         ("360p", 640, 360, 800, "main", "3.1")]
PRESET = "veryfast"
GOP_SECONDS = 2


def profile_arg():
    rungs = [f"{n}:{w}x{h}@30:{k}k:{int(k * 1.1)}k:{PRESET}:{p}:{l}" for n, w, h, k, p, l in RUNGS]
    return "bench=" + ",".join(rungs)


def make_source(path, seconds):
    if os.path.exists(path) and os.path.getsize(path) > 0:
        return path
    tmp = path + ".tmp"
    subprocess.run(["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc2=size=1920x1080:rate=30,noise=alls=8:allf=t+u", "-f", "lavfi", "-i",
                    "sine=frequency=1000:sample_rate=48000", "-t", str(seconds), "-c:v", "libx264", "-preset", "veryfast",
                    "-g", "60", "-pix_fmt", "yuv420p", "-b:v", "8000k", "-c:a", "aac", "-b:a", "128k", "-f", "flv", tmp],
                   check=True, timeout=600)
    os.replace(tmp, path)
    return path


def timed(argv, log, timeout):
    """Runs argv to completion, killed after `timeout` s; (wall s, CPU s of it and its children,
    peak RSS MB, exit code)."""
    t0 = time.monotonic()
    with open(log, "wb") as out:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        killer = threading.Timer(timeout, p.kill)
        killer.start()
        try:
            _, status, ru = os.wait4(p.pid, 0)
        finally:
            killer.cancel()
        p.returncode = 0  # reaped here; keeps Popen from waiting again
    wall = time.monotonic() - t0
    if wall >= timeout:
        raise SystemExit(f"{argv[0]} killed after {timeout:.0f} s (time limit): {bl.tail(log)}")
    return wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024, os.waitstatus_to_exitcode(status)


# x264 exactly as StreamFlex's encoder.cpp sets it for a rung (tune zerolatency, then these), one
# thread per encoder on both sides (no sliced threads: they cost quality and CPU).
X264_PARAMS = "scenecut=0:keyint=infinite:rc-lookahead=0:sync-lookahead=0:bframes=0:force-cfr=0"


# ffmpeg's decoder threads: its default (auto: frame threads, one per core) unless
# FFMPEG_DECODE_THREADS says (1: one thread, as StreamFlex decodes).
FFMPEG_DECODE_THREADS = os.environ.get("FFMPEG_DECODE_THREADS", "")


# The ffmpeg command lines: "direct" is the (split, then every rung scaled from the 1080p
# picture); "cascade" mirrors StreamFlex's scaling. FFMPEG_SCALE picks them (default both).
VARIANTS = {"direct": "the issue's command: split=3, each rung scaled from the source",
            "cascade": "StreamFlex's cascaded scaling mirrored (720p <- source, 480p <- 720p, 360p <- 480p)"}
FFMPEG_SCALE = os.environ.get("FFMPEG_SCALE", "both")


def variants():
    if FFMPEG_SCALE == "both":
        return ["direct", "cascade"]
    if FFMPEG_SCALE not in VARIANTS:
        raise SystemExit(f"FFMPEG_SCALE={FFMPEG_SCALE}: expected direct, cascade or both")
    return [FFMPEG_SCALE]


def ffmpeg_filter(scale):
    if scale == "direct":
        # The command line: one decode, split, one bicubic scale per output from the source.
        split = "[0:v]split=" + str(len(RUNGS)) + "".join(f"[s{i}]" for i in range(len(RUNGS)))
        return ";".join([split] + [f"[s{i}]scale={w}:{h}:flags=bicubic[o{i}]" for i, (_, w, h, *_r) in enumerate(RUNGS)])
    # StreamFlex's default (transcode.cascade): bicubic swscale, each rung from the next larger
    # rung's picture (720p from the source, 480p from 720p, 360p from 480p).
    parts, prev = [], "[0:v]"
    for i, (_, w, h, *_r) in enumerate(RUNGS):
        last = i == len(RUNGS) - 1
        parts.append(f"{prev}scale={w}:{h}:flags=bicubic" + (f"[o{i}]" if last else f",split=2[o{i}][c{i}]"))
        prev = f"[c{i}]"
    return ";".join(parts)


def ffmpeg_argv(src, outdir, realtime, scale):
    filt = ffmpeg_filter(scale)
    argv = ["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-y"] + (["-re"] if realtime else []) + (
        ["-threads", FFMPEG_DECODE_THREADS] if FFMPEG_DECODE_THREADS else []) + ["-i", src, "-filter_complex", filt]
    for i, (name, w, h, k, prof, level) in enumerate(RUNGS):
        argv += ["-map", f"[o{i}]", "-c:v", "libx264", "-threads", "1", "-preset", PRESET, "-tune", "zerolatency",
                 "-profile:v", prof, "-level", level, "-b:v", f"{k}k", "-maxrate", f"{int(k * 1.1)}k",
                 "-bufsize", f"{int(k * 1.1)}k", "-bf", "0", "-g", "100000", "-sc_threshold", "0", "-forced-idr", "1",
                 "-force_key_frames", f"expr:gte(t,n_forced*{GOP_SECONDS})", "-x264-params", X264_PARAMS,
                 "-fps_mode", "passthrough", "-an", os.path.join(outdir, f"{name}.mp4")]
    return argv


def frames(path):
    p = subprocess.run(["ffprobe", "-v", "error", "-count_packets", "-select_streams", "v:0", "-show_entries",
                        "stream=nb_read_packets", "-of", "csv=p=0", path], capture_output=True, text=True, timeout=120)
    return int(p.stdout.strip() or 0)


def psnr(out, src, w, h, stats):
    """(average PSNR, frames compared) of `out` against the source decoded and scaled to w x h by
    the same scaler for every tool (bicubic swscale, straight from the source: the ideal picture).
    Output frame i is compared with source frame i (settb=1/30,setpts=N on both: the same time
    base, so the psnr filter's time-synchronised pairing is exactly by index): exact because both
    tools keep every source frame in order (30 fps rungs of a 30 fps source; main() checks the
    counts). Not exact: pairing by presentation time (ffmpeg's MP4 output re-times the FLV's
    millisecond timestamps to an even 1/30 s grid, so many of its frames met a neighbouring source
    frame: 29 dB), or setpts=N/30/TB in each input's own time base (N/30 s rounded to 1/1000
    in the FLV but exact in 1/90000: every frame after a 34 ms step met the wrong source frame)."""
    p = subprocess.run(["ffmpeg", "-hide_banner", "-nostdin", "-i", out, "-i", src, "-lavfi",
                        f"[1:v]scale={w}:{h}:flags=bicubic,settb=1/30,setpts=N[ref];[0:v]settb=1/30,setpts=N[d];"
                        f"[d][ref]psnr=stats_file={stats}:shortest=1:repeatlast=0", "-fps_mode", "passthrough",
                        "-f", "null", "-"], capture_output=True, text=True, timeout=600)
    m = re.search(r"PSNR y:[\d.inf]+ u:[\d.inf]+ v:[\d.inf]+ average:([\d.inf]+)", p.stderr)
    try:
        with open(stats) as f:
            n = sum(1 for line in f if line.startswith("n:"))
    except OSError:
        n = 0
    return (float(m.group(1)) if m else None), n


def first_pts(path):
    p = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-read_intervals", "%+#1",
                        "-show_entries", "packet=pts_time", "-of", "csv=p=0", path],
                       capture_output=True, text=True, timeout=60)
    try:
        return float(p.stdout.split()[0])
    except (IndexError, ValueError):
        return None


def callgrind_objects(outfile):
    """Instructions per shared object (self cost) from a callgrind output file."""
    p = subprocess.run(["callgrind_annotate", "--threshold=100", "--inclusive=no", "--auto=no", outfile],
                       capture_output=True, text=True, timeout=600)
    objects = {}
    for line in p.stdout.splitlines():
        m = re.match(r"\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(.*?)(?:\s+\[(.*)\])?$", line)
        if not m or "PROGRAM TOTALS" in m.group(2):
            continue
        obj = os.path.basename(m.group(3) or "?")
        obj = re.sub(r"\.so[.\d]*$", "", obj)
        objects[obj] = objects.get(obj, 0) + int(m.group(1).replace(",", ""))
    return objects


# StreamFlex's own scaling: each rung from the next larger rung's picture (transcode.cascade=true)
# and/or every rung from the source (transcode.cascade=false, its default and the same scaling as
# the command), SF_SCALE=cascade|direct|both; by zimg (its default) and/or swscale
# (transcode.scaler), SF_SCALER=zimg|swscale|both. Both keys are always passed explicitly.
SF_SCALE = os.environ.get("SF_SCALE", "direct")
SF_SCALER = os.environ.get("SF_SCALER", "zimg")


def sf_variants():
    if SF_SCALE == "both":
        return ["cascade", "direct"]
    if SF_SCALE not in ("cascade", "direct"):
        raise SystemExit(f"SF_SCALE={SF_SCALE}: expected cascade, direct or both")
    return [SF_SCALE]


def sf_scalers():
    if SF_SCALER == "both":
        return ["zimg", "swscale"]
    if SF_SCALER not in ("zimg", "swscale"):
        raise SystemExit(f"SF_SCALER={SF_SCALER}: expected zimg, swscale or both")
    return [SF_SCALER]


def tools():
    """(name, label) of every tool in a run: StreamFlex ("streamflex-SCALER-VARIANT", one per scaler
    and scaling source asked for; the label names both), then the ffmpeg variants asked for."""
    sf = [(f"streamflex-{lib}-{v}", f"StreamFlex {lib} {v}") for lib in sf_scalers() for v in sf_variants()]
    return sf + [(f"ffmpeg-{v}", f"ffmpeg {v}") for v in variants()]


def tool_argv(tool, args, src, outdir, realtime):
    if tool.startswith("streamflex"):
        _, lib, variant = tool.split("-")
        return streamflex_argv(args.bin, src, outdir, realtime) + [
            f"--transcode.scaler={lib}", f"--transcode.cascade={'true' if variant == 'cascade' else 'false'}"]
    return ffmpeg_argv(src, outdir, realtime, tool.split("-", 1)[1])


def callgrind_run(args, src, media):
    """MODES=callgrind: StreamFlex and each ffmpeg variant under valgrind's callgrind (instruction
    counts repeat on a busy machine, unlike CPU seconds); prints instructions per library for each
    and the ratios. Slow (about 25 s of valgrind per second of input for each tool, more on a busy
    machine): use a short clip (DURATION defaults to 3 here); each run is killed after
    CALLGRIND_TIMEOUT s (default 200 per media second)."""
    counts = {}
    limit = float(os.environ.get("CALLGRIND_TIMEOUT", str(200 * media + 60)))
    for tool, _ in tools():
        outdir = os.path.join(args.work, f"{tool}-callgrind")
        os.makedirs(outdir, exist_ok=True)
        cg = os.path.join(args.work, f"callgrind.{tool}")
        log = os.path.join(args.work, f"{tool}-callgrind.log")
        wall, _, _, rc = timed(["valgrind", "--tool=callgrind", f"--callgrind-out-file={cg}"] +
                               tool_argv(tool, args, src, outdir, False), log, limit)
        if rc != 0:
            raise SystemExit(f"{tool} (callgrind) exited {rc}: {bl.tail(log)}")
        counts[tool] = callgrind_objects(cg)
        bl.log("transcode", f"{tool} under callgrind: {sum(counts[tool].values()) / 1e9:.3f} G instructions, {wall:.0f} s")
    names = [t for t, _ in tools()]
    allobj = set().union(*(set(c) for c in counts.values()))
    objs = sorted(allobj, key=lambda o: -max(c.get(o, 0) for c in counts.values()))
    floor = 0.005 * max(sum(c.values()) for c in counts.values())
    print(f"\n{'instructions (G)':24s} " + " ".join(f"{n:>24s}" for n in names) + f"   ({media:.2f} s of input)")
    rest = {n: 0 for n in names}
    for o in objs:
        if max(counts[n].get(o, 0) for n in names) < floor:
            for n in names:
                rest[n] += counts[n].get(o, 0)
            continue
        print(f"{o:24s} " + " ".join(f"{counts[n].get(o, 0) / 1e9:24.3f}" for n in names))
    print(f"{'(everything else)':24s} " + " ".join(f"{rest[n] / 1e9:24.3f}" for n in names))
    totals = {n: sum(counts[n].values()) for n in names}
    print(f"{'total':24s} " + " ".join(f"{totals[n] / 1e9:24.3f}" for n in names))
    ratios = {}
    for a in (n for n in names if n.startswith("streamflex")):
        for b in (n for n in names if n.startswith("ffmpeg")):
            ratios[f"{a}/{b}"] = totals[a] / totals[b]
            which = "the issue's command" if b == "ffmpeg-direct" else "mirrors StreamFlex's cascade"
            print(f"{a} = {ratios[f'{a}/{b}']:.3f} x {b}'s instructions ({which})")
    return {"instructions": counts, "ratios": ratios}


# MODES=scalers: each rung of a ladder from each picture that could be its scaling source.
SCALER_LADDERS = {
    "bench": [(1280, 720), (854, 480), (640, 360)],
    "default": [(1280, 720), (854, 480), (640, 360), (284, 160)],  # 1080p rung = the source itself
}
SWS_PROBE = r"""
import ctypes, sys
sws = ctypes.CDLL("libswscale.so.6"); av = ctypes.CDLL("libavutil.so.57")
sws.sws_getContext.restype = ctypes.c_void_p
sws.sws_getContext.argtypes = [ctypes.c_int] * 7 + [ctypes.c_void_p] * 3
sws.sws_scale.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int,
                          ctypes.c_void_p, ctypes.c_void_p]
P4, I4 = ctypes.c_void_p * 4, ctypes.c_int * 4
def alloc(w, h):
    d, s = P4(), I4()
    assert av.av_image_alloc(d, s, w, h, 0, 64) > 0  # AV_PIX_FMT_YUV420P, 64-byte aligned
    return d, s
sw, sh, dw, dh, n = map(int, sys.argv[1:6])
sd, ss = alloc(sw, sh)
dd, ds = alloc(dw, dh)
ctx = sws.sws_getContext(sw, sh, 0, dw, dh, 0, 4, None, None, None)  # SWS_BICUBIC, as pipeline.cpp
for _ in range(n):
    sws.sws_scale(ctx, sd, ss, 0, sh, dd, ds)
"""


def sws_instructions(work, sw, sh, dw, dh):
    """libswscale instructions per picture for sw x sh -> dw x dh (yuv420p, bicubic), under
    callgrind: the count for 25 pictures less the count for 5 (the context's set-up cancels)."""
    probe = os.path.join(work, "sws_probe.py")
    with open(probe, "w") as f:
        f.write(SWS_PROBE)
    got = []
    for n in (5, 25):
        cg = os.path.join(work, f"callgrind.sws.{sw}x{sh}-{dw}x{dh}.{n}")
        log = cg + ".log"
        _, _, _, rc = timed(["valgrind", "--tool=callgrind", f"--callgrind-out-file={cg}", sys.executable, probe,
                             str(sw), str(sh), str(dw), str(dh), str(n)], log, 300)
        if rc != 0:
            raise SystemExit(f"sws probe exited {rc}: {bl.tail(log)}")
        got.append(sum(v for o, v in callgrind_objects(cg).items() if "swscale" in o))
    return (got[1] - got[0]) / 20


def scaled_psnr(src, chain, w, h):
    """PSNR (average of Y, U, V as ffmpeg prints it) of the picture made through `chain` (sizes, each
    scaled from the one before by bicubic swscale, starting at the source) against the source
    scaled straight to w x h: what cascading costs before any encoding. The first 90 frames."""
    steps = ",".join(f"scale={cw}:{ch}:flags=bicubic" for cw, ch in chain + [(w, h)])
    p = subprocess.run(["ffmpeg", "-hide_banner", "-nostdin", "-filter_threads", "1", "-i", src, "-frames:v", "90",
                        "-lavfi", f"[0:v]split[a][b];[a]scale={w}:{h}:flags=bicubic[ref];[b]{steps}[c];[c][ref]psnr",
                        "-f", "null", "-"], capture_output=True, text=True, timeout=600)
    m = re.search(r"PSNR y:([\d.inf]+) u:[\d.inf]+ v:[\d.inf]+ average:([\d.inf]+)", p.stderr)
    return float(m.group(2)) if m else None


def scalers_run(args, src, srcsize):
    """MODES=scalers: for every rung of the bench's and the default ladder, libswscale instructions
    per picture from each possible source (the source, or any larger rung), the choice StreamFlex's
    cascade makes (the smallest picture at least as large) and the cheapest one, and the PSNR of
    the cascaded picture against the direct one before encoding."""
    record = {}
    cache = {}
    for ladder, rungs in SCALER_LADDERS.items():
        print(f"\n{ladder} ladder from {srcsize[0]}x{srcsize[1]}: libswscale M instructions per picture by scaling source "
              "(PSNR of that picture, before encoding, against the source scaled straight to the rung)")
        chain = {srcsize: []}  # how each picture is made under the cascade: the sizes before it
        rows = []
        for i, (w, h) in enumerate(rungs):
            cands = [srcsize] + [r for r in rungs[:i] if r[0] >= w and r[1] >= h]
            cost = {}
            for c in cands:
                key = (c, (w, h))
                if key not in cache:
                    cache[key] = sws_instructions(args.work, c[0], c[1], w, h)
                cost[c] = cache[key]
            cascade_src = min(cands, key=lambda c: c[0] * c[1])
            cheapest = min(cands, key=lambda c: cost[c])
            chain[(w, h)] = chain[cascade_src] + ([cascade_src] if cascade_src != srcsize else [])
            # Each larger picture as it is made under the cascade, then scaled to this rung.
            db = {c: scaled_psnr(src, chain[c] + [c], w, h) for c in cands if c != srcsize}
            rows.append({"rung": f"{w}x{h}", "cost_m": {f"{c[0]}x{c[1]}": cost[c] / 1e6 for c in cands},
                         "cascade_source": f"{cascade_src[0]}x{cascade_src[1]}",
                         "cheapest_source": f"{cheapest[0]}x{cheapest[1]}",
                         "psnr_vs_direct_db": {f"{c[0]}x{c[1]}": v for c, v in db.items()}})
            print(f"  {w}x{h}: " + ", ".join(f"from {c[0]}x{c[1]} {cost[c] / 1e6:.2f}" +
                                             (f" ({db[c]:.2f} dB)" if c in db else "") for c in cands) +
                  f"; cascade takes {cascade_src[0]}x{cascade_src[1]}, cheapest {cheapest[0]}x{cheapest[1]}" +
                  ("" if cascade_src == cheapest else "  <-- NOT the cheapest"))
        per_picture = {
            "cascade": sum(r["cost_m"][r["cascade_source"]] for r in rows),
            "cheapest": sum(r["cost_m"][r["cheapest_source"]] for r in rows),
            "direct": sum(r["cost_m"][f"{srcsize[0]}x{srcsize[1]}"] for r in rows),
        }
        print(f"  per source picture: cascade {per_picture['cascade']:.2f} M, cheapest choice "
              f"{per_picture['cheapest']:.2f} M, all direct {per_picture['direct']:.2f} M")
        record[ladder] = {"rungs": rows, "per_picture_m": per_picture}
    return record


def streamflex_argv(binary, src, outdir, realtime):
    return [binary, "transcode", "--input", src, "--output-dir", outdir, f"--transcode.profiles={profile_arg()}",
            "--transcode.profile=bench", "--log.level=warn"] + (["--re"] if realtime else [])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(bl.ROOT, "build", "app", "streamflex"))
    ap.add_argument("--seconds", type=int, default=0)
    ap.add_argument("--source", default=os.environ.get("SOURCE", ""))
    ap.add_argument("--work", required=True)
    ap.add_argument("--modes", default=os.environ.get("MODES", "fast re"))
    args = ap.parse_args()
    modes = args.modes.split()
    if not args.seconds:  # callgrind runs about 25x slower: a short clip unless DURATION says
        args.seconds = int(os.environ.get("DURATION", "3" if "callgrind" in modes else "30"))
    cache = os.path.join(os.environ.get("TMPDIR", "/tmp"), "streamflex-bench-clips")
    os.makedirs(cache, exist_ok=True)
    src = args.source or make_source(os.path.join(cache, f"ladder-1080p30-{args.seconds}s.flv"), args.seconds)
    media = float(subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                                  "format=duration", "-of", "csv=p=0", src], capture_output=True, text=True).stdout)
    load = os.getloadavg()
    bl.log("transcode", f"input {src} ({media:.1f} s of 1920x1080@30), load average {load[0]:.2f} {load[1]:.2f}, "
                        f"{os.cpu_count()} cores")
    record = {"input": src, "media_seconds": media, "ffmpeg_decode_threads": FFMPEG_DECODE_THREADS or "auto",
              "ffmpeg_scale": variants(), "streamflex_scale": sf_variants(),
              "streamflex_scaler": sf_scalers(), "load_before": load, "cores": os.cpu_count(),
              "binary": bl.binary_info(args.bin), "runs": []}
    if "scalers" in modes:
        record["scalers"] = scalers_run(args, src, (1920, 1080))
        record["load_after"] = os.getloadavg()
        print(f"results: {bl.write_json(os.path.join(bl.HERE, 'results'), 'transcode_ladder-scalers', record)}")
        return
    if "callgrind" in modes:
        record["callgrind"] = callgrind_run(args, src, media)
        record["load_after"] = os.getloadavg()
        print(f"results: {bl.write_json(os.path.join(bl.HERE, 'results'), 'transcode_ladder-callgrind', record)}")
        return
    src_frames = frames(src)
    for mode in modes:
        realtime = mode == "re"
        # Killed if it takes longer than this: 20x slower than real time is not a result.
        limit = 20 * media + 120
        for tool, label in tools():
            outdir = os.path.join(args.work, f"{tool}-{mode}")
            os.makedirs(outdir, exist_ok=True)
            log = os.path.join(args.work, f"{tool}-{mode}.log")
            wall, cpu, rss, rc = timed(tool_argv(tool, args, src, outdir, realtime), log, limit)
            if rc != 0:
                raise SystemExit(f"{tool} ({mode}) exited {rc}: {bl.tail(log)}")
            run = {"tool": tool, "mode": mode, "wall": wall, "cpu": cpu, "cpu_per_media_s": cpu / media,
                   "speed": media / wall, "peak_rss_mb": rss, "psnr": {}, "bytes": {}}
            for name, w, h, *_ in RUNGS:
                path = os.path.join(outdir, f"{name}.mp4")
                value, compared = psnr(path, src, w, h, os.path.join(args.work, f"psnr-{tool}-{mode}-{name}.log"))
                run["psnr"][name] = value or 0
                run.setdefault("compared", {})[name] = compared
                run["bytes"][name] = os.path.getsize(path)
                run.setdefault("frames", {})[name] = frames(path)
                if run["frames"][name] != src_frames or compared != src_frames:
                    bl.log("transcode", f"WARNING: {tool} {name}: {run['frames'][name]} frames, {compared} compared, "
                                        f"source {src_frames}: the pairing is not frame-exact")
            record["runs"].append(run)
            bl.log("transcode", f"{label:26s} {mode:4s} cpu/media-s {run['cpu_per_media_s']:.3f}  speed "
                                f"{run['speed']:.2f}x  peak RSS {rss:.0f} MB  PSNR " +
                   " ".join(f"{n} {run['psnr'][n]:.2f} dB ({run['bytes'][n] * 8 / media / 1000:.0f} kb/s, "
                            f"{run['frames'][n]} frames)"
                            for n, *_ in RUNGS))
    record["load_after"] = os.getloadavg()
    print()
    for v in variants():
        print(f"ffmpeg {v}: {VARIANTS[v]}")
    print(f"\n{'tool':26s} {'mode':4s} {'CPU s/media s':>13s} {'speed':>7s} {'peak RSS MB':>11s}  " +
          "  ".join(f"{'PSNR ' + n:>11s}" for n, *_ in RUNGS))
    labels = dict(tools())
    for r in record["runs"]:
        print(f"{labels[r['tool']]:26s} {r['mode']:4s} {r['cpu_per_media_s']:13.3f} {r['speed']:6.2f}x "
              f"{r['peak_rss_mb']:11.0f}  " + "  ".join(f"{r['psnr'][n]:8.2f} dB" for n, *_ in RUNGS))
    for mode in modes:
        for sft, sfl in (t for t in tools() if t[0].startswith("streamflex")):
            sf = next(r for r in record["runs"] if r["tool"] == sft and r["mode"] == mode)
            for tool, label in (t for t in tools() if t[0].startswith("ffmpeg")):
                ff = next(r for r in record["runs"] if r["tool"] == tool and r["mode"] == mode)
                ratio = sf["cpu"] / ff["cpu"]
                dpsnr = {n: sf["psnr"][n] - ff["psnr"][n] for n, *_ in RUNGS}
                equal = all(abs(d) <= 0.1 for d in dpsnr.values())
                record.setdefault("ratios", {}).setdefault(mode, {})[f"{sft}/{tool}"] = {
                    "cpu": ratio, "psnr_delta_db": dpsnr, "psnr_equal": equal}
                print(f"{mode}: {sfl} CPU = {ratio:.2f} x {label}'s; PSNR {sfl} - {label}: " +
                      ", ".join(f"{n} {d:+.2f} dB" for n, d in dpsnr.items()) +
                      f" ({'equal' if equal else 'NOT equal'} within 0.1 dB per rung)")
            direct = record["ratios"][mode].get(f"{sft}/ffmpeg-direct")
            if direct is None:
                print(f"{mode}: goal verdict for {sfl}: none (the issue's command, FFMPEG_SCALE=direct, was not run)")
                continue
            met = direct["cpu"] <= 0.9 and direct["psnr_equal"]
            why = []
            if direct["cpu"] > 0.9:
                why.append(f"CPU {direct['cpu']:.3f} x > 0.9 x")
            if not direct["psnr_equal"]:
                worst = max(direct["psnr_delta_db"].items(), key=lambda kv: abs(kv[1]))
                why.append(f"quality not equal ({worst[0]} {worst[1]:+.2f} dB)")
            direct["goal_met"] = met
            print(f"{mode}: goal for {sfl} (issue 4: at most 0.9 x the CPU of the issue's ffmpeg command at PSNR "
                  f"within 0.1 dB on every rung): {'MET' if met else 'NOT met: ' + '; '.join(why)}")
    print(f"load average before {load[0]:.2f}, after {record['load_after'][0]:.2f} ({os.cpu_count()} cores): "
          "CPU seconds on a busy machine are noisy; MODES=callgrind counts instructions")
    path = bl.write_json(os.path.join(bl.HERE, "results"), "transcode_ladder", record)
    print(f"results: {path}")


if __name__ == "__main__":
    main()
