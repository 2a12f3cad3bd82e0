//! The store conformance suite against PostgreSQL, each case in its own
//! schema. Runs when `ROTOR_TEST_POSTGRES_URL` is set (CI sets it); without
//! it each case says so and passes, so a laptop without PostgreSQL can still
//! run the workspace.
#![allow(clippy::unwrap_used)]

use rotor_store_postgres::{PgConfig, PgStore};

async fn fresh() -> Option<PgStore> {
    let Ok(url) = std::env::var("ROTOR_TEST_POSTGRES_URL") else {
        eprintln!("ROTOR_TEST_POSTGRES_URL is not set: PostgreSQL case skipped");
        return None;
    };
    let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
    let admin = sqlx::PgPool::connect(&url)
        .await
        .expect("connect to ROTOR_TEST_POSTGRES_URL");
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    let mut cfg = PgConfig::new(url);
    cfg.schema = Some(schema);
    Some(PgStore::open(&cfg).await.expect("open"))
}

rotor_store_tests::store_conformance!(match fresh().await {
    Some(s) => s,
    None => return,
});
