#!/usr/bin/env bash
# LL-HLS part latency: from the RTMP message that completes a part to the first byte of the answer
# to a waiting blocking playlist reload, StreamFlex; nginx-rtmp's HLS measured the analogous way
# (its playlist polled every POLL_MS) in the same run. Prints p50/p95/p99/max, the client's own
# timing floor and the ratio. Goal: StreamFlex p99 <= 5 ms. See bench/README.md. Not a test.
#
# Environment:
#   DURATION=60        measured seconds per server (after WARMUP)      WARMUP=4
#   FLOOR_SECONDS=10   seconds of the client-floor measurement          POLL_MS=10 (nginx poll period)
#   SERVERS="streamflex nginx"   STREAMFLEX_BIN=build/app/streamflex    SOURCE=<flv> (default: cached)
#   PART_MS=500 SEGMENT_MS=2000  SERVER_CORE=0 CLIENT_CORE=1            KEEP_TMP=1 keeps the temp dir
set -euo pipefail

NAME=part_latency
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
cd "$ROOT"
. "$HERE/lib.sh"

DURATION="${DURATION:-60}"
WARMUP="${WARMUP:-4}"
FLOOR_SECONDS="${FLOOR_SECONDS:-10}"
POLL_MS="${POLL_MS:-10}"
SERVERS="${SERVERS:-streamflex nginx}"
STREAMFLEX_BIN="${STREAMFLEX_BIN:-build/app/streamflex}"
PART_MS="${PART_MS:-500}"
SEGMENT_MS="${SEGMENT_MS:-2000}"
SERVER_CORE="${SERVER_CORE:-0}"
CLIENT_CORE="${CLIENT_CORE:-1}"
RESULTS="$HERE/results"
PY=/usr/bin/python3

for tool in ffmpeg taskset timeout "$PY"; do command -v "$tool" >/dev/null || bench_die "$tool not found"; done
for v in DURATION WARMUP FLOOR_SECONDS POLL_MS; do
  [[ "${!v}" =~ ^[0-9]+([.][0-9]+)?$ ]] || bench_die "$v must be a number"
done
case " $SERVERS " in *" nginx "*) bench_check_nginx ;; esac
case " $SERVERS " in *" streamflex "*) bench_check_binary ;; esac

bench_init
case " $SERVERS " in *" streamflex "*) bench_copy_binary ;; esac

# Source: 1280x720 30 fps H.264 (keyframe every second, no B-frames) + AAC 48 kHz, 20 s, encoded
# once and cached; the client loops it with continuous timestamps.
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

d=${DURATION%.*}; w=${WARMUP%.*}; f=${FLOOR_SECONDS%.*}
budget=$(( 2 * (d + w + 40) + f + 60 ))
bench_run_helper "$budget" taskset -c "$CLIENT_CORE" "$PY" "$HERE/part_latency.py" \
  --workdir "$WORK" --results "$RESULTS" --source "$SRC" --streamflex-bin "$STREAMFLEX_BIN" \
  --servers "$SERVERS" --duration "$DURATION" --warmup "$WARMUP" --floor-seconds "$FLOOR_SECONDS" \
  --poll-ms "$POLL_MS" --part-ms "$PART_MS" --segment-ms "$SEGMENT_MS" --server-core "$SERVER_CORE"
