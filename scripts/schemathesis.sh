#!/usr/bin/env bash
# Schemathesis (from PyPI) against a live Rotor: every operation of the
# served OpenAPI document, with the admin token; fails on any 5xx and on any
# answer that does not match the document (status, content type, headers,
# body schema).
#
#   scripts/schemathesis.sh            # builds rotor (debug) if needed
#   ROTOR_BIN=target/release/rotor scripts/schemathesis.sh
#   SCHEMATHESIS_MAX_EXAMPLES=200 scripts/schemathesis.sh
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=4.32.5
VENV="${SCHEMATHESIS_VENV:-target/schemathesis-venv}"
if [ ! -x "$VENV/bin/schemathesis" ] || ! "$VENV/bin/schemathesis" --version | grep -q "$VERSION"; then
  echo "==> installing schemathesis $VERSION from PyPI into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$VERSION"
fi

BIN="${ROTOR_BIN:-target/debug/rotor}"
if [ ! -x "$BIN" ]; then
  cargo build --locked -p rotor
fi

DATA="$(mktemp -d)"
PORT="${SCHEMATHESIS_PORT:-18090}"
export ROTOR_ADMIN_TOKEN="st-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
export ROTOR_MANAGEMENT_LISTEN=off
# A fuzzer fails authentication on purpose, thousands of times: the
# throttle would answer 429 to most of the run and hide the rest.
export ROTOR_AUTH_FAILURES_PER_CLIENT=1000000 ROTOR_AUTH_FAILURES_PER_IP=1000000
( cd "$DATA" && exec "$OLDPWD/$BIN" serve --demo --listen "127.0.0.1:$PORT" ) > "$DATA/demo.txt" 2> "$DATA/rotor.log" &
PID=$!
trap 'kill $PID 2>/dev/null || true; rm -rf "$DATA"' EXIT
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$PORT/readyz" > /dev/null 2>&1 && break
  kill -0 $PID 2>/dev/null || { echo "rotor exited:"; cat "$DATA/rotor.log"; exit 1; }
  sleep 0.1
done

echo "==> schemathesis $VERSION against http://127.0.0.1:$PORT/api/openapi.json"
status=0
"$VENV/bin/schemathesis" run "http://127.0.0.1:$PORT/api/openapi.json" \
  --header "Authorization: Bearer $ROTOR_ADMIN_TOKEN" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
  --phases examples,coverage,fuzzing \
  --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-50}" \
  --workers 2 \
  --seed "${SCHEMATHESIS_SEED:-1}" \
  --no-color || status=$?
if [ "$status" -ne 0 ]; then
  echo "==> rotor's warnings and errors:"
  grep -E "WARN|ERROR" "$DATA/rotor.log" | tail -n 30 || true
fi
exit "$status"
