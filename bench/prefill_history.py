#!/usr/bin/env python3
"""Pre-fills a Rotor SQLite database with a week of refresh history for the
realistic benchmark: retired pairs spread over the seeded installations (in
their existing token families, kept until their refresh tokens would have
expired, as Rotor keeps them for reuse detection) and the two event rows
Rotor writes per exchange. Pair ids are UUIDv7 of their creation time, as
Rotor makes them; on schema 7 and later the pairs are selector pairs
(legacy = 0) that name a successor, as a rotation leaves them. Rotor may be
running: this waits for the writer lock and commits in batches.

    bench/prefill_history.py DB_PATH [RETIRED_PAIRS]
"""
import os
import random
import sqlite3
import sys
import time
import uuid

WEEK_US = 7 * 86400 * 1_000_000


def uuid7(micros: int) -> str:
    """A UUIDv7 for the time `micros` (Unix microseconds)."""
    value = ((micros // 1000) & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= random.getrandbits(12) << 64
    value |= 0b10 << 62
    value |= random.getrandbits(62)
    return str(uuid.UUID(int=value))


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
    columns = {row[1] for row in db.execute("PRAGMA table_info(tokens)")}
    selector_pairs = "legacy" in columns
    started = time.time()
    batch = 50_000
    for done in range(0, pairs, batch):
        tokens, events = [], []
        for _ in range(min(batch, pairs - done)):
            fam, inst, app = random.choice(families)
            created = now - random.randrange(WEEK_US)
            row = (
                uuid7(created), fam, inst, app, os.urandom(32), os.urandom(32),
                '["project:read"]', created + 8 * 3600 * 1_000_000,
                created + 30 * 86400 * 1_000_000, created, created + 60_000_000,
            )
            if selector_pairs:
                row += (uuid7(created + 60_000_000),)
            tokens.append(row)
            events.append(("token_exchanged", inst, "refresh", None, "bench-history", created))
            events.append(("token_exchange_audit", inst, "refresh", "127.0.0.1", "bench-history", created))
        with db:
            if selector_pairs:
                db.executemany(
                    "INSERT INTO tokens (id, family_id, installation_id, app_id, access_hash, "
                    "refresh_hash, scopes, expires_at, refresh_expires_at, created_at, "
                    "parent_id, retired_at, revoked_at, successor_id, legacy) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, NULL, ?, 0)",
                    tokens,
                )
            else:
                db.executemany(
                    "INSERT INTO tokens (id, family_id, installation_id, app_id, access_hash, "
                    "refresh_hash, scopes, expires_at, refresh_expires_at, created_at, "
                    "parent_id, retired_at, revoked_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, NULL)",
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
