#!/usr/bin/env bash
# Builds Rotor, starts it on its embedded SQLite default with a demo app and
# installation, runs the printed curl commands (code exchange, refresh, events)
# to show it working, then keeps serving until Ctrl-C.
# Usage: scripts/quickstart.sh [--no-wait]   (--no-wait stops after the demo)
set -euo pipefail
cd "$(dirname "$0")/.."
PORT="${ROTOR_DEMO_PORT:-8080}"
DATA=".rotor-demo"

echo "==> building rotor (release)"
cargo build --release --quiet -p rotor
mkdir -p "$DATA"
BIN="$PWD/target/release/rotor"

echo "==> starting: rotor serve --demo --listen 127.0.0.1:$PORT (SQLite file $DATA/rotor.db)"
( cd "$DATA" && exec "$BIN" serve --demo --listen "127.0.0.1:$PORT" ) > "$DATA/demo.txt" 2> "$DATA/rotor.log" &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT

for _ in $(seq 1 100); do
  if curl -fsS "http://127.0.0.1:$PORT/readyz" > /dev/null 2>&1 && grep -q "/api/0/events/" "$DATA/demo.txt"; then
    break
  fi
  kill -0 $PID 2>/dev/null || { echo "rotor exited:"; cat "$DATA/rotor.log"; exit 1; }
  sleep 0.1
done
cat "$DATA/demo.txt"

# Run the three printed commands exactly as printed, one file each.
rm -f "$DATA"/step-*.sh
awk -v dir="$DATA" '/^curl /{n++; f=dir "/step-" n ".sh"; cmd=$0; print cmd > f; while (cmd ~ /\\$/) { getline cmd; print cmd > f } close(f)}' "$DATA/demo.txt"
for step in "$DATA"/step-*.sh; do
  echo; echo "==> running ${step#"$DATA"/}: $(head -c 100 "$step")..."
  bash "$step"; echo
done

if [ "${1:-}" = "--no-wait" ]; then exit 0; fi
echo; echo "==> Rotor is running on http://127.0.0.1:$PORT (logs: $DATA/rotor.log). Ctrl-C to stop."
wait $PID
