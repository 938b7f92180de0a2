#!/usr/bin/env bash
# Edge cache-hit serving: wrk (-t1, 100 and 1000 connections) fetching one 1 MiB part and one LL-HLS
# playlist, every request a cache hit, from the StreamFlex edge (one I/O thread, pinned to core 0)
# and from nginx proxy_cache (one worker, pinned to core 0), both in front of the same static
# upstream (bench/edge_upstream.py, Cache-Control "public, max-age=60"); wrk on core 1. Prints
# requests/s, MB/s, p50/p99 for both and the ratios. Goal: StreamFlex >= 1.2x nginx's requests/s
# with a lower p99. See bench/README.md. Not a test.
#
# Environment:
#   DURATION=10   seconds per wrk run         CONNS="100 1000"     OBJECTS="part playlist"
#   SERVERS="streamflex nginx"                STREAMFLEX_BIN=build/app/streamflex
#   SERVER_CORE=0 CLIENT_CORE=1               KEEP_TMP=1 keeps the temporary directory
#   ROUNDS=3      every case this many times, the servers' order swapped each round; the verdict
#                 uses each figure's median (runs here differ by up to 15 % from one to the next)
set -euo pipefail

NAME=edge_cache_hit
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
cd "$ROOT"
. "$HERE/lib.sh"

DURATION="${DURATION:-10}"
CONNS="${CONNS:-100 1000}"
ROUNDS="${ROUNDS:-3}"
OBJECTS="${OBJECTS:-part playlist}"
SERVERS="${SERVERS:-streamflex nginx}"
STREAMFLEX_BIN="${STREAMFLEX_BIN:-build/app/streamflex}"
SERVER_CORE="${SERVER_CORE:-0}"
CLIENT_CORE="${CLIENT_CORE:-1}"
RESULTS="$HERE/results"
PY=/usr/bin/python3

for tool in taskset timeout "$PY"; do command -v "$tool" >/dev/null || bench_die "$tool not found"; done
command -v wrk >/dev/null || bench_die "wrk not found (apt-get install -y wrk)"
command -v nginx >/dev/null || bench_die "nginx not found (apt-get install nginx)"
[[ "$DURATION" =~ ^[0-9]+$ && "$DURATION" -ge 1 && "$DURATION" -le 50 ]] \
  || bench_die "DURATION must be whole seconds, 1..50 (the objects are fresh for 60 s from the start of a run)"
max_c=0
[[ "$ROUNDS" =~ ^[0-9]+$ && "$ROUNDS" -ge 1 && "$ROUNDS" -le 20 ]] || bench_die "ROUNDS must be 1..20"
for c in $CONNS; do
  [[ "$c" =~ ^[0-9]+$ && "$c" -ge 1 ]] || bench_die "CONNS must hold positive integers"
  [ "$c" -gt "$max_c" ] && max_c=$c
done
for o in $OBJECTS; do [[ "$o" == part || "$o" == playlist ]] || bench_die "OBJECTS: part and/or playlist"; done
for s in $SERVERS; do [[ "$s" == streamflex || "$s" == nginx ]] || bench_die "SERVERS: streamflex and/or nginx"; done
case " $SERVERS " in *" streamflex "*) bench_check_binary ;; esac

# wrk, the edge and nginx each hold one descriptor per connection; the hard limit here is 20000.
hard="$(ulimit -Hn)"
want=20000
[ "$hard" != unlimited ] && [ "$hard" -lt "$want" ] && want=$hard
ulimit -Sn "$want" || bench_die "cannot raise the open-file limit to $want"
[ "$want" -ge $((max_c * 2 + 256)) ] || bench_die "open-file limit $want too low for $max_c connections"

bench_init
bench_copy_binary

runs=$(( ROUNDS * $(echo $CONNS | wc -w) * $(echo $OBJECTS | wc -w) * $(echo $SERVERS | wc -w) ))
budget=$(( runs * (DURATION + 30) + 90 ))
bench_run_helper "$budget" taskset -c "$CLIENT_CORE" "$PY" "$HERE/edge_cache_hit.py" \
  --workdir "$WORK" --results "$RESULTS" --streamflex-bin "${STREAMFLEX_BIN:-}" \
  --duration "$DURATION" --conns "$CONNS" --rounds "$ROUNDS" --objects "$OBJECTS" --servers "$SERVERS" \
  --server-core "$SERVER_CORE" --client-core "$CLIENT_CORE"
