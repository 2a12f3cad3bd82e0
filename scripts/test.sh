#!/usr/bin/env bash
# The whole test suite: every crate, the HTTP suite and the store conformance
# suite on SQLite and on PostgreSQL. Starts the local PostgreSQL if it is not
# running and fails loudly if it cannot be reached.
# Override the database with ROTOR_TEST_POSTGRES_URL.
set -euo pipefail
cd "$(dirname "$0")/.."

export ROTOR_TEST_POSTGRES_URL="${ROTOR_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
pg_host_port="$(sed -E 's#^[a-z]+://([^@/]*@)?([^/:?]+)(:([0-9]+))?.*#\2 \4#' <<< "$ROTOR_TEST_POSTGRES_URL")"
read -r PGH PGP <<< "$pg_host_port"; PGP="${PGP:-5432}"

if ! pg_isready -q -h "$PGH" -p "$PGP" 2>/dev/null; then
  if command -v pg_ctlcluster > /dev/null && [ -d /etc/postgresql ]; then
    echo "==> starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  fi
  for _ in $(seq 1 50); do pg_isready -q -h "$PGH" -p "$PGP" && break; sleep 0.2; done
fi
if ! pg_isready -q -h "$PGH" -p "$PGP"; then
  echo "error: PostgreSQL is not reachable at $PGH:$PGP (ROTOR_TEST_POSTGRES_URL=$ROTOR_TEST_POSTGRES_URL)" >&2
  exit 1
fi
# Each test works in a schema of its own (t_<uuid>); drop those of earlier runs.
psql "$ROTOR_TEST_POSTGRES_URL" -qAtc "SELECT 'DROP SCHEMA ' || quote_ident(nspname) || ' CASCADE;' FROM pg_namespace WHERE nspname LIKE 't\_%'" \
  | psql "$ROTOR_TEST_POSTGRES_URL" -q > /dev/null

# The metrics test has a real Prometheus scrape Rotor (Debian's package).
if ! command -v prometheus > /dev/null; then
  echo "==> installing prometheus (Debian) for the metrics test"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq > /dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus > /dev/null
fi

# The upstream end-to-end test drives a real OAuth server (node-oidc-provider).
if command -v npm > /dev/null; then
  echo "==> npm ci (tests/oidc: node-oidc-provider for the end-to-end test)"
  npm ci --prefix tests/oidc --no-audit --no-fund --loglevel=error
else
  echo "error: npm not found; the node-oidc-provider end-to-end test needs Node.js 20" >&2
  exit 1
fi

# --ignore-default-filter: the PostgreSQL cases too (.config/nextest.toml
# leaves them out of a bare `cargo nextest run`). Nothing may be skipped.
LOG="$(mktemp)"
trap 'rm -f "$LOG"' EXIT
cargo nextest run --workspace --locked --no-fail-fast --ignore-default-filter "$@" 2>&1 | tee "$LOG"
status="${PIPESTATUS[0]}"
if [ "$status" -ne 0 ]; then exit "$status"; fi
skipped="$(grep -Eo '[0-9]+ skipped' "$LOG" | tail -n1 | grep -Eo '^[0-9]+' || echo 0)"
if [ "$#" -eq 0 ] && [ "${skipped:-0}" -ne 0 ]; then
  echo "error: $skipped test(s) were skipped; the whole suite must run (PostgreSQL included)" >&2
  exit 1
fi

# Schemathesis against a live Rotor on every operation of its OpenAPI
# document (no 5xx; every answer matches the document). Only on a whole run.
if [ "$#" -eq 0 ]; then
  scripts/schemathesis.sh
fi
