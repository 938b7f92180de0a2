#!/usr/bin/env bash
# Glass-to-glass latency in hls.js (headless Chromium): StreamFlex LL-HLS with 0.5 s parts against
# nginx-rtmp HLS with 1 s fragments, one ffmpeg publishing the same live source to both in the
# same run. The frame number is burnt into the picture as binary blocks and decoded from a canvas.
# Prints median/p95 for both and the ratio. Goal: StreamFlex <= 2.0 s. See bench/README.md.
#
# Environment:
#   DURATION=30     sampled seconds (after WARMUP)       WARMUP=12  seconds hls.js gets to settle
#   PREROLL=6       seconds the stream runs before the players join
#   HLS_CONFIG=     JSON merged into both pages' hls.js config, e.g. '{"maxLiveSyncPlaybackRate":1.5}'
#                   (default: none, the pages as shipped)
#   STREAMFLEX_BIN=build/app/streamflex   PART_MS=500    SERVER_CORE=0 CLIENT_CORE=1
#   KEEP_TMP=1 keeps the temporary directory (server, ffmpeg and browser logs, raw samples)
set -euo pipefail

NAME=glass_to_glass
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
cd "$ROOT"
. "$HERE/lib.sh"

DURATION="${DURATION:-30}"
WARMUP="${WARMUP:-12}"
PREROLL="${PREROLL:-6}"
HLS_CONFIG="${HLS_CONFIG:-}"
PART_MS="${PART_MS:-500}"
STREAMFLEX_BIN="${STREAMFLEX_BIN:-build/app/streamflex}"
SERVER_CORE="${SERVER_CORE:-0}"
CLIENT_CORE="${CLIENT_CORE:-1}"
RESULTS="$HERE/results"
PY=/usr/bin/python3

for tool in ffmpeg node npm taskset timeout "$PY" /usr/bin/chromium; do
  command -v "$tool" >/dev/null || bench_die "$tool not found"
done
for v in DURATION WARMUP PREROLL; do [[ "${!v}" =~ ^[0-9]+([.][0-9]+)?$ ]] || bench_die "$v must be a number"; done
bench_check_nginx
bench_check_binary
[ -f "$ROOT/web/dist/index.html" ] || bench_die "web/dist missing: run 'make web'"

if [ ! -d "$HERE/browser/node_modules/playwright-core" ] || [ ! -d "$HERE/browser/node_modules/hls.js" ]; then
  echo "$NAME: installing bench/browser dependencies (npm ci)" >&2
  (cd "$HERE/browser" && npm ci --no-audit --no-fund >&2)
fi
# The nginx page must run the same hls.js as StreamFlex's page.
want="$(node -p "require('$ROOT/web/node_modules/hls.js/package.json').version" 2>/dev/null || echo '?')"
have="$(node -p "require('$HERE/browser/node_modules/hls.js/package.json').version")"
[ "$want" = "$have" ] || echo "$NAME: WARNING: web/ uses hls.js $want, bench/browser $have" >&2

bench_init
bench_copy_binary

d=${DURATION%.*}; w=${WARMUP%.*}; p=${PREROLL%.*}
bench_run_helper $(( d + w + p + 240 )) "$PY" "$HERE/glass_to_glass.py" \
  --workdir "$WORK" --results "$RESULTS" --streamflex-bin "$STREAMFLEX_BIN" --duration "$DURATION" \
  --warmup "$WARMUP" --server-core "$SERVER_CORE" --client-core "$CLIENT_CORE" --part-ms "$PART_MS" \
  --preroll "$PREROLL" --hls-config "$HLS_CONFIG"
