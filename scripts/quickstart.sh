#!/usr/bin/env bash
# Builds Rotor, starts it on its embedded SQLite default with a demo app and
# installation, runs the printed curl commands (code exchange, refresh, events)
# to show it working, installs an app with a webhook URL and shows the signed
# installation.created webhook arriving at a receiver that checks the
# signature as Sentry integrations do, then keeps serving until Ctrl-C.
# Usage: scripts/quickstart.sh [--no-wait]   (--no-wait stops after the demo)
set -euo pipefail
cd "$(dirname "$0")/.."
PORT="${ROTOR_DEMO_PORT:-8080}"
DATA=".rotor-demo"

echo "==> building rotor (release)"
cargo build --release --quiet -p rotor
mkdir -p "$DATA"
BIN="$PWD/target/release/rotor"

# A webhook receiver on loopback that verifies Sentry-Hook-Signature.
: > "$DATA/hook-secrets"
python3 scripts/webhook_receiver.py --port 0 --secret-file "$DATA/hook-secrets" > "$DATA/hooks.jsonl" &
HOOK_PID=$!
for _ in $(seq 1 50); do grep -q listening "$DATA/hooks.jsonl" 2>/dev/null && break; sleep 0.1; done
HOOK_PORT="$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["listening"])' "$DATA/hooks.jsonl")"

# The demo's webhooks go to that receiver on 127.0.0.1, which Rotor refuses
# by default (no server-side request forgery): open loopback for the demo.
export ROTOR_WEBHOOK_ALLOWED_NETWORKS=127.0.0.0/8
export ROTOR_ADMIN_TOKEN="${ROTOR_ADMIN_TOKEN:-demo-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')}"
MPORT="${ROTOR_DEMO_MANAGEMENT_PORT:-$((PORT + 1))}"
echo "==> starting: rotor serve --demo --listen 127.0.0.1:$PORT --management-listen 127.0.0.1:$MPORT (SQLite file $DATA/rotor.db)"
( cd "$DATA" && exec "$BIN" serve --demo --listen "127.0.0.1:$PORT" --management-listen "127.0.0.1:$MPORT" ) > "$DATA/demo.txt" 2> "$DATA/rotor.log" &
PID=$!
trap 'kill $PID $HOOK_PID 2>/dev/null || true' EXIT

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

echo; echo "==> webhooks: an app with a webhook URL, installed; Rotor sends installation.created"
B="http://127.0.0.1:$PORT"; H="Authorization: Bearer $ROTOR_ADMIN_TOKEN"
SLUG="hooked-$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')"
APP="$(curl -fsS -X POST "$B/api/0/sentry-apps/" -H "$H" -H 'Content-Type: application/json' \
  -d '{"name": "'"$SLUG"'", "scopes": ["project:read"], "webhookUrl": "http://127.0.0.1:'"$HOOK_PORT"'/hook"}')"
python3 -c 'import json,sys; print(json.loads(sys.argv[1])["clientSecret"])' "$APP" >> "$DATA/hook-secrets"
echo "curl -s -X POST $B/api/0/organizations/acme/sentry-app-installations/ -d '{\"slug\": \"$SLUG\"}'"
curl -fsS -X POST "$B/api/0/organizations/acme/sentry-app-installations/" -H "$H" \
  -H 'Content-Type: application/json' -d '{"slug": "'"$SLUG"'", "actor": {"id": 1, "name": "Quickstart"}}'; echo
for _ in $(seq 1 100); do grep -q '"installation"' "$DATA/hooks.jsonl" && break; sleep 0.1; done
echo "--> the receiver got (and checked the signature of):"
grep '"installation"' "$DATA/hooks.jsonl" | tail -n 1
grep '"installation"' "$DATA/hooks.jsonl" | tail -n 1 | grep -q '"verified": true' \
  || { echo "webhook did not arrive verified"; exit 1; }
echo "--> the delivery log:"
curl -fsS "$B/api/0/sentry-apps/$SLUG/webhook-requests/" -H "$H"; echo

echo; echo "==> metrics (Prometheus format, on the management listener):"
echo "curl -s http://127.0.0.1:$MPORT/metrics | grep rotor_token_exchanges_total"
curl -fsS "http://127.0.0.1:$MPORT/metrics" | grep '^rotor_token_exchanges_total' \
  || { echo "no exchange counter in /metrics"; exit 1; }

if [ "${1:-}" = "--no-wait" ]; then exit 0; fi
echo; echo "==> Rotor is running on http://127.0.0.1:$PORT (logs: $DATA/rotor.log). Ctrl-C to stop."
wait $PID
