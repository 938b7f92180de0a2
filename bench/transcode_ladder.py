"""Transcoding benchmark: the same pre-encoded 1080p30 input transcoded to 720p/480p/360p (x264
veryfast, the same bit rates, VBV and keyframe interval) by StreamFlex (`streamflex transcode
--input`) and by the ffmpeg command line (one decode, split + scale filters, three libx264
outputs), in the same run, as fast as possible and with -re. Prints CPU seconds per media second,
speed, peak RSS and PSNR per rung against the source scaled by swscale (bicubic), and the ratios.

Both sides are configured the same: x264 veryfast, tune zerolatency plus the same x264 parameters
(no B-frames, no scene cut, no lookahead, rate control on real timestamps), the same bit rates and
VBV, IDR every 2 s, one encoder thread per rung; the same scaling (bicubic swscale, cascaded 1080p
-> 720p -> 480p -> 360p as StreamFlex does by default). PSNR pairs each output frame with the source
frame it came from (every frame is kept on both sides; checked) against one reference per rung
(the source scaled straight to the rung's size), so the two tools' figures are comparable.
Standard library only; see bench/README.md.
"""
import argparse
import json
import os
import re
import subprocess
import sys
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


def timed(argv, log):
    """Runs argv to completion; (wall s, CPU s of it and its children, peak RSS MB, exit code)."""
    t0 = time.monotonic()
    with open(log, "wb") as out:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        _, status, ru = os.wait4(p.pid, 0)
    wall = time.monotonic() - t0
    return wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024, os.waitstatus_to_exitcode(status)


# x264 exactly as StreamFlex's encoder.cpp sets it for a rung (tune zerolatency, then these), one
# thread per encoder on both sides (no sliced threads: they cost quality and CPU).
X264_PARAMS = "scenecut=0:keyint=infinite:rc-lookahead=0:sync-lookahead=0:bframes=0:force-cfr=0"


# ffmpeg's decoder threads: its default (auto: frame threads, one per core) unless
# FFMPEG_DECODE_THREADS says (1: one thread, as StreamFlex decodes).
FFMPEG_DECODE_THREADS = os.environ.get("FFMPEG_DECODE_THREADS", "")


def ffmpeg_argv(src, outdir, realtime):
    # The same scaling as StreamFlex's default (transcode.cascade): bicubic swscale, each rung from
    # the next larger rung's picture (720p from the source, 480p from 720p, 360p from 480p).
    parts, prev = [], "[0:v]"
    for i, (_, w, h, *_r) in enumerate(RUNGS):
        last = i == len(RUNGS) - 1
        parts.append(f"{prev}scale={w}:{h}:flags=bicubic" + (f"[o{i}]" if last else f",split=2[o{i}][c{i}]"))
        prev = f"[c{i}]"
    filt = ";".join(parts)
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


def callgrind_run(args, src, media):
    """MODES=callgrind: both tools under valgrind's callgrind (instruction counts repeat on a busy
    machine, unlike CPU seconds); prints instructions per library for each and the ratio. Slow
    (about 25 s of valgrind per second of input for each tool): use a short clip, DURATION=3."""
    counts = {}
    for tool in ("streamflex", "ffmpeg"):
        outdir = os.path.join(args.work, f"{tool}-callgrind")
        os.makedirs(outdir, exist_ok=True)
        argv = streamflex_argv(args.bin, src, outdir, False) if tool == "streamflex" else ffmpeg_argv(src, outdir, False)
        cg = os.path.join(args.work, f"callgrind.{tool}")
        wall, _, _, rc = timed(["valgrind", "--tool=callgrind", f"--callgrind-out-file={cg}"] + argv,
                               os.path.join(args.work, f"{tool}-callgrind.log"))
        if rc != 0:
            raise SystemExit(f"{tool} (callgrind) exited {rc}: {bl.tail(os.path.join(args.work, f'{tool}-callgrind.log'))}")
        counts[tool] = callgrind_objects(cg)
        bl.log("transcode", f"{tool} under callgrind: {sum(counts[tool].values()) / 1e9:.3f} G instructions, {wall:.0f} s")
    sf, ff = counts["streamflex"], counts["ffmpeg"]
    objs = sorted(set(sf) | set(ff), key=lambda o: -max(sf.get(o, 0), ff.get(o, 0)))
    print(f"\n{'instructions (G)':24s} {'StreamFlex':>10s} {'ffmpeg':>10s}   per media s: {media:.2f} s of input")
    rest_sf = rest_ff = 0
    for o in objs:
        a, b = sf.get(o, 0), ff.get(o, 0)
        if max(a, b) < 0.005 * sum(ff.values()):
            rest_sf, rest_ff = rest_sf + a, rest_ff + b
            continue
        print(f"{o:24s} {a / 1e9:10.3f} {b / 1e9:10.3f}")
    print(f"{'(everything else)':24s} {rest_sf / 1e9:10.3f} {rest_ff / 1e9:10.3f}")
    tsf, tff = sum(sf.values()), sum(ff.values())
    print(f"{'total':24s} {tsf / 1e9:10.3f} {tff / 1e9:10.3f}   StreamFlex = {tsf / tff:.3f} x ffmpeg's instructions")
    return {"instructions": {"streamflex": sf, "ffmpeg": ff}, "ratio": tsf / tff}


def streamflex_argv(binary, src, outdir, realtime):
    return [binary, "transcode", "--input", src, "--output-dir", outdir, f"--transcode.profiles={profile_arg()}",
            "--transcode.profile=bench", "--log.level=warn"] + (["--re"] if realtime else [])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(bl.ROOT, "build", "app", "streamflex"))
    ap.add_argument("--seconds", type=int, default=int(os.environ.get("DURATION", "30")))
    ap.add_argument("--source", default=os.environ.get("SOURCE", ""))
    ap.add_argument("--work", required=True)
    ap.add_argument("--modes", default=os.environ.get("MODES", "fast re"))
    args = ap.parse_args()
    cache = os.path.join(os.environ.get("TMPDIR", "/tmp"), "streamflex-bench-clips")
    os.makedirs(cache, exist_ok=True)
    src = args.source or make_source(os.path.join(cache, f"ladder-1080p30-{args.seconds}s.flv"), args.seconds)
    media = float(subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                                  "format=duration", "-of", "csv=p=0", src], capture_output=True, text=True).stdout)
    load = os.getloadavg()
    bl.log("transcode", f"input {src} ({media:.1f} s of 1920x1080@30), load average {load[0]:.2f} {load[1]:.2f}, "
                        f"{os.cpu_count()} cores")
    record = {"input": src, "media_seconds": media, "ffmpeg_decode_threads": FFMPEG_DECODE_THREADS or "auto", "load_before": load, "cores": os.cpu_count(),
              "binary": bl.binary_info(args.bin), "runs": []}
    if "callgrind" in args.modes.split():
        record["callgrind"] = callgrind_run(args, src, media)
        record["load_after"] = os.getloadavg()
        print(f"results: {bl.write_json(os.path.join(bl.HERE, 'results'), 'transcode_ladder-callgrind', record)}")
        return
    for mode in args.modes.split():
        realtime = mode == "re"
        for tool in ("streamflex", "ffmpeg"):
            outdir = os.path.join(args.work, f"{tool}-{mode}")
            os.makedirs(outdir, exist_ok=True)
            if tool == "streamflex":
                argv = streamflex_argv(args.bin, src, outdir, realtime)
            else:
                argv = ffmpeg_argv(src, outdir, realtime)
            wall, cpu, rss, rc = timed(argv, os.path.join(args.work, f"{tool}-{mode}.log"))
            if rc != 0:
                raise SystemExit(f"{tool} ({mode}) exited {rc}: {bl.tail(os.path.join(args.work, f'{tool}-{mode}.log'))}")
            run = {"tool": tool, "mode": mode, "wall": wall, "cpu": cpu, "cpu_per_media_s": cpu / media,
                   "speed": media / wall, "peak_rss_mb": rss, "psnr": {}, "bytes": {}}
            src_frames = frames(src)
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
            bl.log("transcode", f"{tool:10s} {mode:4s} cpu/media-s {run['cpu_per_media_s']:.3f}  speed "
                                f"{run['speed']:.2f}x  peak RSS {rss:.0f} MB  PSNR " +
                   " ".join(f"{n} {run['psnr'][n]:.2f} dB ({run['bytes'][n] * 8 / media / 1000:.0f} kb/s, "
                            f"{run['frames'][n]} frames)"
                            for n, *_ in RUNGS))
    record["load_after"] = os.getloadavg()
    print()
    print(f"{'tool':10s} {'mode':4s} {'CPU s/media s':>13s} {'speed':>7s} {'peak RSS MB':>11s}  " +
          "  ".join(f"{'PSNR ' + n:>11s}" for n, *_ in RUNGS))
    for r in record["runs"]:
        print(f"{r['tool']:10s} {r['mode']:4s} {r['cpu_per_media_s']:13.3f} {r['speed']:6.2f}x {r['peak_rss_mb']:11.0f}  " +
              "  ".join(f"{r['psnr'][n]:8.2f} dB" for n, *_ in RUNGS))
    for mode in args.modes.split():
        sf = next(r for r in record["runs"] if r["tool"] == "streamflex" and r["mode"] == mode)
        ff = next(r for r in record["runs"] if r["tool"] == "ffmpeg" and r["mode"] == mode)
        ratio = sf["cpu"] / ff["cpu"]
        dpsnr = {n: sf["psnr"][n] - ff["psnr"][n] for n, *_ in RUNGS}
        record.setdefault("ratios", {})[mode] = {"cpu": ratio, "psnr_delta_db": dpsnr}
        print(f"{mode}: StreamFlex CPU = {ratio:.2f} x ffmpeg's (goal <= 0.9); PSNR StreamFlex - ffmpeg: " +
              ", ".join(f"{n} {d:+.2f} dB" for n, d in dpsnr.items()) + " (goal within 0.1 dB)")
    print(f"load average before {load[0]:.2f}, after {record['load_after'][0]:.2f} ({os.cpu_count()} cores)")
    path = bl.write_json(os.path.join(bl.HERE, "results"), "transcode_ladder", record)
    print(f"results: {path}")


if __name__ == "__main__":
    main()
