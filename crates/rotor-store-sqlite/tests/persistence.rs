//! SQLite specifics: data survives closing and reopening the file.
#![allow(clippy::unwrap_used)]

use rotor_store::Store;
use rotor_store_sqlite::{SqliteConfig, SqliteStore};

#[tokio::test]
async fn everything_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("rotor.db").display());
    let store = SqliteStore::open(&SqliteConfig::new(&url)).await.unwrap();
    let (app, inst, code) = rotor_store_tests::installed(&store, "acme").await;
    let p = rotor_store_tests::first_pair(&store, &app, &inst, &code).await;
    store.close().await;

    let again = SqliteStore::open(&SqliteConfig::new(&url)).await.unwrap();
    assert_eq!(again.app_by_slug(&app.slug).await.unwrap(), Some(app));
    assert_eq!(
        again.token_by_refresh(&p.refresh_hash).await.unwrap(),
        Some(p.clone())
    );
    assert_eq!(
        again
            .installation(inst.id)
            .await
            .unwrap()
            .unwrap()
            .current_token_id,
        Some(p.id)
    );
}

#[tokio::test]
async fn a_bad_url_is_an_error_not_a_panic() {
    assert!(
        SqliteStore::open(&SqliteConfig::new("sqlite:///nonexistent-dir/x/y.db"))
            .await
            .is_err()
    );
    assert!(SqliteStore::open(&SqliteConfig::new("mysql://nope"))
        .await
        .is_err());
}
