"""Transcoding benchmark: the same pre-encoded 1080p30 input transcoded to 720p/480p/360p (x264
veryfast, the same bit rates, VBV and keyframe interval) by StreamFlex (`streamflex transcode
--input`) and by the ffmpeg command line (one decode, split + scale filters, three libx264
outputs), in the same run, as fast as possible and with -re. Prints CPU seconds per media second,
speed, peak RSS and PSNR per rung against the source scaled by ffmpeg (bicubic), and the ratios.

Both sides get the same x264 settings (tune zerolatency, no B-frames, no scene cut, keyframes
every 2 s); ffmpeg uses its default threading for libx264, StreamFlex one thread per rung.
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


def ffmpeg_argv(src, outdir, realtime):
    filt = f"[0:v]split={len(RUNGS)}" + "".join(f"[s{i}]" for i in range(len(RUNGS))) + ";" + ";".join(
        f"[s{i}]scale={w}:{h}[o{i}]" for i, (_, w, h, *_r) in enumerate(RUNGS))
    argv = ["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-y"] + (["-re"] if realtime else []) + [
        "-i", src, "-filter_complex", filt]
    for i, (name, w, h, k, prof, level) in enumerate(RUNGS):
        argv += ["-map", f"[o{i}]", "-c:v", "libx264", "-preset", PRESET, "-tune", "zerolatency",
                 "-profile:v", prof, "-level", level, "-b:v", f"{k}k", "-maxrate", f"{int(k * 1.1)}k",
                 "-bufsize", f"{int(k * 1.1)}k", "-bf", "0", "-g", "100000", "-sc_threshold", "0",
                 "-force_key_frames", f"expr:gte(t,n_forced*{GOP_SECONDS})", "-x264-params",
                 "rc-lookahead=0:sync-lookahead=0", "-fps_mode", "passthrough", "-an",
                 os.path.join(outdir, f"{name}.mp4")]
    return argv


def frames(path):
    p = subprocess.run(["ffprobe", "-v", "error", "-count_packets", "-select_streams", "v:0", "-show_entries",
                        "stream=nb_read_packets", "-of", "csv=p=0", path], capture_output=True, text=True, timeout=120)
    return int(p.stdout.strip() or 0)


def psnr_pts(out, src, w, h):
    """Average PSNR with frames paired by presentation time (from each stream's first frame)."""
    p = subprocess.run(["ffmpeg", "-hide_banner", "-nostdin", "-i", out, "-i", src, "-lavfi",
                        f"[1:v]scale={w}:{h}:flags=bicubic,setpts=PTS-STARTPTS[ref];[0:v]setpts=PTS-STARTPTS[d];"
                        "[d][ref]psnr", "-f", "null", "-"], capture_output=True, text=True, timeout=600)
    m = re.search(r"PSNR y:[\d.inf]+ u:[\d.inf]+ v:[\d.inf]+ average:([\d.inf]+)", p.stderr)
    return float(m.group(1)) if m else None


def psnr(out, src, w, h, shift=0, frames_limit=None):
    """Average PSNR of `out` against the source scaled to w x h (bicubic), frames paired in order
    after dropping `shift` frames from the output (shift > 0) or from the source (shift < 0)."""
    lim = f",trim=end_frame={frames_limit}" if frames_limit else ""
    d = f"trim=start_frame={shift}," if shift > 0 else ""
    r = f"trim=start_frame={-shift}," if shift < 0 else ""
    p = subprocess.run(["ffmpeg", "-hide_banner", "-nostdin", "-i", out, "-i", src, "-lavfi",
                        f"[1:v]{r}scale={w}:{h}:flags=bicubic,setpts=N/30/TB{lim}[ref];[0:v]{d}setpts=N/30/TB{lim}[d];"
                        "[d][ref]psnr", "-f", "null", "-"], capture_output=True, text=True, timeout=600)
    m = re.search(r"PSNR y:[\d.inf]+ u:[\d.inf]+ v:[\d.inf]+ average:([\d.inf]+)", p.stderr)
    return float(m.group(1)) if m else None


def alignment(out, src, w, h):
    """The frame shift (-2..2) at which the output best matches the source: the two tools may start
    or time the first frames differently; quality is compared at the right pairing."""
    scores = {k: psnr(out, src, w, h, k, frames_limit=45) or 0 for k in range(-2, 3)}
    return max(scores, key=scores.get)


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
    record = {"input": src, "media_seconds": media, "load_before": load, "cores": os.cpu_count(),
              "binary": bl.binary_info(args.bin), "runs": []}
    for mode in args.modes.split():
        realtime = mode == "re"
        for tool in ("streamflex", "ffmpeg"):
            outdir = os.path.join(args.work, f"{tool}-{mode}")
            os.makedirs(outdir, exist_ok=True)
            if tool == "streamflex":
                argv = [args.bin, "transcode", "--input", src, "--output-dir", outdir, f"--transcode.profiles={profile_arg()}",
                        "--transcode.profile=bench", "--log.level=warn"] + (["--re"] if realtime else [])
            else:
                argv = ffmpeg_argv(src, outdir, realtime)
            wall, cpu, rss, rc = timed(argv, os.path.join(args.work, f"{tool}-{mode}.log"))
            if rc != 0:
                raise SystemExit(f"{tool} ({mode}) exited {rc}: {bl.tail(os.path.join(args.work, f'{tool}-{mode}.log'))}")
            run = {"tool": tool, "mode": mode, "wall": wall, "cpu": cpu, "cpu_per_media_s": cpu / media,
                   "speed": media / wall, "peak_rss_mb": rss, "psnr": {}, "bytes": {}}
            # Frames are paired with the source two ways, by order (at the best shift) and by time;
            # a wrong pairing only lowers PSNR, so the higher of the two is the tool's quality.
            name0, w0, h0, *_ = RUNGS[0]
            shift = alignment(os.path.join(outdir, f"{name0}.mp4"), src, w0, h0)
            run["frame_shift"] = shift
            run["pairing"] = {}
            for name, w, h, *_ in RUNGS:
                path = os.path.join(outdir, f"{name}.mp4")
                by_order, by_time = psnr(path, src, w, h, shift), psnr_pts(path, src, w, h)
                run["psnr"][name] = max(by_order or 0, by_time or 0)
                run["pairing"][name] = {"order": by_order, "time": by_time}
                run["bytes"][name] = os.path.getsize(path)
                run.setdefault("frames", {})[name] = frames(path)
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
