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
    assert_eq!(again.token(p.id).await.unwrap(), Some(p.clone()));
    assert!(again.installation(inst.id).await.unwrap().is_some());
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

#[tokio::test]
async fn a_database_migrated_by_sqlx_is_taken_over_not_migrated_again() {
    // A file as Rotor's earlier sqlx-based backend left it: migrations 1 and 2
    // applied, recorded in `_sqlx_migrations`, `user_version` never set.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rotor.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        for (_, _, sql) in &rotor_store_sqlite::MIGRATIONS[..2] {
            conn.execute_batch(sql).unwrap();
        }
        conn.execute_batch(
            "CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, \
             installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, success BOOLEAN NOT NULL, \
             checksum BLOB NOT NULL, execution_time BIGINT NOT NULL); \
             INSERT INTO _sqlx_migrations VALUES (1, 'core', CURRENT_TIMESTAMP, 1, x'00', 1); \
             INSERT INTO _sqlx_migrations VALUES (2, 'upstream', CURRENT_TIMESTAMP, 1, x'00', 1);",
        )
        .unwrap();
    }
    let url = format!("sqlite://{}", path.display());
    // Running migration 1 again would fail ("table apps already exists").
    let store = SqliteStore::open(&SqliteConfig::new(&url)).await.unwrap();
    let (app, _, _) = rotor_store_tests::installed(&store, "acme").await;
    assert_eq!(store.app_by_slug(&app.slug).await.unwrap(), Some(app));
    store.close().await;

    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, rotor_store_sqlite::MIGRATIONS.last().unwrap().0);
    let index: Option<String> = conn
        .query_row(
            "SELECT name FROM sqlite_master WHERE name = 'tokens_installation'",
            [],
            |r| r.get(0),
        )
        .ok();
    assert_eq!(index, None, "migration 3 ran");
}

#[tokio::test]
async fn a_schema_newer_than_this_build_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rotor.db");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("PRAGMA user_version = 999")
        .unwrap();
    let err = SqliteStore::open(&SqliteConfig::new(format!("sqlite://{}", path.display())))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("newer"), "{err}");
}

#[tokio::test]
async fn in_memory_urls_are_refused_with_a_reason() {
    let err = SqliteStore::open(&SqliteConfig::new("sqlite::memory:"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("in-memory"), "{err}");
}

#[tokio::test]
async fn writes_queued_before_close_commit_and_later_ones_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("rotor.db").display());
    let store = SqliteStore::open(&SqliteConfig::new(&url)).await.unwrap();
    let (app, inst, code) = rotor_store_tests::installed(&store, "acme").await;
    let pair = rotor_store_tests::first_pair(&store, &app, &inst, &code).await;
    store.close().await;
    let late = store
        .revoke_family(pair.family_id, chrono::Utc::now(), &[])
        .await;
    assert!(
        matches!(late, Err(rotor_store::StoreError::Unavailable(_))),
        "{late:?}"
    );

    let again = SqliteStore::open(&SqliteConfig::new(&url)).await.unwrap();
    let stored = again.token(pair.id).await.unwrap();
    assert_eq!(stored, Some(pair), "the write before close was committed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_fails_inside_a_batch_is_undone_alone() {
    // Forty writes queued at once are committed in a few batches; the twenty
    // that clash on a slug fail with a conflict and the other twenty stand.
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("rotor.db").display());
    let store = SqliteStore::open(&SqliteConfig::new(&url)).await.unwrap();
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let app = rotor_store_tests::sample_app(&format!("app-{}", i % 20));
                store.insert_app(&app).await
            })
        })
        .collect();
    let mut won = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => won += 1,
            Err(rotor_store::StoreError::Conflict(_)) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(won, 20);
    let apps = store.list_apps().await.unwrap();
    assert_eq!(apps.len(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_fails_after_its_first_statement_leaves_nothing_behind() {
    // Each installation is two inserts. Half of the forty reuse a grant code
    // already stored, so their installation row is written and then their
    // grant fails: queued together, those must vanish whole while the
    // batch's other writes stand.
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("rotor.db").display());
    let store = SqliteStore::open(&SqliteConfig::new(&url)).await.unwrap();
    let (app, _, taken) = rotor_store_tests::installed(&store, "taken").await;
    let now = chrono::Utc::now();
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let (store, app) = (store.clone(), app.clone());
            let code_hash = if i % 2 == 1 {
                taken.hash()
            } else {
                rotor_core::Token::generate(rotor_core::TokenKind::GrantCode).hash()
            };
            tokio::spawn(async move {
                let inst = rotor_core::Installation {
                    id: uuid::Uuid::new_v4(),
                    app_id: app.id,
                    app_slug: app.slug.clone(),
                    org_slug: format!("org-{i}"),
                    status: rotor_core::InstallationStatus::Pending,
                    created_at: now,
                    deleted_at: None,
                };
                let grant = rotor_core::Grant {
                    code_hash,
                    installation_id: inst.id,
                    app_id: app.id,
                    expires_at: now + chrono::Duration::minutes(10),
                    created_at: now,
                };
                (
                    i,
                    inst.id,
                    store.create_installation(&inst, &grant, &[]).await,
                )
            })
        })
        .collect();
    for t in tasks {
        let (i, id, result) = t.await.unwrap();
        let stored = store.installation(id).await.unwrap();
        if i % 2 == 1 {
            assert!(
                matches!(result, Err(rotor_store::StoreError::Conflict(_))),
                "{result:?}"
            );
            assert_eq!(
                stored, None,
                "installation {i} was rolled back with its grant"
            );
        } else {
            result.unwrap();
            assert!(stored.is_some(), "installation {i} stands");
        }
    }
}
