#!/usr/bin/env bash
# LL-HLS viewers per edge core: steps the number of simulated LL-HLS viewers (`streamflex loadgen`,
# core 1) against the StreamFlex edge (one I/O thread) and against nginx proxy_cache (one worker),
# each pinned to core 0 and in front of the same live origin (`streamflex all`, fed by ffmpeg
# looping a pre-encoded clip, on core 1), until part delivery p99 exceeds P99_LIMIT_MS or errors
# appear. Prints the table, the largest N for each, and the memory per viewer connection
# ((peak RSS - idle RSS) / N). See bench/README.md. Not a test.
#
# Environment:
#   N_LIST="100 250 500 1000 2000 4000 8000"   DURATION=20 (s per step)   RAMP=5 (s)   P99_LIMIT_MS=100
#   SERVERS="streamflex nginx"         STREAMFLEX_BIN=build/app/streamflex
#   SOURCE=<flv>  (default: the cached 20 s 3 Mbit/s 1 s-GOP clip of part_latency.sh)
#   SERVER_CORE=0 CLIENT_CORE=1        KEEP_TMP=1 keeps the temporary directory
set -euo pipefail

NAME=edge_viewers_per_core
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
cd "$ROOT"
. "$HERE/lib.sh"

N_LIST="${N_LIST:-100 250 500 1000 2000 4000 8000}"
DURATION="${DURATION:-20}"
RAMP="${RAMP:-5}"
P99_LIMIT_MS="${P99_LIMIT_MS:-100}"
SERVERS="${SERVERS:-streamflex nginx}"
STREAMFLEX_BIN="${STREAMFLEX_BIN:-build/app/streamflex}"
SERVER_CORE="${SERVER_CORE:-0}"
CLIENT_CORE="${CLIENT_CORE:-1}"
RESULTS="$HERE/results"
PY=/usr/bin/python3

for tool in ffmpeg taskset timeout "$PY"; do command -v "$tool" >/dev/null || bench_die "$tool not found"; done
command -v nginx >/dev/null || bench_die "nginx not found (apt-get install nginx)"
[[ "$DURATION" =~ ^[0-9]+$ && "$DURATION" -ge 5 && "$DURATION" -le 120 ]] || bench_die "DURATION must be 5..120 s"
[[ "$RAMP" =~ ^[0-9]+$ && "$RAMP" -lt "$DURATION" ]] || bench_die "RAMP must be whole seconds below DURATION"
[[ "$P99_LIMIT_MS" =~ ^[0-9]+$ ]] || bench_die "P99_LIMIT_MS must be whole milliseconds"
bench_check_binary
"$STREAMFLEX_BIN" loadgen --help >/dev/null 2>&1 || bench_die "$STREAMFLEX_BIN has no loadgen subcommand"
for s in $SERVERS; do [[ "$s" == streamflex || "$s" == nginx ]] || bench_die "SERVERS: streamflex and/or nginx"; done

# One descriptor per viewer in the load generator and in the proxy; the hard limit here is 20000.
bench_viewer_steps  # sets steps

bench_init
bench_copy_binary

# Same source as part_latency.sh (shared cache file): 1280x720 30 fps H.264 (1 s GOP, no
# B-frames) + AAC, 20 s, ~3 Mbit/s; looped by the publisher.
SRC="${SOURCE:-$RESULTS/part-latency-src-1280x720p30-g30-20s.flv}"
if [ ! -s "$SRC" ]; then
  [ -n "${SOURCE:-}" ] && bench_die "SOURCE=$SRC not found"
  echo "$NAME: encoding the 20 s source once -> $SRC" >&2
  timeout 300 nice -n 10 ffmpeg -hide_banner -nostdin -loglevel error -y \
    -f lavfi -i "testsrc2=size=1280x720:rate=30" -f lavfi -i "sine=frequency=1000:sample_rate=48000" \
    -t 20 -vf "noise=alls=8:allf=t" -c:v libx264 -preset veryfast -tune zerolatency -b:v 3M -maxrate 3M \
    -bufsize 3M -g 30 -keyint_min 30 -sc_threshold 0 -pix_fmt yuv420p \
    -c:a aac -b:a 128k -ar 48000 -ac 2 -f flv "$WORK/src.flv"
  mv "$WORK/src.flv" "$SRC"
fi

budget=$(( steps * $(echo $SERVERS | wc -w) * (DURATION + 40) + 120 ))
bench_run_helper "$budget" taskset -c "$CLIENT_CORE" "$PY" "$HERE/edge_viewers_per_core.py" \
  --workdir "$WORK" --results "$RESULTS" --streamflex-bin "$STREAMFLEX_BIN" --source "$SRC" \
  --n-list "$N_LIST" --duration "$DURATION" --ramp "$RAMP" --p99-limit-ms "$P99_LIMIT_MS" --servers "$SERVERS" \
  --server-core "$SERVER_CORE" --client-core "$CLIENT_CORE"
