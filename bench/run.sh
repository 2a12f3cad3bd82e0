#!/usr/bin/env bash
# Rotor's benchmark: builds release, starts Rotor (SQLite in WAL mode with
# synchronous=NORMAL, or PostgreSQL with --postgres URL), and drives each
# scenario over HTTP with rotor-bench at fixed concurrency, printing req/s,
# p50/p99, errors, the ratio to the floor (/healthz on the same server) and
# Rotor's RSS at start and end, and during each run (sampled each second:
# at its start, middle and end).
#
#   bench/run.sh                          # SQLite, 64 connections, 10 s each
#   bench/run.sh --sweep                  # also refresh at 1, 16, 64, 256 connections
#   bench/run.sh --postgres postgres://postgres@127.0.0.1:5432/test
#   SECONDS_PER_RUN=60 bench/run.sh       # longer runs (RSS flatness)
#   SCENARIOS="floor refresh" bench/run.sh  # only these scenarios
#   ROTOR_SQLITE_SYNCHRONOUS=full bench/run.sh   # fsync every commit
#   ROTOR_BIN=/tmp/rotor-before bench/run.sh   # serve another build (before/after)
#   SCENARIOS="floor realistic-refresh" SECONDS_PER_RUN=600 FLOOR_SECONDS=10 bench/run.sh
#       # the realistic scenario: INSTALLATIONS (100000) installations, each
#       # request refreshing a random one, over HISTORY (1000000) retired
#       # pairs and twice as many events pre-filled (SQLite, or PostgreSQL
#       # with bench/prefill_history_pg.sql); the line also
#       # gives the first and the last minute's req/s and p99
set -euo pipefail
cd "$(dirname "$0")/.."
PG=""; SWEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --postgres) PG="$2"; shift 2 ;;
    --sweep) SWEEP=1; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
SECS="${SECONDS_PER_RUN:-10}"
CONN="${CONNECTIONS:-64}"
PORT="${ROTOR_BENCH_PORT:-18480}"

cargo build --release --quiet -p rotor -p rotor-bench
DATA="$(mktemp -d)"
export ROTOR_ADMIN_TOKEN="bench-admin-$RANDOM"
export ROTOR_SECRET_KEY="$(head -c 32 /dev/urandom | base64)"
if [ -n "$PG" ]; then
  SCHEMA="bench_$RANDOM$RANDOM"
  psql "$PG" -qc "CREATE SCHEMA $SCHEMA"
  sep='?'; [[ "$PG" == *\?* ]] && sep='&'
  DB="${PG}${sep}options=-c%20search_path%3D${SCHEMA}"
  BACKEND="postgresql"
else
  DB="sqlite://$DATA/rotor.db"
  BACKEND="sqlite (WAL, synchronous=${ROTOR_SQLITE_SYNCHRONOUS:-normal})"
fi
RUST_LOG="${RUST_LOG:-warn}" "${ROTOR_BIN:-./target/release/rotor}" serve --listen "127.0.0.1:$PORT" --database-url "$DB" \
  --pg-max-connections 32 --management-listen off > "$DATA/rotor.log" 2>&1 &
PID=$!
cleanup() {
  kill $PID 2>/dev/null || true
  wait $PID 2>/dev/null || true
  [ -n "$PG" ] && psql "$PG" -qc "DROP SCHEMA IF EXISTS $SCHEMA CASCADE" || true
  rm -rf "$DATA"
}
trap cleanup EXIT
for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$PORT/readyz" > /dev/null 2>&1 && break; sleep 0.1; done

rss() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$PID/status"; }
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); backend: $BACKEND"
echo "rotor RSS at start: $(rss) MiB"

run() { # scenario connections
  local extra=()
  if [ "$1" = realistic-refresh ]; then
    # Seed the installations, pre-fill the history, then load.
    ./target/release/rotor-bench --base "http://127.0.0.1:$PORT" --scenario "$1" \
      --connections "$2" --installations "${INSTALLATIONS:-100000}" \
      --save-chains "$DATA/chains.tsv" >&2
    if [ -z "$PG" ]; then
      python3 bench/prefill_history.py "$DATA/rotor.db" "${HISTORY:-1000000}"
    else
      local started=$SECONDS
      psql "$DB" -q -v pairs="${HISTORY:-1000000}" -f bench/prefill_history_pg.sql >&2
      echo "prefilled ${HISTORY:-1000000} retired pairs and twice as many events in $((SECONDS - started)) s" >&2
    fi
    extra=(--load-chains "$DATA/chains.tsv")
  fi
  # Rotor's RSS, sampled every second while the scenario runs.
  : > "$DATA/rss.samples"
  ( while kill -0 "$PID" 2>/dev/null; do rss >> "$DATA/rss.samples"; echo >> "$DATA/rss.samples"; sleep 1; done ) > /dev/null 2>&1 &
  local sampler=$!
  # The floor needs no long run: FLOOR_SECONDS (default SECONDS_PER_RUN).
  local secs="$SECS"
  [ "$1" = floor ] && secs="${FLOOR_SECONDS:-$SECS}"
  ./target/release/rotor-bench --base "http://127.0.0.1:$PORT" --scenario "$1" \
    --connections "$2" --seconds "$secs" "${extra[@]}"
  kill "$sampler" 2>/dev/null || true
  wait "$sampler" 2>/dev/null || true
}
rss_span() { # the samples of the last run at its start, middle and end
  awk 'NF { v[n++] = $1 } END { if (n) printf "%s/%s/%s", v[0], v[int(n / 2)], v[n - 1] }' "$DATA/rss.samples"
}
declare -A RPS
printf '%-14s %6s %10s %9s %9s %7s %9s %9s %16s\n' scenario conns req/s p50_ms p99_ms errors x_floor rss_MiB rss_during
report() { # json-line
  local line="$1" sc c rps p50 p99 err
  sc=$(sed -E 's/.*"scenario":"([^"]+)".*/\1/' <<< "$line")
  c=$(sed -E 's/.*"connections":([0-9]+).*/\1/' <<< "$line")
  rps=$(sed -E 's/.*"rps":([0-9.]+).*/\1/' <<< "$line")
  p50=$(sed -E 's/.*"p50_ms":([0-9.]+).*/\1/' <<< "$line")
  p99=$(sed -E 's/.*"p99_ms":([0-9.]+).*/\1/' <<< "$line")
  err=$(sed -E 's/.*"errors":([0-9]+).*/\1/' <<< "$line")
  RPS["$sc-$c"]=$rps
  local floor="${RPS[floor-$c]:-}"
  local ratio="-"; [ -n "$floor" ] && ratio=$(awk -v a="$rps" -v b="$floor" 'BEGIN {printf "%.2f", a/b}')
  printf '%-14s %6s %10s %9s %9s %7s %9s %9s %16s\n' "$sc" "$c" "$rps" "$p50" "$p99" "$err" "$ratio" "$(rss)" "$(rss_span)"
  local secs="$SECS"
  [ "$sc" = floor ] && secs="${FLOOR_SECONDS:-$SECS}"
  if [ "$secs" -ge 120 ] && grep -q first_minute <<< "$line"; then
    python3 -c 'import json,sys; l=json.loads(sys.argv[1]); f,z=l["first_minute"],l["last_minute"]; print("  first minute: %s req/s, p99 %s ms; last minute: %s req/s, p99 %s ms" % (f["rps"], f["p99_ms"], z["rps"], z["p99_ms"]))' "$line"
  fi
}
dbbytes() { # SQLite: database file plus WAL, in bytes (0 on PostgreSQL)
  [ -n "$PG" ] && { echo 0; return; }
  cat "$DATA"/rotor.db "$DATA"/rotor.db-wal 2>/dev/null | wc -c
}
for sc in ${SCENARIOS:-floor refresh oauth-refresh introspect upstream-token realistic-refresh}; do
  before=$(dbbytes)
  line="$(run "$sc" "$CONN")"
  report "$line"
  if [ "$sc" = refresh ] && [ -z "$PG" ]; then
    # What a refresh leaves on disk: its retired pair (kept until its refresh
    # token would have expired, for reuse detection) and its event and audit
    # rows (kept for ROTOR_EVENTS_RETENTION_DAYS). Steady state holds
    # refreshes-per-30-days of pairs and per-90-days of events.
    n=$(awk -v r="$(sed -E 's/.*"rps":([0-9.]+).*/\1/' <<< "$line")" -v s="$SECS" 'BEGIN {printf "%d", r*s}')
    after=$(dbbytes)
    awk -v a="$after" -v b="$before" -v n="$n" 'BEGIN { if (n > 0) printf "database growth: %d bytes for %d refreshes = %.0f bytes per refresh, %.0f MiB per million\n", a-b, n, (a-b)/n, (a-b)/n*1e6/1048576 }'
  fi
done
if [ "$SWEEP" = 1 ]; then
  for c in 1 16 256; do
    report "$(run floor "$c")"
    report "$(run refresh "$c")"
  done
fi
echo "rotor RSS at end: $(rss) MiB"
