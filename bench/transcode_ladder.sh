#!/usr/bin/env bash
# Transcoding benchmark: one pre-encoded 1920x1080@30 input to 720p/480p/360p with x264 veryfast at
# the same bit rates and keyframe interval, by StreamFlex (`streamflex transcode --input`) and by
# the ffmpeg command line (split + scale, three libx264 outputs), in the same run, as fast as
# possible and with -re. Prints CPU seconds per media second, speed, peak RSS, PSNR per rung and
# the ratios, and the goal verdict against the issue's command (ffmpeg direct). See
# bench/README.md. Not a test.
#
# Environment:
#   DURATION=30        seconds of input (a synthetic clip, cached)   SOURCE=<file.flv> instead
#   MODES="fast re"    as fast as possible, and/or real time          STREAMFLEX_BIN=build/app/streamflex
#   MODES=callgrind    instead: the tools under valgrind callgrind, instructions per library
#                      (DURATION defaults to 3 here; each run killed after CALLGRIND_TIMEOUT s)
#   MODES=scalers      instead: libswscale instructions per picture for each rung from each possible
#                      scaling source (callgrind), and the cascaded pictures' PSNR against direct ones
#   FFMPEG_SCALE=both  direct (the issue's command: split=3, each rung scaled from the source),
#                      cascade (StreamFlex's cascaded scaling mirrored), or both (default)
#   SF_SCALE=direct    StreamFlex scaling every rung from the source (--transcode.cascade=false, its
#                      default), cascade (--transcode.cascade=true), or both
#   SF_SCALER=zimg     StreamFlex's scaling library (--transcode.scaler): zimg (its default), swscale,
#                      or both; every StreamFlex row names its scaler and scaling source
#   FFMPEG_DECODE_THREADS=1 gives ffmpeg's decoder one thread (default: its own, frame threads)
#   KEEP_TMP=1 keeps the temporary directory (the outputs)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
cd "$ROOT"
STREAMFLEX_BIN="${STREAMFLEX_BIN:-build/app/streamflex}"
PY=/usr/bin/python3

for tool in ffmpeg ffprobe "$PY"; do
  command -v "$tool" >/dev/null || { echo "transcode_ladder: $tool not found" >&2; exit 1; }
done
[ -x "$STREAMFLEX_BIN" ] || { echo "transcode_ladder: $STREAMFLEX_BIN not found: run 'make build'" >&2; exit 1; }
if ldd "$STREAMFLEX_BIN" 2>/dev/null | grep -q libasan; then
  echo "transcode_ladder: WARNING: $STREAMFLEX_BIN is built with AddressSanitizer; CPU figures are meaningless" >&2
fi
WORK="$(mktemp -d "${TMPDIR:-/tmp}/sf-bench-transcode.XXXXXX")"
cleanup() { [ "${KEEP_TMP:-0}" = 1 ] && echo "kept $WORK" || rm -rf "$WORK"; }
trap cleanup EXIT
"$PY" "$HERE/transcode_ladder.py" --bin "$(cd "$(dirname "$STREAMFLEX_BIN")" && pwd)/$(basename "$STREAMFLEX_BIN")" \
  --work "$WORK" "$@"
