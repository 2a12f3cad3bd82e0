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

CHECKS=not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance
URL="http://127.0.0.1:$PORT"
# One worker: with two, CPython 3.11's parser (hypothesis reads the source
# of schemathesis's lambdas) can fail with "AST constructor recursion depth
# mismatch", a race in the interpreter, not a finding about Rotor.
run() {
  local config="$1" phases="$2"; shift 2
  "$VENV/bin/schemathesis" ${config:+--config-file "$config"} run "$URL/api/openapi.json" "$@" \
    --header "Authorization: Bearer $ROTOR_ADMIN_TOKEN" \
    --checks "$CHECKS" \
    --phases "$phases" \
    --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-50}" \
    --workers 1 \
    --seed "${SCHEMATHESIS_SEED:-1}" \
    --no-color
}

status=0
echo "==> schemathesis $VERSION, pass 1: every operation, generated paths, queries and bodies"
run "" examples,coverage,fuzzing || status=$?

# Pass 2: the same, with the path parameters fixed to real resources.
admin() { curl -fsS -X "$1" "$URL$2" -H "Authorization: Bearer $ROTOR_ADMIN_TOKEN" \
  -H 'Content-Type: application/json' ${3:+-d "$3"}; }
field() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
export ST_APP_SLUG=schemathesis ST_ORG=st-org
admin POST /api/0/sentry-apps/ '{"name": "Schemathesis", "scopes": ["project:read"]}' > /dev/null
export ST_INSTALLATION="$(admin POST "/api/0/organizations/$ST_ORG/sentry-app-installations/" \
  "{\"slug\": \"$ST_APP_SLUG\"}" | field uuid)"
# The identity's provider: a local token endpoint that grants every refresh
# (an unreachable one would answer the contract's 503, which the
# no-5xx check cannot tell from a fault).
python3 - "$DATA/token-port" <<'PY' &
import http.server, json, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.dumps({"access_token": "at", "token_type": "Bearer",
                           "expires_in": 3600, "refresh_token": "rt"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
open(sys.argv[1], "w").write(str(s.server_port))
s.serve_forever()
PY
TOKEN_PID=$!
trap 'kill $PID $TOKEN_PID 2>/dev/null || true; rm -rf "$DATA"' EXIT
for _ in $(seq 1 50); do [ -s "$DATA/token-port" ] && break; sleep 0.1; done
admin POST /api/0/upstream/providers/ \
  "{\"key\": \"st\", \"kind\": \"oauth2\", \"config\": {\"tokenUrl\": \"http://127.0.0.1:$(cat "$DATA/token-port")/token\", \"clientId\": \"c\", \"clientSecret\": \"s\"}}" > /dev/null
export ST_IDENTITY="$(admin POST /api/0/upstream/identities/ \
  '{"provider": "st", "externalId": "e", "refreshToken": "r", "accessToken": "a", "expiresAt": "2099-01-01T00:00:00Z"}' | field id)"
echo "==> schemathesis $VERSION, pass 2: paths fixed to app $ST_APP_SLUG, installation $ST_INSTALLATION, identity $ST_IDENTITY"
# Deletions would remove the resources the other operations are fixed to
# (pass 1 covers them).
run scripts/schemathesis-known.toml examples,coverage,fuzzing --exclude-method DELETE || status=$?

if [ "$status" -ne 0 ]; then
  echo "==> rotor's warnings and errors:"
  grep -E "WARN|ERROR" "$DATA/rotor.log" | tail -n 30 || true
fi
exit "$status"
