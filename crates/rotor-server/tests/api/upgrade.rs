//! Tokens issued before selector tokens (schema 7) keep working after the
//! upgrade: the database is put back to schema 6's `tokens` table, pairs are
//! written exactly as the schema-6 code wrote them (56-character tokens
//! found by their hash, successors derived from the presented refresh token
//! without a selector), and a server on the new schema then serves them:
//! bearer checks, introspection, refresh, grace replay of a pair retired
//! before the upgrade and after it, and reuse detection.

use chrono::{DateTime, Duration, Utc};
use reqwest::StatusCode;
use rotor_core::{Clock, ServerKey, Token, TokenKind};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::common::*;

/// A pair as the schema-6 code stored it.
struct LegacyPair {
    id: Uuid,
    family_id: Uuid,
    access: Token,
    refresh: Token,
    parent_id: Option<Uuid>,
    retired_at: Option<DateTime<Utc>>,
}

impl LegacyPair {
    fn new(family_id: Uuid, access: Token, refresh: Token) -> Self {
        Self {
            id: Uuid::now_v7(),
            family_id,
            access,
            refresh,
            parent_id: None,
            retired_at: None,
        }
    }
}

/// Schema 6's `tokens` table and its indexes (migrations 0001 and 0003).
const SQLITE_V6_TOKENS: &str = "
    CREATE TABLE tokens_v6 (
        id TEXT PRIMARY KEY,
        family_id TEXT NOT NULL REFERENCES token_families (id),
        installation_id TEXT NOT NULL REFERENCES installations (id),
        app_id TEXT NOT NULL REFERENCES apps (id),
        access_hash BLOB NOT NULL,
        refresh_hash BLOB NOT NULL,
        scopes TEXT NOT NULL,
        expires_at INTEGER NOT NULL,
        refresh_expires_at INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        parent_id TEXT,
        retired_at INTEGER,
        revoked_at INTEGER,
        CONSTRAINT tokens_access_hash_key UNIQUE (access_hash),
        CONSTRAINT tokens_refresh_hash_key UNIQUE (refresh_hash)
    );
    INSERT INTO tokens_v6 SELECT id, family_id, installation_id, app_id, access_hash,
        refresh_hash, scopes, expires_at, refresh_expires_at, created_at, parent_id,
        retired_at, revoked_at FROM tokens;
    DROP TABLE tokens;
    ALTER TABLE tokens_v6 RENAME TO tokens;
    CREATE UNIQUE INDEX tokens_parent_key ON tokens (parent_id) WHERE parent_id IS NOT NULL;
    CREATE INDEX tokens_family ON tokens (family_id);
    CREATE INDEX tokens_refresh_expires ON tokens (refresh_expires_at);
    DROP INDEX token_families_expires;
    PRAGMA user_version = 6;";

const POSTGRES_V6_TOKENS: &str = "
    DROP INDEX tokens_access_hash_legacy;
    DROP INDEX tokens_refresh_hash_legacy;
    DROP INDEX token_families_expires;
    ALTER TABLE tokens DROP COLUMN successor_id, DROP COLUMN legacy;
    ALTER TABLE tokens ADD CONSTRAINT tokens_access_hash_key UNIQUE (access_hash),
        ADD CONSTRAINT tokens_refresh_hash_key UNIQUE (refresh_hash);
    CREATE UNIQUE INDEX tokens_parent_key ON tokens (parent_id) WHERE parent_id IS NOT NULL;
    DELETE FROM _sqlx_migrations WHERE version >= 7;";

/// Puts the stopped server's database back to schema 6 and writes `families`
/// (each a list of pairs, the first one starting the family) as the schema-6
/// code did.
async fn write_as_schema_6(
    r: &Restart,
    installation: Uuid,
    now: DateTime<Utc>,
    families: &[&[&LegacyPair]],
) {
    let scopes = ["project:read", "event:write"];
    let (expires, refresh_expires, family_expires) = (
        now + Duration::hours(8),
        now + Duration::days(30),
        now + Duration::days(365),
    );
    if let Some(path) = r.database_url.strip_prefix("sqlite://") {
        let c = rusqlite::Connection::open(path).unwrap();
        c.execute_batch(&format!("BEGIN; {SQLITE_V6_TOKENS} COMMIT;"))
            .unwrap();
        let app: String = c
            .query_row(
                "SELECT app_id FROM installations WHERE id = ?",
                [installation.to_string()],
                |row| row.get(0),
            )
            .unwrap();
        let us = |t: DateTime<Utc>| t.timestamp_micros();
        for family in families {
            c.execute(
                "INSERT INTO token_families (id, installation_id, app_id, created_at, expires_at, \
                 revoked_at) VALUES (?, ?, ?, ?, ?, NULL)",
                rusqlite::params![
                    family[0].family_id.to_string(),
                    installation.to_string(),
                    app,
                    us(now),
                    us(family_expires)
                ],
            )
            .unwrap();
            for p in *family {
                c.execute(
                    "INSERT INTO tokens (id, family_id, installation_id, app_id, access_hash, \
                     refresh_hash, scopes, expires_at, refresh_expires_at, created_at, \
                     parent_id, retired_at, revoked_at) \
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)",
                    rusqlite::params![
                        p.id.to_string(),
                        p.family_id.to_string(),
                        installation.to_string(),
                        app,
                        p.access.hash().as_bytes().as_slice(),
                        p.refresh.hash().as_bytes().as_slice(),
                        serde_json::to_string(&scopes).unwrap(),
                        us(expires),
                        us(refresh_expires),
                        us(now),
                        p.parent_id.map(|id| id.to_string()),
                        p.retired_at.map(us),
                    ],
                )
                .unwrap();
            }
        }
        return;
    }
    let pool = sqlx::PgPool::connect(&r.database_url).await.unwrap();
    sqlx::raw_sql(POSTGRES_V6_TOKENS)
        .execute(&pool)
        .await
        .unwrap();
    let (app,): (Uuid,) = sqlx::query_as("SELECT app_id FROM installations WHERE id = $1")
        .bind(installation)
        .fetch_one(&pool)
        .await
        .unwrap();
    for family in families {
        sqlx::query(
            "INSERT INTO token_families (id, installation_id, app_id, created_at, expires_at, \
             revoked_at) VALUES ($1, $2, $3, $4, $5, NULL)",
        )
        .bind(family[0].family_id)
        .bind(installation)
        .bind(app)
        .bind(now)
        .bind(family_expires)
        .execute(&pool)
        .await
        .unwrap();
        for p in *family {
            sqlx::query(
                "INSERT INTO tokens (id, family_id, installation_id, app_id, access_hash, \
                 refresh_hash, scopes, expires_at, refresh_expires_at, created_at, parent_id, \
                 retired_at, revoked_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, NULL)",
            )
            .bind(p.id)
            .bind(p.family_id)
            .bind(installation)
            .bind(app)
            .bind(p.access.hash().as_bytes().as_slice())
            .bind(p.refresh.hash().as_bytes().as_slice())
            .bind(scopes.as_slice())
            .bind(expires)
            .bind(refresh_expires)
            .bind(now)
            .bind(p.parent_id)
            .bind(p.retired_at)
            .execute(&pool)
            .await
            .unwrap();
        }
    }
    pool.close().await;
}

fn tokens_of(body: &Value) -> (String, String) {
    (
        body["token"].as_str().expect("token").to_owned(),
        body["refreshToken"]
            .as_str()
            .expect("refreshToken")
            .to_owned(),
    )
}

http_tests! {
    async fn tokens_issued_before_selector_tokens_keep_working() {
        let server = spawn_app().await;
        let app = server
            .create_app("legacy", json!({ "refreshGraceSeconds": 60 }))
            .await;
        let i = server.install_app(&app, "acme").await;
        let installation = Uuid::parse_str(&i.uuid).unwrap();
        let r = server.stop().await;
        let now = r.clock.now();
        let successor_key = ServerKey::from_base64(&r.key)
            .unwrap()
            .subkey("refresh-successor");

        // Family A: one live pair. Family B: a pair retired just before the
        // upgrade and its successor, derived the schema-6 way.
        let a = LegacyPair::new(
            Uuid::now_v7(),
            Token::generate(TokenKind::Access),
            Token::generate(TokenKind::Refresh),
        );
        let mut b1 = LegacyPair::new(
            Uuid::now_v7(),
            Token::generate(TokenKind::Access),
            Token::generate(TokenKind::Refresh),
        );
        b1.retired_at = Some(now);
        let b1_input = b1.refresh.expose().as_bytes().to_vec();
        let mut b2 = LegacyPair::new(
            b1.family_id,
            Token::derive(TokenKind::Access, None, &successor_key, &b1_input),
            Token::derive(TokenKind::Refresh, None, &successor_key, &b1_input),
        );
        b2.parent_id = Some(b1.id);
        for t in [&a.access, &a.refresh, &b2.refresh] {
            assert_eq!(t.expose().len(), 56, "tokens of the old format");
        }
        write_as_schema_6(&r, installation, now, &[&[&a], &[&b1, &b2]]).await;

        // The new server migrates the database to schema 7 on start.
        let server = spawn_on(r).await;

        // A's access token still proves the installation and introspects.
        let (status, body) = server.verify(&i.uuid, a.access.expose()).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(server.introspect(a.access.expose()).await["active"], true);
        assert_eq!(server.introspect(a.refresh.expose()).await["active"], true);

        // A's refresh token trades for a pair of the new format...
        let (status, first) = server.refresh(&i, a.refresh.expose()).await;
        assert_eq!(status, StatusCode::CREATED, "{first}");
        let (access, refresh) = tokens_of(&first);
        assert_eq!((access.len(), refresh.len()), (78, 78), "selector tokens");
        let (status, body) = server.verify(&i.uuid, &access).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(server.introspect(a.access.expose()).await["active"], false);
        // ...presented again within the grace window, the same pair...
        let (status, again) = server.refresh(&i, a.refresh.expose()).await;
        assert_eq!(status, StatusCode::CREATED, "{again}");
        assert_eq!(tokens_of(&again), (access.clone(), refresh.clone()));
        // ...and the new refresh token refreshes in turn.
        let (status, next) = server.refresh(&i, &refresh).await;
        assert_eq!(status, StatusCode::CREATED, "{next}");

        // B1, retired before the upgrade, replays its schema-6 successor.
        let (status, replay) = server.refresh(&i, b1.refresh.expose()).await;
        assert_eq!(status, StatusCode::CREATED, "{replay}");
        assert_eq!(
            tokens_of(&replay),
            (b2.access.expose().to_owned(), b2.refresh.expose().to_owned())
        );
        assert_eq!(replay["id"], b2.id.to_string());

        // After the grace window, B1 again is reuse: its family is revoked,
        // so B2 stops working, and A's family stands.
        server.advance(Duration::seconds(61));
        let (status, body) = server.refresh(&i, b1.refresh.expose()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(server.introspect(b2.refresh.expose()).await["active"], false);
        let (status, body) = server.refresh(&i, b2.refresh.expose()).await;
        assert_ne!(status, StatusCode::CREATED, "{body}");
        let (status, body) = server.refresh(&i, tokens_of(&next).1.as_str()).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    async fn a_selector_with_the_wrong_secret_finds_nothing() {
        let server = spawn_app().await;
        let i = server.installed("forger", "acme").await;
        let body = server.tokens(&i).await;
        let (access, refresh) = tokens_of(&body);
        let id = Uuid::parse_str(body["id"].as_str().unwrap()).unwrap();
        let parsed = Token::parse(TokenKind::Refresh, &refresh).unwrap();
        assert_eq!(parsed.selector(), Some(id), "the token carries its pair's id");
        // Well-formed tokens naming the real pair, with secrets of their own.
        let forged_refresh = Token::generate_for(TokenKind::Refresh, id);
        let forged_access = Token::generate_for(TokenKind::Access, id);
        let (status, body) = server.refresh(&i, forged_refresh.expose()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(body["detail"], "Given refresh token does not exist");
        let (status, body) = server.verify(&i.uuid, forged_access.expose()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(server.introspect(forged_access.expose()).await["active"], false);
        // The access token as a refresh token (same selector, other kind).
        let swapped = access.replacen("rtr_at_", "rtr_rt_", 1);
        let (status, _) = server.refresh(&i, &swapped).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        // The real pair is untouched.
        let (status, body) = server.refresh(&i, &refresh).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
}
