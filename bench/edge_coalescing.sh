#!/usr/bin/env bash
# Edge request coalescing: 1,000 clients ask at once for one object the upstream answers only
# 500 ms after it is asked. StreamFlex edge (one I/O thread) and nginx proxy_cache with
# proxy_cache_lock (one worker), both pinned to core 0, in front of the same upstream
# (bench/edge_upstream.py); the timing client (bench/coalesce_client.cpp, built here) and the
# upstream on core 1. Prints, per proxy and round, the upstream requests and the time from the
# upstream's answer to the last waiter's headers and whole body, beside this client's own floor.
# Goal: one upstream request, last waiter's headers within 20 ms of the upstream answer.
# See bench/README.md. Not a test.
#
# Environment:
#   WAITERS=1000  DELAY_MS=500  BODY_BYTES=100000  ROUNDS=3
#   SERVERS="floor streamflex nginx"          STREAMFLEX_BIN=build/app/streamflex
#   SERVER_CORE=0 CLIENT_CORE=1               KEEP_TMP=1 keeps the temporary directory
set -euo pipefail

NAME=edge_coalescing
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
cd "$ROOT"
. "$HERE/lib.sh"

WAITERS="${WAITERS:-1000}"
DELAY_MS="${DELAY_MS:-500}"
BODY_BYTES="${BODY_BYTES:-100000}"
ROUNDS="${ROUNDS:-3}"
SERVERS="${SERVERS:-floor streamflex nginx}"
STREAMFLEX_BIN="${STREAMFLEX_BIN:-build/app/streamflex}"
SERVER_CORE="${SERVER_CORE:-0}"
CLIENT_CORE="${CLIENT_CORE:-1}"
RESULTS="$HERE/results"
PY=/usr/bin/python3

for tool in taskset timeout g++ "$PY"; do command -v "$tool" >/dev/null || bench_die "$tool not found"; done
command -v nginx >/dev/null || bench_die "nginx not found (apt-get install nginx)"
for v in WAITERS DELAY_MS BODY_BYTES ROUNDS; do
  [[ "${!v}" =~ ^[0-9]+$ ]] || bench_die "$v must be a whole number"
done
[ "$WAITERS" -ge 1 ] && [ "$WAITERS" -le 9000 ] || bench_die "WAITERS must be 1..9000"
[ "$ROUNDS" -ge 1 ] && [ "$ROUNDS" -le 10 ] || bench_die "ROUNDS must be 1..10"
for s in $SERVERS; do [[ "$s" == floor || "$s" == streamflex || "$s" == nginx ]] || bench_die "SERVERS: floor, streamflex, nginx"; done
case " $SERVERS " in *" streamflex "*) bench_check_binary ;; esac

hard="$(ulimit -Hn)"
want=20000
[ "$hard" != unlimited ] && [ "$hard" -lt "$want" ] && want=$hard
ulimit -Sn "$want" || bench_die "cannot raise the open-file limit to $want"
[ "$want" -ge $((WAITERS * 2 + 256)) ] || bench_die "open-file limit $want too low for $WAITERS connections"

bench_init
bench_copy_binary

g++ -O2 -std=c++20 -Wall -Wextra -o "$WORK/coalesce_client" "$HERE/coalesce_client.cpp" \
  || bench_die "cannot build bench/coalesce_client.cpp"

budget=$(( ROUNDS * $(echo $SERVERS | wc -w) * 30 + 90 ))
bench_run_helper "$budget" taskset -c "$CLIENT_CORE" "$PY" "$HERE/edge_coalescing.py" \
  --workdir "$WORK" --results "$RESULTS" --streamflex-bin "${STREAMFLEX_BIN:-}" --client-bin "$WORK/coalesce_client" \
  --waiters "$WAITERS" --delay-ms "$DELAY_MS" --body-bytes "$BODY_BYTES" --rounds "$ROUNDS" --servers "$SERVERS" \
  --server-core "$SERVER_CORE" --client-core "$CLIENT_CORE"
