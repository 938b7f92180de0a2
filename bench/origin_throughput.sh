#!/usr/bin/env bash
# Origin HTTP throughput: wrk (-t1, 100 and 1000 connections) fetching one ~1 MB part and one
# playlist from StreamFlex's origin (one I/O thread, pinned to core 0) and from nginx (one worker,
# pinned to core 0) serving the same bytes as static files; wrk on core 1. Prints requests/s, MB/s
# and p99 for both and the ratios. Goal: StreamFlex >= nginx in requests/s and MB/s, lower p99.
# See bench/README.md. Not a test.
#
# Environment:
#   DURATION=10   seconds per wrk run         CONNS="100 1000"     PUBLISH_SECONDS=8
#   ROUNDS=3      every case this many times, the servers' order swapped each round; the verdict
#                 uses each figure's median (runs here differ by up to 15 % from one to the next)
#   STREAMFLEX_BIN=build/app/streamflex       SERVER_CORE=0 CLIENT_CORE=1
#   SOURCE=<flv>  ~16 Mbit/s source (default: encoded once and cached in bench/results/)
#   KEEP_TMP=1 keeps the temporary directory (server logs, wrk output, nginx config)
set -euo pipefail

NAME=origin_throughput
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
cd "$ROOT"
. "$HERE/lib.sh"

DURATION="${DURATION:-10}"
CONNS="${CONNS:-100 1000}"
ROUNDS="${ROUNDS:-3}"
PUBLISH_SECONDS="${PUBLISH_SECONDS:-8}"
STREAMFLEX_BIN="${STREAMFLEX_BIN:-build/app/streamflex}"
SERVER_CORE="${SERVER_CORE:-0}"
CLIENT_CORE="${CLIENT_CORE:-1}"
RESULTS="$HERE/results"
PY=/usr/bin/python3

for tool in ffmpeg taskset timeout "$PY"; do command -v "$tool" >/dev/null || bench_die "$tool not found"; done
command -v wrk >/dev/null || bench_die "wrk not found (apt-get install -y wrk)"
command -v nginx >/dev/null || bench_die "nginx not found (apt-get install nginx)"
[[ "$DURATION" =~ ^[0-9]+$ ]] || bench_die "DURATION must be whole seconds"
[[ "$ROUNDS" =~ ^[0-9]+$ && "$ROUNDS" -ge 1 && "$ROUNDS" -le 20 ]] || bench_die "ROUNDS must be 1..20"
max_c=0
for c in $CONNS; do
  [[ "$c" =~ ^[0-9]+$ && "$c" -ge 1 ]] || bench_die "CONNS must hold positive integers"
  [ "$c" -gt "$max_c" ] && max_c=$c
done
bench_check_binary

# 1000 connections: wrk, the server and nginx each hold one descriptor per connection. The hard
# limit here is 20000; raise the soft one as far as it goes.
hard="$(ulimit -Hn)"
want=20000
[ "$hard" != unlimited ] && [ "$hard" -lt "$want" ] && want=$hard
ulimit -Sn "$want" || bench_die "cannot raise the open-file limit to $want"
[ "$want" -ge $((max_c * 2 + 256)) ] || bench_die "open-file limit $want too low for $max_c connections"

bench_init
bench_copy_binary

# ~16 Mbit/s source: 1280x720 30 fps with strong temporal noise (incompressible), x264 CBR 16M with
# HRD, keyframe every second; 10 s, encoded once and cached. A 0.5 s part comes to about 1 MB.
SRC="${SOURCE:-$RESULTS/throughput-src-1280x720p30-16M-g30-10s.flv}"
if [ ! -s "$SRC" ]; then
  [ -n "${SOURCE:-}" ] && bench_die "SOURCE=$SRC not found"
  echo "$NAME: encoding the 10 s 16 Mbit/s source once -> $SRC" >&2
  timeout 600 nice -n 10 ffmpeg -hide_banner -nostdin -loglevel error -y \
    -f lavfi -i "testsrc2=size=1280x720:rate=30" -t 10 -vf "noise=alls=40:allf=t+u" \
    -c:v libx264 -preset ultrafast -b:v 16M -minrate 16M -maxrate 16M -bufsize 16M \
    -x264-params nal-hrd=cbr -g 30 -keyint_min 30 -sc_threshold 0 -pix_fmt yuv420p -an \
    -f flv "$WORK/src.flv"
  mv "$WORK/src.flv" "$SRC"
fi

n=$(echo $CONNS | wc -w)
budget=$(( ROUNDS * 2 * 2 * n * (DURATION + 35) + ${PUBLISH_SECONDS%.*} + 120 ))
bench_run_helper "$budget" taskset -c "$CLIENT_CORE" "$PY" "$HERE/origin_throughput.py" \
  --workdir "$WORK" --results "$RESULTS" --streamflex-bin "$STREAMFLEX_BIN" --source "$SRC" \
  --duration "$DURATION" --conns "$CONNS" --rounds "$ROUNDS" --publish-seconds "$PUBLISH_SECONDS" \
  --server-core "$SERVER_CORE" --client-core "$CLIENT_CORE"
