#!/usr/bin/env bash
# RTMP ingest benchmark: N concurrent `ffmpeg -re -c copy` publishers of a pre-encoded ~6 Mbit/s
# file against StreamFlex `ingest` and nginx with Debian's RTMP module, in the same run.
# Prints CPU seconds per stream-minute and resident memory per stream for both, and the ratio.
# See bench/README.md. Not a test; `make bench-ingest` runs it.
#
# Environment:
#   N_LIST="1 10 25 50"   publisher counts          DURATION=30   measured window, seconds
#   WARMUP=3              seconds after all publishers send media before the window opens
#   SERVERS="streamflex nginx"                      STREAMFLEX_BIN=build/app/streamflex
#   SERVER_CORE=0 CLIENT_CORE=1                     KEEP_TMP=1 keeps the temporary directory
#   SOURCE=<file>         use this file instead of the cached synthetic one
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
cd "$ROOT"

N_LIST="${N_LIST:-1 10 25 50}"
DURATION="${DURATION:-30}"
WARMUP="${WARMUP:-3}"
SERVERS="${SERVERS:-streamflex streamflex-batch nginx}"
STREAMFLEX_BIN="${STREAMFLEX_BIN:-build/app/streamflex}"
SERVER_CORE="${SERVER_CORE:-0}"
CLIENT_CORE="${CLIENT_CORE:-1}"
RESULTS="$HERE/results"
PY=/usr/bin/python3

die() { echo "ingest_publishers: $*" >&2; exit 1; }

for tool in ffmpeg ffprobe taskset ss "$PY"; do
  command -v "$tool" >/dev/null || die "$tool not found"
done
case " $SERVERS " in
  *" nginx "*)
    command -v nginx >/dev/null || die "nginx not found (apt-get install nginx libnginx-mod-rtmp)"
    [ -f /usr/lib/nginx/modules/ngx_rtmp_module.so ] || die "libnginx-mod-rtmp not installed" ;;
esac
case " $SERVERS " in
  *" streamflex "*)
    [ -x "$STREAMFLEX_BIN" ] || die "$STREAMFLEX_BIN not found: run 'make build' (or set STREAMFLEX_BIN)"
    STREAMFLEX_BIN="$(cd "$(dirname "$STREAMFLEX_BIN")" && pwd)/$(basename "$STREAMFLEX_BIN")"
    if ldd "$STREAMFLEX_BIN" 2>/dev/null | grep -q 'libasan'; then
      echo "ingest_publishers: WARNING: $STREAMFLEX_BIN is built with AddressSanitizer; CPU figures are meaningless" >&2
    fi ;;
esac
[ "$(nproc)" -ge 2 ] || echo "ingest_publishers: WARNING: fewer than 2 cores; server and publishers share a core" >&2

max_n=0
for n in $N_LIST; do
  [[ "$n" =~ ^[0-9]+$ && "$n" -ge 1 ]] || die "N_LIST must hold positive integers: '$N_LIST'"
  [ "$n" -gt "$max_n" ] && max_n=$n
done
[[ "$DURATION" =~ ^[0-9]+([.][0-9]+)?$ ]] || die "DURATION must be a number of seconds"
# Each publisher holds one socket and a few files; the helper and servers need a few more.
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((max_n * 4 + 256)) ]; then
  ulimit -n $((max_n * 4 + 256)) 2>/dev/null || die "ulimit -n too low for N=$max_n"
fi

mkdir -p "$RESULTS"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/sf-bench-ingest.XXXXXX")"
: >"$WORK/pids"
helper=""

# Kill, by PID, everything the helper started (it lists "pid starttime" in $WORK/pids; the start
# time guards against a reused PID), then the helper itself.
cleanup() {
  local rc=$?
  trap - EXIT INT TERM HUP
  if [ -n "$helper" ] && kill -0 "$helper" 2>/dev/null; then
    kill -TERM "$helper" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$helper" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$helper" 2>/dev/null || true
  fi
  if [ -s "$WORK/pids" ]; then
    # TERM first (the helper, listed too, then stops its own children), KILL what is left.
    for sig in TERM KILL; do
      left=0
      while read -r pid st; do
        [ -r "/proc/$pid/stat" ] || continue
        cur="$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{print $20}')"
        if [ "$cur" = "$st" ]; then kill "-$sig" "$pid" 2>/dev/null || true; left=1; fi
      done <"$WORK/pids"
      [ "$left" = 1 ] && [ "$sig" = TERM ] && sleep 3
    done
  fi
  if [ "${KEEP_TMP:-0}" = 1 ]; then
    echo "ingest_publishers: kept $WORK" >&2
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# ---- source file: encoded once, cached in bench/results/ (gitignored)
SRC_W=1280 SRC_H=720 SRC_FPS=30 SRC_SECONDS=30
if [ -n "${SOURCE:-}" ]; then
  SRC="$SOURCE"
  [ -f "$SRC" ] || die "SOURCE=$SRC not found"
else
  SRC="$RESULTS/ingest-src-${SRC_W}x${SRC_H}p${SRC_FPS}-6M-g60-${SRC_SECONDS}s.flv"
  if [ ! -s "$SRC" ]; then
    echo "ingest_publishers: encoding ${SRC_SECONDS} s source (once) -> $SRC" >&2
    # Light temporal noise keeps x264 near its 6 Mbit/s target (a clean test pattern would come
    # out far below it); -sc_threshold 0 keeps keyframes on the 2 s grid.
    timeout 600 nice -n 10 ffmpeg -hide_banner -nostdin -loglevel error -y \
      -f lavfi -i "testsrc2=size=${SRC_W}x${SRC_H}:rate=${SRC_FPS}" \
      -f lavfi -i "sine=frequency=1000:sample_rate=48000" -t "$SRC_SECONDS" \
      -vf "noise=alls=12:allf=t" -c:v libx264 -preset veryfast -b:v 6M -maxrate 6M -bufsize 6M \
      -g 60 -keyint_min 60 -sc_threshold 0 -pix_fmt yuv420p \
      -c:a aac -b:a 128k -ar 48000 -ac 2 -f flv "$WORK/src.flv"
    mv "$WORK/src.flv" "$SRC"
  fi
fi

# ---- the run, bounded: per N and server at most window + warm-up + start/stop allowances.
budget=60
for n in $N_LIST; do
  budget=$((budget + 2 * (${DURATION%.*} + ${WARMUP%.*} + 60 + n)))
done
# The helper runs on the publishers' core so its sampling does not land on the server's core.
timeout --kill-after=15 "$budget" taskset -c "$CLIENT_CORE" "$PY" "$HERE/ingest_publishers.py" \
  --workdir "$WORK" --results "$RESULTS" --source "$SRC" \
  --streamflex-bin "${STREAMFLEX_BIN}" --n-list "$N_LIST" --duration "$DURATION" \
  --warmup "$WARMUP" --batch-ms "${BATCH_MS:-20}" --servers "$SERVERS" --server-core "$SERVER_CORE" --client-core "$CLIENT_CORE" &
helper=$!
set +e
wait "$helper"
rc=$?
set -e
helper=""
exit "$rc"
