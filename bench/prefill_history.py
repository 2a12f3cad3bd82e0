#!/usr/bin/env python3
"""Pre-fills a Rotor SQLite database with a week of refresh history for the
realistic benchmark: retired pairs spread over the seeded installations (in
their existing token families, kept until their refresh tokens would have
expired, as Rotor keeps them for reuse detection) and the two event rows
Rotor writes per exchange. Rotor may be running: this waits for the writer
lock and commits in batches.

    bench/prefill_history.py DB_PATH [RETIRED_PAIRS]
"""
import os
import random
import sqlite3
import sys
import time
import uuid

WEEK_US = 7 * 86400 * 1_000_000


def main() -> None:
    path = sys.argv[1]
    pairs = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
    db = sqlite3.connect(path, timeout=60)
    db.execute("PRAGMA busy_timeout = 60000")
    families = db.execute(
        "SELECT id, installation_id, app_id FROM token_families WHERE revoked_at IS NULL"
    ).fetchall()
    if not families:
        sys.exit("no token families: seed installations first")
    now = int(time.time() * 1_000_000)
    started = time.time()
    batch = 50_000
    for done in range(0, pairs, batch):
        tokens, events = [], []
        for _ in range(min(batch, pairs - done)):
            fam, inst, app = random.choice(families)
            created = now - random.randrange(WEEK_US)
            tokens.append((
                str(uuid.uuid4()), fam, inst, app, os.urandom(32), os.urandom(32),
                '["project:read"]', created + 8 * 3600 * 1_000_000,
                created + 30 * 86400 * 1_000_000, created, created + 60_000_000,
            ))
            events.append(("token_exchanged", inst, "refresh", None, "bench-history", created))
            events.append(("token_exchange_audit", inst, "refresh", "127.0.0.1", "bench-history", created))
        with db:
            db.executemany(
                "INSERT INTO tokens (id, family_id, installation_id, app_id, access_hash, "
                "refresh_hash, scopes, expires_at, refresh_expires_at, created_at, parent_id, "
                "retired_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, NULL)",
                tokens,
            )
            db.executemany(
                "INSERT INTO events (kind, installation_id, exchange_type, ip, actor, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                events,
            )
    print(f"prefilled {pairs} retired pairs and {2 * pairs} events in {time.time() - started:.0f} s",
          file=sys.stderr)


if __name__ == "__main__":
    main()
