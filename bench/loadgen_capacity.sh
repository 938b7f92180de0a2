#!/usr/bin/env bash
# Load generator capacity: how many simulated LL-HLS viewers `streamflex loadgen --threads 1`
# sustains on one core, and how much of that core it uses. The viewers watch a live low-bitrate
# stream through a StreamFlex edge (`streamflex all --io.threads=1`, its edge in front of its
# origin), which runs on SERVER_CORE with the publisher; the load generator alone on CLIENT_CORE.
# Goal (issue 6): one core drives >= 10,000 LL-HLS viewers. See bench/README.md. Not a test.
#
# Environment:
#   N_LIST="10000"  viewer counts, one run each     DURATION=30   RAMP=10 (seconds)
#   LOADGEN_ARGS=""   extra loadgen options (e.g. "--skip" for delta updates)
#   STREAMFLEX_BIN=build/app/streamflex             SERVER_CORE=0 CLIENT_CORE=1
#   SOURCE=<flv>  low-bitrate source (default: encoded once and cached in bench/results/)
#   KEEP_TMP=1 keeps the temporary directory
set -euo pipefail

NAME=loadgen_capacity
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
cd "$ROOT"
. "$HERE/lib.sh"

N_LIST="${N_LIST:-10000}"
DURATION="${DURATION:-30}"
RAMP="${RAMP:-10}"
LOADGEN_ARGS="${LOADGEN_ARGS:-}"
STREAMFLEX_BIN="${STREAMFLEX_BIN:-build/app/streamflex}"
SERVER_CORE="${SERVER_CORE:-0}"
CLIENT_CORE="${CLIENT_CORE:-1}"
RESULTS="$HERE/results"
PY=/usr/bin/python3

for tool in ffmpeg taskset timeout "$PY"; do command -v "$tool" >/dev/null || bench_die "$tool not found"; done
[[ "$DURATION" =~ ^[0-9]+$ && "$DURATION" -ge 10 && "$DURATION" -le 300 ]] || bench_die "DURATION must be 10..300 s"
[[ "$RAMP" =~ ^[0-9]+$ && "$RAMP" -lt "$DURATION" ]] || bench_die "RAMP must be whole seconds below DURATION"
bench_check_binary

# One descriptor per viewer on each side (load generator and edge), in separate processes.
bench_viewer_steps  # sets steps

bench_init
bench_copy_binary

# ~130 kbit/s: 426x240 15 fps, keyframe every second, no audio; 20 s, encoded once and cached.
# A 0.5 s part is ~8 KB, so 10,000 viewers move ~160 MB/s: the load generator's own work per
# request shows, not the kernel's copying.
SRC="${SOURCE:-$RESULTS/loadgen-src-426x240p15-120k-g15-20s.flv}"
if [ ! -s "$SRC" ]; then
  [ -n "${SOURCE:-}" ] && bench_die "SOURCE=$SRC not found"
  echo "$NAME: encoding the 20 s low-bitrate source once -> $SRC" >&2
  timeout 300 nice -n 10 ffmpeg -hide_banner -nostdin -loglevel error -y \
    -f lavfi -i "testsrc2=size=426x240:rate=15" -t 20 -c:v libx264 -preset veryfast -tune zerolatency \
    -b:v 120k -maxrate 120k -bufsize 120k -g 15 -keyint_min 15 -sc_threshold 0 -pix_fmt yuv420p -an \
    -f flv "$WORK/src.flv"
  mv "$WORK/src.flv" "$SRC"
fi

budget=$(( steps * (DURATION + 60) + 120 ))
bench_run_helper "$budget" taskset -c "$CLIENT_CORE" "$PY" "$HERE/loadgen_capacity.py" \
  --workdir "$WORK" --results "$RESULTS" --streamflex-bin "$STREAMFLEX_BIN" --source "$SRC" \
  --n-list "$N_LIST" --duration "$DURATION" --ramp "$RAMP" --loadgen-args "$LOADGEN_ARGS" \
  --server-core "$SERVER_CORE" --client-core "$CLIENT_CORE"
