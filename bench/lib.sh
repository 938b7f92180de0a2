# Shared shell part of the origin benchmarks (part_latency, glass_to_glass, origin_throughput).
# Sourced, not run. Provides a temporary directory, a PID list and an EXIT trap that stops, by PID,
# everything the benchmark started:
#   - the helper process (BENCH_HELPER) and all its descendants, collected from /proc before any
#     signal is sent;
#   - every "pid starttime" line of $WORK/pids (the start time guards against PID reuse).
# Usage: NAME=foo; . "$HERE/lib.sh"; bench_init; ... BENCH_HELPER=$!; bench_wait_helper

bench_die() { echo "${NAME}: $*" >&2; exit 1; }

bench_descendants() {  # pid -> its descendants, deepest last
  local pid=$1 kids k
  kids="$(cat /proc/"$pid"/task/*/children 2>/dev/null || true)"
  for k in $kids; do
    echo "$k"
    bench_descendants "$k"
  done
}

bench_starttime() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $20}'; }

bench_cleanup() {
  local rc=$? victims="" pid st sig left
  trap - EXIT INT TERM HUP
  if [ -n "${BENCH_HELPER:-}" ] && kill -0 "$BENCH_HELPER" 2>/dev/null; then
    victims="$BENCH_HELPER $(bench_descendants "$BENCH_HELPER")"
  fi
  if [ -s "${WORK:-}/pids" ]; then
    while read -r pid st; do
      [ "$(bench_starttime "$pid")" = "$st" ] && victims="$victims $pid $(bench_descendants "$pid")"
    done <"$WORK/pids"
  fi
  if [ -n "${victims// /}" ]; then
    for sig in TERM KILL; do
      left=0
      for pid in $victims; do
        if kill -0 "$pid" 2>/dev/null; then kill "-$sig" "$pid" 2>/dev/null || true; left=1; fi
      done
      [ "$left" = 1 ] && [ "$sig" = TERM ] && sleep 2
    done
  fi
  if [ -n "${WORK:-}" ] && [ -d "$WORK" ]; then
    if [ "${KEEP_TMP:-0}" = 1 ]; then echo "${NAME}: kept $WORK" >&2; else rm -rf "$WORK"; fi
  fi
  exit "$rc"
}

bench_init() {
  mkdir -p "$RESULTS"
  WORK="$(mktemp -d "${TMPDIR:-/tmp}/sf-bench-${NAME}.XXXXXX")"
  : >"$WORK/pids"
  BENCH_HELPER=""
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM HUP
}

bench_check_binary() {
  [ -x "$STREAMFLEX_BIN" ] || bench_die "$STREAMFLEX_BIN not found: run 'make build' (or set STREAMFLEX_BIN)"
  STREAMFLEX_BIN="$(cd "$(dirname "$STREAMFLEX_BIN")" && pwd)/$(basename "$STREAMFLEX_BIN")"
  if ldd "$STREAMFLEX_BIN" 2>/dev/null | grep -q libasan; then
    echo "${NAME}: WARNING: $STREAMFLEX_BIN is built with AddressSanitizer; figures are meaningless" >&2
  fi
}

# After bench_init: run a private copy, so a rebuild during the run cannot swap the binary.
bench_copy_binary() {
  if [ -n "${STREAMFLEX_BIN:-}" ] && [ -x "$STREAMFLEX_BIN" ]; then
    STREAMFLEX_BIN_ORIG="$STREAMFLEX_BIN"
    cp -p "$STREAMFLEX_BIN" "$WORK/streamflex.bin"
    STREAMFLEX_BIN="$WORK/streamflex.bin"
  fi
}

bench_check_nginx() {
  command -v nginx >/dev/null || bench_die "nginx not found (apt-get install nginx libnginx-mod-rtmp)"
  [ -f /usr/lib/nginx/modules/ngx_rtmp_module.so ] || bench_die "libnginx-mod-rtmp not installed"
}

# Runs "$@" (the helper) in the background under `timeout`, waits for it, returns its status.
bench_run_helper() {
  local budget=$1; shift
  timeout --kill-after=15 "$budget" "$@" &
  BENCH_HELPER=$!
  local rc=0
  wait "$BENCH_HELPER" || rc=$?
  BENCH_HELPER=""
  [ "$rc" = 124 ] && echo "${NAME}: helper exceeded its ${budget} s budget" >&2
  return "$rc"
}

# For the viewer-stepping benchmarks: raises the soft open-file limit (one descriptor per viewer on
# each side; the hard limit here is 20000), checks every N of $N_LIST against it and sets `steps`
# to their count.
bench_viewer_steps() {
  local hard want n
  hard="$(ulimit -Hn)"
  want=20000
  [ "$hard" != unlimited ] && [ "$hard" -lt "$want" ] && want=$hard
  ulimit -Sn "$want" || bench_die "cannot raise the open-file limit to $want"
  steps=0
  for n in $N_LIST; do
    [[ "$n" =~ ^[0-9]+$ && "$n" -ge 1 ]] || bench_die "N_LIST must hold positive integers"
    [ "$n" -le $((want - 512)) ] || bench_die "N=$n is above what the open-file limit ($want) allows"
    steps=$((steps + 1))
  done
}
