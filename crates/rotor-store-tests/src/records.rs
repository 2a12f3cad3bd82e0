//! Conformance cases for apps, installations and events.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use chrono::Duration;
use rotor_core::{EventFilter, EventKind, InstallationStatus, NewEvent, ReusePolicy};
use rotor_store::{Conflict, Store, StoreError};
use uuid::Uuid;

use crate::*;

pub async fn apps_round_trip<S: Store>(store: Arc<S>) {
    let a = sample_app("alpha");
    let b = sample_app("beta");
    store.insert_app(&a).await.unwrap();
    store.insert_app(&b).await.unwrap();
    assert_eq!(store.app_by_slug("alpha").await.unwrap(), Some(a.clone()));
    assert_eq!(
        store.app_by_client_id(&b.client_id).await.unwrap(),
        Some(b.clone())
    );
    assert_eq!(store.app_by_id(a.id).await.unwrap(), Some(a.clone()));
    assert_eq!(store.app_by_slug("gamma").await.unwrap(), None);
    let all = store.list_apps().await.unwrap();
    assert_eq!(all.len(), 2);
    assert!(all.contains(&a) && all.contains(&b));
}

pub async fn app_slug_and_client_id_are_unique<S: Store>(store: Arc<S>) {
    let a = sample_app("alpha");
    store.insert_app(&a).await.unwrap();
    let mut same_slug = sample_app("alpha");
    same_slug.id = Uuid::new_v4();
    assert!(matches!(
        store.insert_app(&same_slug).await,
        Err(StoreError::Conflict(Conflict::Slug))
    ));
    let mut same_client = sample_app("other");
    same_client.client_id = a.client_id.clone();
    assert!(matches!(
        store.insert_app(&same_client).await,
        Err(StoreError::Conflict(Conflict::ClientId))
    ));
    assert_eq!(store.list_apps().await.unwrap().len(), 1);
}

pub async fn app_update<S: Store>(store: Arc<S>) {
    let mut a = sample_app("alpha");
    store.insert_app(&a).await.unwrap();
    a.settings.scopes = vec!["org:read".into()];
    a.settings.webhook_url = None;
    a.settings.reuse_policy = ReusePolicy::Reject;
    a.settings.refresh_grace_seconds = 0;
    a.client_secret.bytes = vec![9; 40];
    a.updated_at = now() + Duration::seconds(1);
    store.update_app(&a).await.unwrap();
    assert_eq!(store.app_by_slug("alpha").await.unwrap(), Some(a.clone()));
    let ghost = sample_app("ghost");
    assert!(matches!(
        store.update_app(&ghost).await,
        Err(StoreError::NotFound)
    ));
}

pub async fn installation_round_trip<S: Store>(store: Arc<S>) {
    let (app, inst, code) = installed(&*store, "acme").await;
    assert_eq!(
        store.installation(inst.id).await.unwrap(),
        Some(inst.clone())
    );
    let g = store
        .grant(&code.hash())
        .await
        .unwrap()
        .expect("grant stored");
    assert_eq!((g.installation_id, g.app_id), (inst.id, app.id));
    store
        .set_installation_status(inst.id, InstallationStatus::Installed)
        .await
        .unwrap();
    let got = store.installation(inst.id).await.unwrap().unwrap();
    assert_eq!(got.status, InstallationStatus::Installed);
    assert_eq!(store.installation(Uuid::new_v4()).await.unwrap(), None);
    let mut orphan = sample_app("orphan");
    orphan.id = Uuid::new_v4();
    assert!(install(&*store, &orphan, "acme").await.is_err());
}

pub async fn one_live_installation_per_org_and_app<S: Store>(store: Arc<S>) {
    let (app, inst, _) = installed(&*store, "acme").await;
    assert!(matches!(
        install(&*store, &app, "acme").await,
        Err(StoreError::Conflict(Conflict::Installation))
    ));
    install(&*store, &app, "other-org")
        .await
        .expect("another org may install");
    store
        .delete_installation(inst.id, now(), &[])
        .await
        .unwrap();
    install(&*store, &app, "acme")
        .await
        .expect("reinstall after delete");
}

pub async fn delete_installation_revokes_and_is_final<S: Store>(store: Arc<S>) {
    let (app, inst, code) = installed(&*store, "acme").await;
    let p = first_pair(&*store, &app, &inst, &code).await;
    let t = now();
    store.delete_installation(inst.id, t, &[]).await.unwrap();
    let got = store.installation(inst.id).await.unwrap().unwrap();
    assert_eq!(got.deleted_at, Some(t));
    let tok = store.token(p.id).await.unwrap().unwrap();
    assert_eq!(
        tok.revoked_at,
        Some(t),
        "tokens of a deleted installation are revoked"
    );
    assert!(matches!(
        store.delete_installation(inst.id, t, &[]).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store
            .set_installation_status(inst.id, InstallationStatus::Installed)
            .await,
        Err(StoreError::NotFound)
    ));
}

pub async fn events_filter_and_order<S: Store>(store: Arc<S>) {
    let a = Uuid::new_v4();
    let b = Uuid::new_v4();
    for (i, (inst, kind)) in [
        (a, EventKind::TokenExchanged),
        (b, EventKind::TokenExchanged),
        (a, EventKind::InstallationCreated),
    ]
    .into_iter()
    .enumerate()
    {
        store
            .record_event(&NewEvent {
                installation_id: Some(inst),
                exchange_type: Some("refresh".into()),
                ip: Some(format!("127.0.0.{i}")),
                ..NewEvent::new(kind, now())
            })
            .await
            .unwrap();
    }
    let all = store
        .list_events(&EventFilter {
            limit: 10,
            ..EventFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 3);
    assert!(
        all[0].id > all[1].id && all[1].id > all[2].id,
        "newest first"
    );
    assert_eq!(all[0].event.kind, EventKind::InstallationCreated);
    let of_a = store
        .list_events(&EventFilter {
            installation_id: Some(a),
            limit: 10,
            ..EventFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(of_a.len(), 2);
    let typed = store
        .list_events(&EventFilter {
            installation_id: Some(a),
            kind: Some(EventKind::TokenExchanged),
            limit: 10,
            ..EventFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(typed.len(), 1);
    assert_eq!(typed[0].event.ip.as_deref(), Some("127.0.0.0"));
    let limited = store
        .list_events(&EventFilter {
            limit: 1,
            ..EventFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(limited.len(), 1);
}

/// Events older than the cut-off go, oldest first, at most a batch per call;
/// newer ones stay.
pub async fn events_are_purged_oldest_first_in_bounded_batches<S: Store>(store: Arc<S>) {
    let t = now();
    for age in [40_i64, 35, 31, 10, 1] {
        store
            .record_event(&NewEvent {
                detail: Some(format!("aged_{age}")),
                ..NewEvent::new(EventKind::TokenRevoked, t - Duration::days(age))
            })
            .await
            .unwrap();
    }
    let cut = t - Duration::days(30);
    assert_eq!(store.purge_events(cut, 2).await.unwrap(), 2);
    assert_eq!(store.purge_events(cut, 2).await.unwrap(), 1);
    assert_eq!(store.purge_events(cut, 2).await.unwrap(), 0);
    let left = store
        .list_events(&EventFilter {
            limit: 10,
            ..EventFilter::default()
        })
        .await
        .unwrap();
    let ages: Vec<&str> = left
        .iter()
        .filter_map(|e| e.event.detail.as_deref())
        .collect();
    assert_eq!(ages, vec!["aged_1", "aged_10"]);
}

/// The readiness write succeeds on a healthy store, again and again.
pub async fn a_writable_store_says_so<S: Store>(store: Arc<S>) {
    store.check_writable(now()).await.unwrap();
    store.check_writable(now()).await.unwrap();
}

/// Every sealed value is counted under the key that sealed it.
pub async fn sealed_key_ids_count_every_sealed_value<S: Store>(store: Arc<S>) {
    assert!(store.sealed_key_ids().await.unwrap().is_empty());
    let mut a = sample_app("sealed-a");
    store.insert_app(&a).await.unwrap();
    a = sample_app("sealed-b");
    a.client_secret.key_id = "k2".into();
    store.insert_app(&a).await.unwrap();
    store.insert_app(&sample_app("sealed-c")).await.unwrap();
    assert_eq!(
        store.sealed_key_ids().await.unwrap(),
        vec![("k1".to_owned(), 2), ("k2".to_owned(), 1)]
    );
}
