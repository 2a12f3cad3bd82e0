//! The store conformance suite against SQLite, each case on its own file.
#![allow(clippy::unwrap_used)]

use rotor_store_sqlite::{SqliteConfig, SqliteStore};

async fn fresh() -> SqliteStore {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.keep().join("rotor.db");
    SqliteStore::open(&SqliteConfig::new(format!("sqlite://{}", path.display())))
        .await
        .expect("open")
}

rotor_store_tests::store_conformance!(fresh().await);
